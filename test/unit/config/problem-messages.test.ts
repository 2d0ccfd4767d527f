/**
 * Configuration problems read as instructions: each names its path and says what to write instead; unknown keys
 * suggest the nearest known key; a secret pasted inline is refused without being echoed.
 */
import { describe, expect, it } from 'vitest';
import { compileConfig, parseConfigText } from '../../../src/config/load.ts';
import { ConfigError } from '../../../src/errors.ts';

const valid = {
  caConnections: { trial_ca: { type: 'local', directory: './ca' } },
  profiles: { device_profile: { subject: 'CN={{device.serialNumber}}', validity: '30d' } },
};

function problemsOf(input: unknown): readonly string[] {
  try {
    compileConfig(input, { source: 'certprov.yaml', baseDir: '/', purpose: 'demo' });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('the configuration was accepted');
}

const RAW_VALIDATOR_WORDING = /Invalid input|expected \w+, received|Unrecognized key/;

describe('configuration problems say what to write instead', () => {
  it.each([
    {
      case: 'an empty file',
      input: parseConfigText('# only a comment\n', 'certprov.yaml'),
      expected: ['the file is empty (or holds only comments): write at least caConnections and profiles'],
    },
    {
      case: 'a missing required field',
      input: { ...valid, profiles: { p: { subject: 'CN=x' } } },
      expected: ['profiles.p.validity: required: write a duration with a unit, e.g. 30s, 15m, 2h, 365d'],
    },
    {
      case: 'an unknown root-level key close to a known one',
      input: { ...valid, profils: {} },
      expected: ['profils: unknown key; did you mean "profiles"?'],
    },
    {
      case: 'an unknown root-level key like nothing known',
      input: { ...valid, frobnicate: 1 },
      expected: ['frobnicate: unknown key; known here: instanceId, chrome, pubsub'],
    },
    {
      case: 'a nested unknown key',
      input: { ...valid, chrome: { endpont: 'https://chromemanagement.googleapis.com' } },
      expected: ['chrome.endpont: unknown key; did you mean "endpoint"?'],
    },
    {
      case: 'an unknown key in a CA connection',
      input: { ...valid, caConnections: { trial_ca: { type: 'local', directory: './ca', dirctory: 'x' } } },
      expected: ['caConnections.trial_ca.dirctory: unknown key; did you mean "directory"?'],
    },
    {
      case: 'a misspelt enum value',
      input: { ...valid, log: { level: 'inf' } },
      expected: [
        'log.level: the text "inf" is not one of trace, debug, info, warn, error, fatal, silent; did you mean "info"?',
      ],
    },
    {
      case: 'a misspelt store type',
      input: { ...valid, store: { type: 'firestor' } },
      expected: ['store.type: the text "firestor" is not one of memory, sqlite, firestore; did you mean "firestore"?'],
    },
    {
      case: 'a SAN entry with a misspelt type',
      input: { ...valid, profiles: { p: { subject: 'CN=x', validity: '1d', subjectAltNames: [{ emial: 'x' }] } } },
      expected: ['profiles.p.subjectAltNames[0]: write exactly one of email, dns, uri, upn (did you mean "email"?)'],
    },
    {
      case: 'a section written as text',
      input: { ...valid, pubsub: 'projects/p/subscriptions/s' },
      expected: ['pubsub: a text value is not accepted here: write a mapping of keys to values'],
    },
    {
      case: 'a misspelt CA type',
      input: { ...valid, caConnections: { trial_ca: { type: 'locl', directory: './ca' } } },
      expected: ['caConnections.trial_ca.type: unknown CA type "locl"; did you mean "local"?'],
    },
  ])('$case', ({ input, expected }) => {
    const problems = problemsOf(input);
    for (const line of expected)
      expect(
        problems.some((p) => p.startsWith(line)),
        problems.join('\n'),
      ).toBe(true);
    for (const p of problems) expect(p).not.toMatch(RAW_VALIDATOR_WORDING);
  });

  it('a CA type that is no typo of a known one is named but not echoed (it may be a secret pasted in the wrong field)', () => {
    const pasted = 'dc-api-key-Zq81mF2kP0sXv7';
    for (const input of [
      { ...valid, caConnections: { trial_ca: { type: pasted, directory: './ca' } } },
      { ...valid, pubsub: 'broken', caConnections: { trial_ca: { type: pasted, directory: './ca' } } }, // file fails too
    ]) {
      const problems = problemsOf(input);
      expect(problems).toContainEqual(
        expect.stringMatching(/^caConnections\.trial_ca\.type: unknown CA type \(a text value\); known: .*\blocal\b/),
      );
      expect(problems.join('\n')).not.toContain(pasted);
    }
  });

  it('an inline secret is refused with the reference to write, and the secret is not echoed', () => {
    const secret = 'dc-api-key-0123456789abcdef';
    const problems = problemsOf({
      ...valid,
      instanceId: 'has spaces',
      caConnections: {
        dc: { type: 'digicert', apiKey: secret, organizationId: 1, processIdCustomFieldId: 7 },
      },
    });
    // Reported together with the root problem: every problem at once.
    expect(problems.some((p) => p.startsWith('instanceId:'))).toBe(true);
    expect(problems).toContain(
      'caConnections.dc.apiKey: a text value is not accepted here: write { file: PATH } (a mounted Kubernetes Secret) or { env: VARIABLE }; the secret itself never goes into the configuration',
    );
    expect(problems.join('\n')).not.toContain(secret);
  });
});
