/**
 * The subject/SAN template grammar, the security-relevant part (DESIGN.md §1): a value from the device or the user
 * is always ONE attribute value, whatever characters it holds — it cannot add RDNs, attributes or SANs, and it is
 * never expanded as a template. openssl's `asn1parse` of the encoded Name is the independent judge of the
 * structure; malformed templates are refused at config load with the field named.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileConfig } from '../../../src/config/load.ts';
import { ConfigError, TerminalError } from '../../../src/errors.ts';
import { encodeGeneralNames, encodeName } from '../../../src/pki/name-encoding.ts';
import {
  parseSubjectTemplate,
  parseValueTemplate,
  renderSubject,
  renderSubjectAltNames,
  type TemplateVariables,
} from '../../../src/pki/subject-template.ts';
import { rigConfig, type RawConfig } from '../../support/adapter-rig.ts';
import { openssl, withTempDir } from '../../support/openssl.ts';

interface Asn1Line {
  readonly depth: number;
  readonly length: number;
  readonly kind: string;
  readonly text: string;
}

/** `openssl asn1parse` of DER bytes, one entry per element (its depth, content length in bytes and type). */
async function asn1(der: Uint8Array): Promise<Asn1Line[]> {
  return withTempDir(async (dir) => {
    await writeFile(path.join(dir, 'in.der'), der);
    const result = await openssl(['asn1parse', '-inform', 'DER', '-in', path.join(dir, 'in.der')]);
    if (result.code !== 0) throw new Error(`openssl asn1parse failed: ${result.stderr}`);
    return (
      result.stdout
        .split('\n')
        // A value holding a newline continues on the next output line: only element headers start with `N:d=`.
        .filter((line) => /^\s*\d+:d=/.test(line))
        .map((line) => {
          const m = /d=(\d+)\s+hl=\s*\d+\s+l=\s*(\d+)\s+(?:cons|prim):\s+(cont \[ \d+ \]|\S+)\s*(?::(.*))?$/s.exec(
            line,
          );
          if (m === null) throw new Error(`unexpected asn1parse line: ${line}`);
          return { depth: Number(m[1]), length: Number(m[2]), kind: m[3] as string, text: m[4] ?? '' };
        })
    );
  });
}

/** RDNs as openssl sees them: per RDN (SET at depth 1), the attribute OIDs and the value's type and byte length. */
async function rdnsOf(der: Uint8Array): Promise<{ oid: string; type: string; length: number }[][]> {
  const lines = await asn1(der);
  const rdns: { oid: string; type: string; length: number }[][] = [];
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i] as Asn1Line;
    if (line.depth === 1) {
      expect(line.kind).toBe('SET');
      rdns.push([]);
    } else if (line.depth === 3 && line.kind === 'OBJECT') {
      const value = lines[i + 1] as Asn1Line;
      rdns.at(-1)?.push({ oid: line.text.trim(), type: value.kind, length: value.length });
    }
  }
  return rdns;
}

/** The attribute values as openssl prints them (UTF8String content after the colon, taken verbatim). */
async function valuesOf(der: Uint8Array): Promise<string[]> {
  const lines = await asn1(der);
  return lines.flatMap((line, i) => (line.depth === 3 && line.kind === 'OBJECT' ? [lines[i + 1]?.text ?? ''] : []));
}

const processOnly = { id: 'proc-1', customer: 'C0123' };

function withEmail(email: string): TemplateVariables {
  return { process: processOnly, user: { userPrimaryEmail: email, userDirectoryApiId: 'u-1' } };
}

function withSerial(serialNumber: string): TemplateVariables {
  return { process: processOnly, device: { serialNumber, deviceDirectoryApiId: 'd-1' } };
}

describe('a user value with DN syntax stays one UTF8String attribute value', () => {
  const template = parseSubjectTemplate('CN={{user.userPrimaryEmail}},O=Example');
  it.each<[string, string]>([
    ['an injected RDN after a comma', 'a@b.com,CN=admin'],
    ['an injected attribute after a plus', 'a+O=Evil@b.com'],
    ['an escaped comma (RFC 4514 style)', 'a\\,CN=admin@b.com'],
    ['a double quote', '"a"@b.com'],
    ['a backslash', 'a\\b@b.com'],
    ['angle brackets', '<a>@b.com'],
    ['a semicolon (old RDN separator)', 'a@b.com;CN=admin'],
    ['an equals sign', 'a=b@b.com'],
    ['a leading #', '#04024869'],
    ['a leading space', ' a@b.com'],
    ['a trailing space', 'a@b.com '],
    ['non-ASCII', 'Zoë.Müller@bücher.example'],
    ['astral characters', 'a😀@b.com'],
    ['template syntax (not expanded again)', '{{process.customer}}'],
    ['a slash-separated DN', '/CN=admin/O=Evil'],
  ])('%s', async (_label, email) => {
    const name = renderSubject(template, withEmail(email), 'p');
    expect(name).toEqual([
      [{ type: 'CN', oid: '2.5.4.3', value: email }],
      [{ type: 'O', oid: '2.5.4.10', value: 'Example' }],
    ]);
    expect(await rdnsOf(encodeName(name))).toEqual([
      [{ oid: 'commonName', type: 'UTF8STRING', length: Buffer.byteLength(email, 'utf8') }],
      [{ oid: 'organizationName', type: 'UTF8STRING', length: 7 }],
    ]);
  });
});

describe('a device serial in a PrintableString attribute', () => {
  const template = parseSubjectTemplate('SERIALNUMBER={{device.serialNumber}},O=Example');
  it.each<[string, string]>([
    ['an injected attribute after a plus', 'X+O=Evil'],
    ['an injected RDN after a comma', 'X,CN=admin'],
    ['both', 'X+O=Evil,CN=admin+OU=x'],
  ])('stays one value: %s', async (_label, serial) => {
    const name = renderSubject(template, withSerial(serial), 'p');
    expect(name.map((rdn) => rdn.map((a) => [a.type, a.value]))).toEqual([
      [['SERIALNUMBER', serial]],
      [['O', 'Example']],
    ]);
    expect(await rdnsOf(encodeName(name))).toEqual([
      [{ oid: 'serialNumber', type: 'PRINTABLESTRING', length: serial.length }],
      [{ oid: 'organizationName', type: 'UTF8STRING', length: 7 }],
    ]);
  });

  it.each<[string, string]>([
    ['a semicolon', 'X;CN=admin'],
    ['a double quote', 'X"'],
    ['non-ASCII', 'Xé'],
  ])('is refused with the field named when it holds %s', (_label, serial) => {
    expect(() => renderSubject(template, withSerial(serial), 'p')).toThrow(
      /profile "p": subject SERIALNUMBER contains characters outside PrintableString/,
    );
  });
});

describe('template structure', () => {
  it('a multi-valued RDN (+) is one SET holding both attributes; the values cannot add a third', async () => {
    const template = parseSubjectTemplate('CN={{device.serialNumber}}+UID={{device.deviceDirectoryApiId}},O=Example');
    const vars: TemplateVariables = {
      process: processOnly,
      device: { serialNumber: 'S1+OU=Evil', deviceDirectoryApiId: 'd-1,CN=admin' },
    };
    const name = renderSubject(template, vars, 'p');
    expect(name.map((rdn) => rdn.map((a) => [a.type, a.value]))).toEqual([
      [
        ['CN', 'S1+OU=Evil'],
        ['UID', 'd-1,CN=admin'],
      ],
      [['O', 'Example']],
    ]);
    const rdns = await rdnsOf(encodeName(name));
    expect(rdns.map((rdn) => rdn.map((a) => a.oid).sort())).toEqual([['commonName', 'userId'], ['organizationName']]);
  });

  it.each<[string, string, string[][]]>([
    ['an escaped comma in a literal', 'O=Example\\, Inc.', [['O', 'Example, Inc.']]],
    ['an escaped plus in a literal', 'O=A\\+B', [['O', 'A+B']]],
    ['an escaped backslash in a literal', 'O=A\\\\B', [['O', 'A\\B']]],
    ['an equals sign inside a value', 'CN=a=b', [['CN', 'a=b']]],
    [
      'lower-case types and aliases',
      'cn=x,emailAddress=a@b.com',
      [
        ['CN', 'x'],
        ['E', 'a@b.com'],
      ],
    ],
    [
      'spaces around separators',
      ' CN = x , O = y ',
      [
        ['CN', 'x'],
        ['O', 'y'],
      ],
    ],
  ])('%s', (_label, source, expected) => {
    const name = renderSubject(parseSubjectTemplate(source), { process: processOnly }, 'p');
    expect(name.map((rdn) => rdn.map((a) => [a.type, a.value]))).toEqual(expected.map((pair) => [pair]));
  });
});

describe('escapes are honoured before unescaped spaces are trimmed (RFC 4514 §3)', () => {
  it.each<[string, string, string]>([
    ['an escaped trailing space is kept', 'O=Example\\ ', 'Example '],
    ['an escaped leading space is kept', 'O=\\ Example', ' Example'],
    ['an escaped space before an unescaped one: only the escaped one stays', 'O=Example\\  ', 'Example '],
    ['unescaped spaces around the value are dropped', 'O=  Example  ', 'Example'],
    ['a space escaped as hex', 'O=\\20Example\\20', ' Example '],
    ['a comma escaped as hex stays in the value', 'O=A\\2CB', 'A,B'],
    ['UTF-8 bytes escaped as hex are one character', 'O=Z\\C3\\BCrich', 'Zürich'],
    ['an escaped backslash at the end', 'O=A\\\\', 'A\\'],
    ['an escaped equals sign', 'O=a\\=b', 'a=b'],
    ['escaped braces are text, not a placeholder', 'O=\\{\\{process.customer\\}\\}', '{{process.customer}}'],
    ['an escaped space after a placeholder', 'O={{process.customer}}\\ ', 'C0123 '],
  ])('%s', async (_label, source, expected) => {
    const name = renderSubject(parseSubjectTemplate(source), { process: processOnly }, 'p');
    expect(name).toEqual([[{ type: 'O', oid: '2.5.4.10', value: expected }]]);
    const der = encodeName(name);
    expect(await rdnsOf(der)).toEqual([
      [{ oid: 'organizationName', type: 'UTF8STRING', length: Buffer.byteLength(expected, 'utf8') }],
    ]);
    expect(await valuesOf(der)).toEqual([expected]);
  });

  it('keeps the value as written, escapes included, for check-config to print back', () => {
    const attribute = parseSubjectTemplate('O= Example\\, Inc.\\  ').flat()[0];
    expect(attribute?.value.source).toBe('Example\\, Inc.\\ ');
  });
});

describe('a device or user value with control, bidi or invisible format characters is refused at render, naming the field', () => {
  it.each<[string, string, string, TemplateVariables, string]>([
    [
      'a NUL in a CN',
      'CN={{user.userPrimaryEmail}},O=Example',
      'CN',
      withEmail('admin\u0000@b.com'),
      'control character U+0000',
    ],
    [
      'a newline in a CN',
      'CN={{user.userPrimaryEmail}}',
      'CN',
      withEmail('a@b.com\nCN=admin'),
      'control character U+000A',
    ],
    [
      'an escape (ANSI) in a CN',
      'CN={{user.userPrimaryEmail}}',
      'CN',
      withEmail('\u001b[31ma@b.com'),
      'control character U+001B',
    ],
    ['DEL in a CN', 'CN=x{{device.serialNumber}}', 'CN', withSerial('a\u007f'), 'control character U+007F'],
    [
      'a C1 control (NEL) in an OU',
      'OU={{device.serialNumber}}',
      'OU',
      withSerial('a\u0085b'),
      'control character U+0085',
    ],
    [
      'a NUL in an emailAddress (IA5String)',
      'E={{user.userPrimaryEmail}}',
      'E',
      withEmail('a\u0000@b.com'),
      'control character U+0000',
    ],
    [
      'a NUL in a serialNumber',
      'SERIALNUMBER={{device.serialNumber}}',
      'SERIALNUMBER',
      withSerial('X\u0000'),
      'control character U+0000',
    ],
    [
      'a right-to-left override in a CN',
      'CN={{user.userPrimaryEmail}}',
      'CN',
      withEmail('moc.elppa\u202E@evil.example'),
      'bidirectional control U+202E',
    ],
    [
      'a left-to-right embedding in an O',
      'O=x {{device.serialNumber}}',
      'O',
      withSerial('A\u202AB'),
      'bidirectional control U+202A',
    ],
    [
      'a first-strong isolate in an OU',
      'OU={{device.serialNumber}}',
      'OU',
      withSerial('\u2068abc\u2069'),
      'bidirectional control U+2068',
    ],
    [
      'a pop directional isolate in an OU',
      'OU={{device.serialNumber}}',
      'OU',
      withSerial('abc\u2069'),
      'bidirectional control U+2069',
    ],
    [
      'a right-to-left mark in a CN',
      'CN={{device.serialNumber}}',
      'CN',
      withSerial('abc\u200F'),
      'bidirectional control U+200F',
    ],
    [
      'a zero-width space in a CN',
      'CN={{user.userPrimaryEmail}}',
      'CN',
      withEmail('ad\u200Bmin@b.com'),
      'invisible format character U+200B',
    ],
    [
      'a zero-width joiner from the directory',
      'CN={{device.serialNumber}}',
      'CN',
      withSerial('a\u200Db'),
      'invisible format character U+200D',
    ],
    [
      'a byte-order mark in a UID',
      'UID={{user.userDirectoryApiId}}',
      'UID',
      { process: processOnly, user: { userDirectoryApiId: '\uFEFF123' } },
      'invisible format character U+FEFF',
    ],
    [
      'a tag character in a CN',
      'CN={{device.serialNumber}}',
      'CN',
      withSerial('a\u{E0041}'),
      'invisible format character U+E0041',
    ],
  ])('%s', (_label, source, type, vars, what) => {
    const template = parseSubjectTemplate(source);
    let thrown: unknown;
    try {
      renderSubject(template, vars, 'p');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(TerminalError);
    const error = thrown as TerminalError;
    const variable = template.flat()[0]?.value.variables[0] ?? '';
    expect(error.message).toBe(
      `profile "p": subject ${type} (profiles.p.subject) holds ${what} taken from {{${variable}}}; correct that value at its source or build the attribute from another field`,
    );
    // A configuration problem the admin fixes: terminal, from the catalog, no device or user value in it.
    expect(error.reason).toBe('template_invalid_value');
    expect(error.message).not.toMatch(/[\p{Cc}\p{Cf}]|evil/u);
    expect(error.userMessage).toBe(
      `The certificate profile "p" produced an invalid subject ${type}. Ask your administrator to check the profile.`,
    );
  });

  it('an unpaired surrogate (no character at all) is refused too', () => {
    expect(() =>
      renderSubject(parseSubjectTemplate('CN={{user.userPrimaryEmail}}'), withEmail('a\ud800@b.com'), 'p'),
    ).toThrow(/profile "p": subject CN \(profiles\.p\.subject\) holds an unpaired surrogate taken from/);
  });

  it('a tab or a NUL written in the template itself is refused at load', () => {
    expect(() => parseSubjectTemplate('O=a\tb')).toThrow('control character U+0009 at character 4 of "O=a\\tb"');
    expect(() => parseSubjectTemplate('O=a\\00b')).toThrow('control character U+0000 at character 4 of "O=a\\\\00b"');
  });
});

describe('bidi controls and invisible format characters (a name displayed other than its bytes: spoofing)', () => {
  it('a UPN SAN (a UTF8String, not held to ASCII) with a bidi override is refused, naming the field', () => {
    const sans = [{ type: 'upn' as const, value: parseValueTemplate('{{user.userPrimaryEmail}}') }];
    expect(() => renderSubjectAltNames(sans, withEmail('admin\u202E@corp.example'), 'p')).toThrow(
      'profile "p": upn SAN "{{user.userPrimaryEmail}}" holds bidirectional control U+202E taken from {{user.userPrimaryEmail}}; correct that value at its source',
    );
    expect(renderSubjectAltNames(sans, withEmail('zoë@corp.example'), 'p')).toEqual([
      { type: 'upn', value: 'zoë@corp.example' },
    ]);
  });

  it('in the template itself a bidi control or format character is refused at load, shown escaped, not as itself', () => {
    expect(() => parseSubjectTemplate('O=Example\u202Eevil')).toThrow(
      'bidirectional control U+202E at character 10 of "O=Example\\u{202E}evil": it would make the name display differently from what it is',
    );
    // Written as RFC 4514 hex escapes: the same character.
    expect(() => parseSubjectTemplate('O=Example\\E2\\80\\AE')).toThrow(
      /^bidirectional control U\+202E at character 10 /,
    );
    expect(() => parseSubjectTemplate('O=a\u2066b')).toThrow(/^bidirectional control U\+2066 /);
    expect(() => parseSubjectTemplate('O=a\u200Bb')).toThrow(/^invisible format character U\+200B /);
    expect(() => parseValueTemplate('urn:x:\u2067{{device.serialNumber}}')).toThrow(/^bidirectional control U\+2067 /);
    // The joiners shape Persian and Indic spellings: an organisation name the admin wrote may hold them.
    const persian = 'O=\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645';
    expect(renderSubject(parseSubjectTemplate(persian), { process: processOnly }, 'p')).toEqual([
      [{ type: 'O', oid: '2.5.4.10', value: persian.slice(2) }],
    ]);
  });
});

describe('SAN values', () => {
  it.each<[string, 'email' | 'dns' | 'uri', string, TemplateVariables, string]>([
    [
      'an email with DN and SAN syntax',
      'email',
      '{{user.userPrimaryEmail}}',
      withEmail('a@b.com,DNS:evil.com'),
      'a@b.com,DNS:evil.com',
    ],
    [
      'a URI with a comma',
      'uri',
      'urn:x:{{device.serialNumber}}',
      withSerial('a,DNS:evil.com'),
      'urn:x:a,DNS:evil.com',
    ],
  ])('%s stays one GeneralName', async (_label, type, source, vars, expected) => {
    const sans = renderSubjectAltNames([{ type, value: parseValueTemplate(source) }], vars, 'p');
    expect(sans).toEqual([{ type, value: expected }]);
    const lines = await asn1(encodeGeneralNames(sans));
    expect(lines.filter((line) => line.depth === 1)).toHaveLength(1);
    expect(lines[1]?.length).toBe(expected.length);
  });

  it.each<[string, 'email' | 'dns' | 'uri' | 'upn', string, TemplateVariables]>([
    ['a DNS name with a comma', 'dns', '{{device.serialNumber}}.example.com', withSerial('x,DNS:evil.com')],
    ['a DNS name with a space', 'dns', '{{device.serialNumber}}.example.com', withSerial('x evil')],
    ['a DNS name with a NUL', 'dns', '{{device.serialNumber}}.example.com', withSerial('evil.com\u0000')],
    ['an email with a space', 'email', '{{user.userPrimaryEmail}}', withEmail('a@b.com DNS:evil.com')],
    ['an email with a newline', 'email', '{{user.userPrimaryEmail}}', withEmail('a@b.com\nevil')],
    ['a non-ASCII email', 'email', '{{user.userPrimaryEmail}}', withEmail('zoë@b.com')],
    ['an email with two @', 'email', '{{user.userPrimaryEmail}}', withEmail('a@b.com@evil.com')],
    // NUL-prefix names: `\s` does not match NUL, and URL.canParse drops tabs and newlines before parsing.
    ['an email with a NUL', 'email', '{{user.userPrimaryEmail}}', withEmail('admin\u0000@evil.com')],
    ['an email ending in a control character', 'email', '{{user.userPrimaryEmail}}', withEmail('a@b.com\u0001')],
    ['a UPN with a NUL', 'upn', '{{user.userPrimaryEmail}}', withEmail('admin\u0000@corp.example')],
    ['a URI with a NUL', 'uri', 'urn:x:{{device.serialNumber}}', withSerial('a\u0000b')],
    ['a URI with a newline', 'uri', 'urn:x:{{device.serialNumber}}', withSerial('a\nb')],
    ['a URI with a tab', 'uri', 'urn:x:{{device.serialNumber}}', withSerial('a\tb')],
    ['a URI with DEL', 'uri', 'urn:x:{{device.serialNumber}}', withSerial('a\u007fb')],
  ])('%s is refused, naming the field', (_label, type, source, vars) => {
    expect(() => renderSubjectAltNames([{ type, value: parseValueTemplate(source) }], vars, 'p')).toThrow(
      new RegExp(`profile "p": ${type} SAN "${source.replace(/[{}.]/g, '\\$&')}" did not render to a valid value`),
    );
  });
});

describe('config load refuses malformed templates with the field named', () => {
  function problemsOf(profile: RawConfig): string[] {
    try {
      compileConfig(
        rigConfig({
          endpoint: 'http://127.0.0.1:1',
          caConnections: { local: { type: 'local', directory: '/tmp/ca' } },
          profiles: { p: { validity: '30d', ...profile } },
        }),
        { source: 'test', baseDir: '/tmp', purpose: 'demo' },
      );
      return [];
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return [...error.problems];
    }
  }

  it.each<[string, RawConfig, RegExp]>([
    [
      'an unknown variable',
      { subject: 'CN={{device.imei}}' },
      /^profiles\.p\.subject: unknown template variable \{\{device\.imei\}\}; known: device\.deviceDirectoryApiId/,
    ],
    [
      'an unknown root',
      { subject: 'CN={{env.HOME}}' },
      /^profiles\.p\.subject: unknown template variable \{\{env\.HOME\}\}/,
    ],
    [
      'an unclosed placeholder',
      { subject: 'CN={{device.serialNumber}' },
      /^profiles\.p\.subject: malformed placeholder at character 4 of "CN=\{\{device\.serialNumber\}" \(write \{\{root\.field\}\}\)$/,
    ],
    [
      'a stray } after a placeholder',
      { subject: 'CN={{device.serialNumber}}}' },
      /^profiles\.p\.subject: stray "\}" at character 27 of "CN=\{\{device\.serialNumber\}\}\}" \(write \\\} for a literal brace\)$/,
    ],
    [
      'a stray } in a later RDN (the position counts from the template start)',
      { subject: 'O=x,CN=a}b' },
      /^profiles\.p\.subject: stray "\}" at character 9 of "O=x,CN=a\}b"/,
    ],
    ['a single {', { subject: 'CN={device.serialNumber}' }, /^profiles\.p\.subject: stray "\{" at character 4 of /],
    [
      'a third { before a placeholder',
      { subject: 'CN={{{device.serialNumber}}' },
      /^profiles\.p\.subject: malformed placeholder at character 4 of /,
    ],
    [
      'a trailing backslash',
      { subject: 'O=Example\\' },
      /^profiles\.p\.subject: "\\" at character 10 of "O=Example\\\\" escapes nothing \(write \\\\ for a backslash\)$/,
    ],
    [
      'hex escapes that are not UTF-8',
      { subject: 'O=\\C3\\28' },
      /^profiles\.p\.subject: the escaped bytes at character 3 of .* are not UTF-8$/,
    ],
    [
      'a stray } after a placeholder in a SAN',
      { subject: 'CN=x', subjectAltNames: [{ dns: '{{device.serialNumber}}}.example.com' }] },
      /^profiles\.p\.subjectAltNames\[0\]\.dns: stray "\}" at character 24 of "\{\{device\.serialNumber\}\}\}\.example\.com"$/,
    ],
    [
      'a bidi override in the fixed text (shown escaped)',
      { subject: 'CN={{device.serialNumber}},O=Exa\u202Emple' },
      /^profiles\.p\.subject: bidirectional control U\+202E at character 33 of "CN=\{\{device\.serialNumber\}\},O=Exa\\u\{202E\}mple"/,
    ],
    [
      'a bidi isolate in a SAN',
      { subject: 'CN=x', subjectAltNames: [{ uri: 'urn:x:\u2066{{device.serialNumber}}' }] },
      /^profiles\.p\.subjectAltNames\[0\]\.uri: bidirectional control U\+2066 at character 7 of /,
    ],
    [
      'a placeholder without a field',
      { subject: 'CN={{serialNumber}}' },
      /^profiles\.p\.subject: malformed placeholder/,
    ],
    [
      'an unknown attribute type',
      { subject: 'XX=foo' },
      /^profiles\.p\.subject: unknown subject attribute "XX"; known: CN/,
    ],
    ['an attribute without =', { subject: 'CN' }, /^profiles\.p\.subject: "CN" is not TYPE=value/],
    ['an empty value', { subject: 'CN=,O=x' }, /^profiles\.p\.subject: CN has an empty value/],
    ['an empty RDN', { subject: 'CN=a,,O=b' }, /^profiles\.p\.subject: empty RDN/],
    ['an empty attribute in a multi-valued RDN', { subject: 'CN=a+' }, /^profiles\.p\.subject: "" is not TYPE=value/],
    [
      'an unknown variable in a SAN',
      { subject: 'CN=x', subjectAltNames: [{ email: '{{user.email}}' }] },
      /^profiles\.p\.subjectAltNames\[0\]\.email: unknown template variable \{\{user\.email\}\}/,
    ],
    [
      'a malformed placeholder in a SAN',
      { subject: 'CN=x', subjectAltNames: [{ dns: '{{device.serialNumber}.example.com' }] },
      /^profiles\.p\.subjectAltNames\[0\]\.dns: malformed placeholder/,
    ],
  ])('%s', (_label, profile, problem) => {
    expect(problemsOf(profile)).toEqual(expect.arrayContaining([expect.stringMatching(problem)]));
  });
});
