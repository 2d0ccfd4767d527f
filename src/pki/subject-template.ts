/**
 * Profile templates: subject DNs and SAN entries with `{{placeholders}}` filled from the Chrome process.
 *
 * The DN template is parsed into RDNs and attributes *before* anything is substituted, so a rendered value is
 * always one attribute value: a user email such as `a,b+c@example.com` cannot create new RDNs (DESIGN.md §1).
 * In a template, `\` escapes the next character (`O=Example\, Inc.`).
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

const PLACEHOLDER = /\{\{\s*([A-Za-z]+)\.([A-Za-z]+)\s*\}\}/g;

/** Parses one attribute value or SAN value with `{{root.field}}` placeholders. */
export function parseValueTemplate(source: string): ValueTemplate {
  const segments: Segment[] = [];
  const variables: string[] = [];
  let last = 0;
  for (const match of source.matchAll(PLACEHOLDER)) {
    const [whole, root, field] = match as unknown as [string, string, string];
    const known = TEMPLATE_VARIABLES[root];
    if (known === undefined || !known.includes(field)) {
      throw new TemplateSyntaxError(
        `unknown template variable {{${root}.${field}}}; known: ${Object.entries(TEMPLATE_VARIABLES)
          .flatMap(([r, fs]) => fs.map((f) => `${r}.${f}`))
          .join(', ')}`,
      );
    }
    if (match.index > last) segments.push({ literal: source.slice(last, match.index) });
    segments.push({ variable: `${root}.${field}` });
    variables.push(`${root}.${field}`);
    last = match.index + whole.length;
  }
  if (last < source.length) segments.push({ literal: source.slice(last) });
  const rest = segments.flatMap((s) => ('literal' in s ? [s.literal] : [])).join('');
  if (rest.includes('{{') || rest.includes('}}')) {
    throw new TemplateSyntaxError(`malformed placeholder in "${source}" (write {{root.field}})`);
  }
  return { source, segments, variables };
}

/** Splits on an unescaped separator, keeping escapes in place for the next level. */
function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i] as string;
    if (ch === '\\' && i + 1 < text.length) {
      current += ch + (text[i + 1] as string);
      i += 1;
    } else if (ch === separator) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

function unescape(text: string): string {
  return text.replace(/\\(.)/g, '$1');
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

/** Parses `CN={{user.userPrimaryEmail}},O=Example` into RDNs of attribute templates. */
export function parseSubjectTemplate(source: string): SubjectTemplate {
  if (source.trim() === '') throw new TemplateSyntaxError('subject is empty');
  return splitUnescaped(source, ',').map((rdn) => {
    if (rdn.trim() === '') throw new TemplateSyntaxError(`empty RDN in "${source}"`);
    return splitUnescaped(rdn, '+').map((attribute) => {
      const eq = attribute.search(/(?<!\\)=/);
      if (eq < 0) throw new TemplateSyntaxError(`"${attribute.trim()}" is not TYPE=value`);
      const { type, info } = resolveAttributeType(attribute.slice(0, eq));
      const rawValue = attribute.slice(eq + 1).trim();
      if (rawValue === '') throw new TemplateSyntaxError(`${type} has an empty value`);
      const value = parseValueTemplate(unescape(rawValue));
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
