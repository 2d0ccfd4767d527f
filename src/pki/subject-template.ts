/**
 * Profile templates: subject DNs and SAN entries with `{{placeholders}}` filled from the Chrome process.
 *
 * The DN template is parsed into RDNs and attributes *before* anything is substituted, so a rendered value is
 * always one attribute value: a user email such as `a,b+c@example.com` cannot create new RDNs (DESIGN.md §1).
 *
 * Escapes follow RFC 4514 §3: in a subject template `\` makes the next character literal (`O=Example\, Inc.`,
 * `\{` for a brace) or, before two hex digits, writes a UTF-8 byte (`\2C`). Unescaped spaces around a value are
 * dropped; an escaped one is kept (`O=Example\ `). A brace outside a well-formed `{{root.field}}`, a trailing lone
 * `\`, a control character and a bidi control or invisible format character (but for the joiners U+200C, U+200D) in
 * the fixed text are configuration errors naming the character's position; a value from the device or the directory
 * holding a control or format character fails that process at render, naming the field, never echoing the value.
 */
import { TerminalError } from '../errors.ts';
import type { DistinguishedName, SubjectAltName, SubjectAltNameType, SubjectAttribute } from './types.ts';

export type StringEncoding = 'utf8' | 'printable' | 'ia5';

export interface AttributeTypeInfo {
  readonly oid: string;
  readonly encoding: StringEncoding;
  /** RFC 5280 upper bound on the value's length, in characters (Appendix A: ub-common-name 64, …). */
  readonly maxLength: number;
  /** Exact length required (country codes). */
  readonly exactLength?: number;
}

/** Subject attribute types a profile may use, by the short name written in templates (case-insensitive). */
export const SUBJECT_ATTRIBUTE_TYPES: Readonly<Record<string, AttributeTypeInfo>> = {
  CN: { oid: '2.5.4.3', encoding: 'utf8', maxLength: 64 },
  SN: { oid: '2.5.4.4', encoding: 'utf8', maxLength: 32768 }, // X520name: ub-name
  SERIALNUMBER: { oid: '2.5.4.5', encoding: 'printable', maxLength: 64 },
  C: { oid: '2.5.4.6', encoding: 'printable', maxLength: 2, exactLength: 2 },
  L: { oid: '2.5.4.7', encoding: 'utf8', maxLength: 128 },
  ST: { oid: '2.5.4.8', encoding: 'utf8', maxLength: 128 },
  STREET: { oid: '2.5.4.9', encoding: 'utf8', maxLength: 128 },
  O: { oid: '2.5.4.10', encoding: 'utf8', maxLength: 64 },
  OU: { oid: '2.5.4.11', encoding: 'utf8', maxLength: 64 },
  T: { oid: '2.5.4.12', encoding: 'utf8', maxLength: 64 },
  GN: { oid: '2.5.4.42', encoding: 'utf8', maxLength: 32768 }, // X520name: ub-name
  E: { oid: '1.2.840.113549.1.9.1', encoding: 'ia5', maxLength: 255 },
  DC: { oid: '0.9.2342.19200300.100.1.25', encoding: 'ia5', maxLength: 63 },
  UID: { oid: '0.9.2342.19200300.100.1.1', encoding: 'utf8', maxLength: 256 },
};

/** Aliases accepted in templates. */
const ATTRIBUTE_ALIASES: Readonly<Record<string, string>> = {
  EMAILADDRESS: 'E',
  EMAIL: 'E',
  TITLE: 'T',
  GIVENNAME: 'GN',
  SURNAME: 'SN',
  S: 'ST',
};

/** Template variables, by root. */
export const TEMPLATE_VARIABLES: Readonly<Record<string, readonly string[]>> = {
  device: ['deviceDirectoryApiId', 'serialNumber'],
  user: ['userPrimaryEmail', 'userDirectoryApiId'],
  process: ['id', 'customer', 'provisioningProfileId'],
};

type Segment = { readonly literal: string } | { readonly variable: string };

/** A value with placeholders, parsed once at config load. */
export interface ValueTemplate {
  readonly source: string;
  readonly segments: readonly Segment[];
  readonly variables: readonly string[];
}

export interface AttributeTemplate {
  readonly type: string;
  readonly info: AttributeTypeInfo;
  readonly value: ValueTemplate;
}

export type SubjectTemplate = readonly (readonly AttributeTemplate[])[];

export interface SanTemplate {
  readonly type: SubjectAltNameType;
  readonly value: ValueTemplate;
}

/** A problem found while parsing a template; config validation prefixes it with the field path. */
export class TemplateSyntaxError extends Error {}

/** `{{root.field}}` at a given position (sticky). */
const PLACEHOLDER_AT = /\{\{\s*([A-Za-z]+)\.([A-Za-z]+)\s*\}\}/y;
const HEX_PAIR = /^[0-9A-Fa-f]{2}$/;

/**
 * Where a problem is, for the message: `character 27 of "CN={{device.serialNumber}}}"`. Control and format
 * characters are shown as `\u{202E}`: a bidi override echoed as itself would reorder the message around it.
 */
function position(template: string, index: number): string {
  const shown = JSON.stringify(template).replace(
    /[\p{Cc}\p{Cf}]/gu,
    (ch) => `\\u{${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase()}}`,
  );
  return `character ${index + 1} of ${shown}`;
}

/**
 * C0 and C1 control characters and DEL: never in a subject. A NUL cuts a name short for C-string consumers, a line
 * break forges a line in a log or an openssl `-subject` printout, and neither has a legitimate place in a name.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;

/** Half of a UTF-16 pair without its other half: no character at all, UTF-8 would write U+FFFD in its place. */
const UNPAIRED_SURROGATE = /\p{Cs}/u;

/**
 * Bidirectional controls: overrides and embeddings (U+202A–U+202E), isolates (U+2066–U+2069), the marks (U+200E,
 * U+200F, U+061C). A value holding one displays differently from its bytes — `CN=moc.elppa\u202E` reads as another
 * name in a certificate viewer — a spoofing vector relying parties and CAs refuse (RFC 5280 §7.2's display caveats;
 * CA/B Forum practice). Never accepted, in the configuration's text or in a value from a device or the directory.
 */
const BIDI_CONTROL = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

/**
 * Invisible format characters (Unicode category Cf: zero-width space U+200B, word joiner U+2060, byte-order mark
 * U+FEFF, soft hyphen U+00AD, tag characters, … and the bidi controls above): a name that looks like another one.
 * The zero-width non-joiner and joiner (U+200C, U+200D) shape letters in Persian and Indic spellings, so the
 * configuration's own text may hold them (an organisation name the admin wrote); a rendered value from a device or
 * the directory — serial numbers, directory ids, email addresses — may not.
 */
const FORMAT = /\p{Cf}/u;
const JOINERS = /^[\u200c\u200d]$/u;

/** What a format character is, for a message: the bidi controls by name, the rest as invisible. */
function formatCharacter(ch: string): string {
  return `${BIDI_CONTROL.test(ch) ? 'bidirectional control' : 'invisible format character'} ${codePoint(ch)}`;
}

function codePoint(ch: string): string {
  return `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * What a rendered value holds that no certificate may (its description), or undefined: a control character or an
 * unpaired surrogate anywhere, a format character in what a variable put there (the fixed text was checked at load,
 * where the joiners may stay).
 */
function forbiddenInValue(value: string, template: ValueTemplate, vars: TemplateVariables): string | undefined {
  const control = CONTROL.exec(value);
  if (control !== null) return `control character ${codePoint(control[0])}`;
  const format = formatFromVariables(template, vars);
  if (format !== undefined) return format;
  if (UNPAIRED_SURROGATE.test(value)) return 'an unpaired surrogate';
  return undefined;
}

/** A format character (its description) in what a variable put into a value, or undefined. */
function formatFromVariables(template: ValueTemplate, vars: TemplateVariables): string | undefined {
  for (const variable of template.variables) {
    const format = FORMAT.exec(lookup(vars, variable) ?? '');
    if (format !== null) return formatCharacter(format[0]);
  }
  return undefined;
}

/** The variables of a value, for a message: `{{user.userPrimaryEmail}}`. */
function variablesOf(template: ValueTemplate): string {
  return template.variables.map((v) => `{{${v}}}`).join(', ');
}

/** A character or a placeholder of a value, and where it was written (`at` up to `end`, indices in the template). */
type Token = ({ readonly char: string; readonly escaped: boolean } | { readonly variable: string }) & {
  readonly at: number;
  readonly end: number;
};

/**
 * Reads a value into characters and placeholders. `template` and `offset` place `text` in the whole template for
 * messages. With `escapes`, `\` is RFC 4514's escape; without (SAN values), a backslash is an ordinary character.
 */
function tokenize(text: string, offset: number, template: string, escapes: boolean): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const at = offset + i;
    const ch = text[i] as string;
    if (escapes && ch === '\\') {
      if (i + 1 >= text.length) {
        throw new TemplateSyntaxError(`"\\" at ${position(template, at)} escapes nothing (write \\\\ for a backslash)`);
      }
      if (HEX_PAIR.test(text.slice(i + 1, i + 3))) {
        // A run of hex pairs is one UTF-8 sequence (`\C3\A9` is é).
        const bytes: number[] = [];
        while (text[i] === '\\' && HEX_PAIR.test(text.slice(i + 1, i + 3))) {
          bytes.push(Number.parseInt(text.slice(i + 1, i + 3), 16));
          i += 3;
        }
        let decoded: string;
        try {
          decoded = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
        } catch {
          throw new TemplateSyntaxError(`the escaped bytes at ${position(template, at)} are not UTF-8`);
        }
        for (const c of decoded) tokens.push({ char: c, escaped: true, at, end: offset + i });
        continue;
      }
      const next = String.fromCodePoint(text.codePointAt(i + 1) ?? 0);
      i += 1 + next.length;
      tokens.push({ char: next, escaped: true, at, end: offset + i });
      continue;
    }
    if (ch === '{' || ch === '}') {
      PLACEHOLDER_AT.lastIndex = i;
      const match = ch === '{' ? PLACEHOLDER_AT.exec(text) : null;
      if (match === null) {
        const brace = escapes ? ` (write \\${ch} for a literal brace)` : '';
        throw new TemplateSyntaxError(
          text.startsWith('{{', i)
            ? `malformed placeholder at ${position(template, at)} (write {{root.field}})`
            : `stray "${ch}" at ${position(template, at)}${brace}`,
        );
      }
      const [whole, root, field] = match as unknown as [string, string, string];
      const known = TEMPLATE_VARIABLES[root];
      if (known === undefined || !known.includes(field)) {
        throw new TemplateSyntaxError(
          `unknown template variable {{${root}.${field}}}; known: ${Object.entries(TEMPLATE_VARIABLES)
            .flatMap(([r, fs]) => fs.map((f) => `${r}.${f}`))
            .join(', ')}`,
        );
      }
      i += whole.length;
      tokens.push({ variable: `${root}.${field}`, at, end: offset + i });
      continue;
    }
    const c = String.fromCodePoint(text.codePointAt(i) ?? 0);
    i += c.length;
    tokens.push({ char: c, escaped: false, at, end: offset + i });
  }
  for (const token of tokens) {
    if ('char' in token && CONTROL.test(token.char)) {
      throw new TemplateSyntaxError(`control character ${codePoint(token.char)} at ${position(template, token.at)}`);
    }
    if ('char' in token && FORMAT.test(token.char) && !JOINERS.test(token.char)) {
      throw new TemplateSyntaxError(
        `${formatCharacter(token.char)} at ${position(template, token.at)}: it would make the name display differently from what it is`,
      );
    }
  }
  return tokens;
}

function toValueTemplate(source: string, tokens: readonly Token[]): ValueTemplate {
  const segments: Segment[] = [];
  const variables: string[] = [];
  for (const token of tokens) {
    if ('variable' in token) {
      segments.push({ variable: token.variable });
      variables.push(token.variable);
      continue;
    }
    const last = segments.at(-1);
    if (last !== undefined && 'literal' in last) segments[segments.length - 1] = { literal: last.literal + token.char };
    else segments.push({ literal: token.char });
  }
  return { source, segments, variables };
}

/** Parses one SAN value with `{{root.field}}` placeholders (no escapes: a SAN value is taken as written). */
export function parseValueTemplate(source: string): ValueTemplate {
  return toValueTemplate(source, tokenize(source, 0, source, false));
}

/** A piece of the template and where it starts in it. */
interface Piece {
  readonly text: string;
  readonly start: number;
}

/** The index of the first unescaped `ch` in `text`, or -1. */
function indexOfUnescaped(text: string, ch: string): number {
  for (let i = 0; i < text.length; i += 1) {
    if (text[i] === '\\') i += 1;
    else if (text[i] === ch) return i;
  }
  return -1;
}

/** Splits on an unescaped separator, keeping escapes in place for the next level. */
function splitUnescaped(piece: Piece, separator: string): Piece[] {
  const parts: Piece[] = [];
  let from = 0;
  const { text, start } = piece;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i] as string;
    if (ch === '\\') i += 1;
    else if (ch === separator) {
      parts.push({ text: text.slice(from, i), start: start + from });
      from = i + 1;
    }
  }
  parts.push({ text: text.slice(from), start: start + from });
  return parts;
}

function resolveAttributeType(name: string): { type: string; info: AttributeTypeInfo } {
  const upper = name.trim().toUpperCase();
  const type = ATTRIBUTE_ALIASES[upper] ?? upper;
  const info = SUBJECT_ATTRIBUTE_TYPES[type];
  if (info === undefined) {
    throw new TemplateSyntaxError(
      `unknown subject attribute "${name.trim()}"; known: ${Object.keys(SUBJECT_ATTRIBUTE_TYPES).join(', ')}`,
    );
  }
  return { type, info };
}

const isUnescapedSpace = (token: Token | undefined): boolean =>
  token !== undefined && 'char' in token && !token.escaped && /\s/.test(token.char);

/**
 * One attribute's value: escapes resolved *after* the unescaped spaces around it are dropped, so an escaped
 * space at either end stays (RFC 4514: `\ ` is how a DN keeps a trailing space).
 */
function parseAttributeValue(type: string, value: Piece, template: string): ValueTemplate {
  const tokens = tokenize(value.text, value.start, template, true);
  let first = 0;
  let end = tokens.length;
  while (first < end && isUnescapedSpace(tokens[first])) first += 1;
  while (end > first && isUnescapedSpace(tokens[end - 1])) end -= 1;
  if (first === end) throw new TemplateSyntaxError(`${type} has an empty value`);
  const kept = tokens.slice(first, end);
  // As written, escapes included (check-config prints it back as a DN).
  const written = template.slice(kept[0]?.at, kept.at(-1)?.end);
  return toValueTemplate(written, kept);
}

/** Parses `CN={{user.userPrimaryEmail}},O=Example` into RDNs of attribute templates. */
export function parseSubjectTemplate(source: string): SubjectTemplate {
  if (source.trim() === '') throw new TemplateSyntaxError('subject is empty');
  return splitUnescaped({ text: source, start: 0 }, ',').map((rdn) => {
    if (rdn.text.trim() === '') throw new TemplateSyntaxError(`empty RDN in "${source}"`);
    return splitUnescaped(rdn, '+').map((attribute) => {
      const eq = indexOfUnescaped(attribute.text, '=');
      if (eq < 0) throw new TemplateSyntaxError(`"${attribute.text.trim()}" is not TYPE=value`);
      const { type, info } = resolveAttributeType(attribute.text.slice(0, eq));
      const value = parseAttributeValue(
        type,
        { text: attribute.text.slice(eq + 1), start: attribute.start + eq + 1 },
        source,
      );
      // No process could render a value within the bound (a variable renders to one character at least, an empty
      // one counts as missing): say so at load instead of failing every device.
      const shortest = value.segments.reduce(
        (n, segment) => n + ('literal' in segment ? characterCount(segment.literal) : 1),
        0,
      );
      if (shortest > info.maxLength) {
        throw new TemplateSyntaxError(
          `${type} is at least ${shortest} characters long; RFC 5280 allows at most ${info.maxLength}`,
        );
      }
      return { type, info, value };
    });
  });
}

/** The device fields a template may use ({@link TEMPLATE_VARIABLES} `device.*`). */
export interface TemplateDevice {
  readonly deviceDirectoryApiId?: string;
  readonly serialNumber?: string;
}

/** The user fields a template may use ({@link TEMPLATE_VARIABLES} `user.*`). */
export interface TemplateUser {
  readonly userPrimaryEmail?: string;
  readonly userDirectoryApiId?: string;
}

/**
 * The values a template may use for one process. PKI's own shape: the workflow fills it from the Chrome process
 * (src/provisioning/render-profile.ts), so this module knows no Chrome type.
 */
export interface TemplateVariables {
  readonly device?: TemplateDevice;
  readonly user?: TemplateUser;
  readonly process: { readonly id: string; readonly customer: string; readonly provisioningProfileId?: string };
}

function lookup(vars: TemplateVariables, variable: string): string | undefined {
  const [root, field] = variable.split('.') as [string, string];
  const scope = (root === 'device' ? vars.device : root === 'user' ? vars.user : vars.process) as
    Record<string, unknown> | undefined;
  const value = scope?.[field];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * Renders a value. A variable the process lacks (e.g. `device.*` for an unaffiliated user session) is a
 * configuration error for this process: terminal, naming the profile and the variable.
 */
export function renderValue(template: ValueTemplate, vars: TemplateVariables, profileName: string): string {
  return template.segments
    .map((segment) => {
      if ('literal' in segment) return segment.literal;
      const value = lookup(vars, segment.variable);
      if (value === undefined) {
        throw new TerminalError(
          `profile "${profileName}" uses {{${segment.variable}}}, which process ${vars.process.id} does not carry`,
          {
            reason: 'template_field_missing',
            details: { holder: vars.user ? 'user session' : 'device' },
          },
        );
      }
      return value;
    })
    .join('');
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;
// eslint-disable-next-line no-control-regex
const IA5 = /^[\x00-\x7f]*$/;

/** Characters as RFC 5280's upper bounds count them (code points, not UTF-16 units). */
function characterCount(value: string): number {
  let n = 0;
  for (const _ of value) n += 1;
  return n;
}

/** Names the profile and the field (`subject CN`, `email SAN`) for the log and for the user's screen. */
function invalidValue(profileName: string, what: string, problem: string): TerminalError {
  return new TerminalError(`profile "${profileName}": ${what} ${problem}`, {
    reason: 'template_invalid_value',
    details: { profile: profileName, field: what },
  });
}

export function renderSubject(
  template: SubjectTemplate,
  vars: TemplateVariables,
  profileName: string,
): DistinguishedName {
  return template.map((rdn) =>
    rdn.map((attribute): SubjectAttribute => {
      const value = renderValue(attribute.value, vars, profileName);
      const { info } = attribute;
      const field = `subject ${attribute.type}`;
      // The fixed text was checked at load; what breaks the rule here came from the device or the user.
      const what = forbiddenInValue(value, attribute.value, vars);
      if (what !== undefined) {
        throw invalidValue(
          profileName,
          field,
          `(profiles.${profileName}.subject) holds ${what} taken from ${variablesOf(attribute.value)}; correct that value at its source or build the attribute from another field`,
        );
      }
      const length = characterCount(value);
      if (length > info.maxLength) {
        // An RFC 5280 upper bound (ub-common-name 64, …): a CA would refuse it or a relying party choke on it.
        // Long emails belong in an email SAN with a short CN (docs: profiles).
        throw invalidValue(
          profileName,
          field,
          `(profiles.${profileName}.subject) is ${length} characters long; RFC 5280 allows at most ${info.maxLength}`,
        );
      }
      if (info.exactLength !== undefined && length !== info.exactLength) {
        throw invalidValue(profileName, field, `must be exactly ${info.exactLength} characters`);
      }
      if (info.encoding === 'printable' && !PRINTABLE.test(value)) {
        throw invalidValue(profileName, field, 'contains characters outside PrintableString');
      }
      if (info.encoding === 'ia5' && !IA5.test(value)) {
        throw invalidValue(profileName, field, 'contains non-ASCII characters');
      }
      return { type: attribute.type, oid: info.oid, value };
    }),
  );
}

const EMAIL = /^[^\s@]+@[^\s@]+$/;
/**
 * No control character, space or DEL anywhere in an email, UPN or URI SAN: `\s` does not match NUL, and
 * `URL.canParse` strips tabs and newlines before parsing, so neither check alone keeps a NUL-prefix name
 * (`admin\0@evil.example`) or a line break out of a certificate a relying party matches on.
 */
function noControlOrSpace(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code <= 0x20 || code === 0x7f) return false;
  }
  return value.length > 0;
}
const DNS =
  /^(?=.{1,253}$)(\*\.)?([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function renderSubjectAltNames(
  templates: readonly SanTemplate[],
  vars: TemplateVariables,
  profileName: string,
): SubjectAltName[] {
  return templates.map((template) => {
    const value = renderValue(template.value, vars, profileName);
    // A UPN is a UTF8String: the IA5 rule of the others does not keep a bidi override out of it.
    // Controls and spaces are each type's own rule below; a format character is refused for every type.
    const forbidden = formatFromVariables(template.value, vars);
    if (forbidden !== undefined) {
      throw invalidValue(
        profileName,
        `${template.type} SAN`,
        `"${template.value.source}" holds ${forbidden} taken from ${variablesOf(template.value)}; correct that value at its source`,
      );
    }
    const ok =
      template.type === 'email' || template.type === 'upn'
        ? EMAIL.test(value) && noControlOrSpace(value) && IA5.test(template.type === 'email' ? value : '')
        : template.type === 'dns'
          ? DNS.test(value)
          : URL.canParse(value) && noControlOrSpace(value) && IA5.test(value);
    if (!ok)
      throw invalidValue(
        profileName,
        `${template.type} SAN`,
        `"${template.value.source}" did not render to a valid value`,
      );
    return { type: template.type, value };
  });
}
