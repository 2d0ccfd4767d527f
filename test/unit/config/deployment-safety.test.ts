/**
 * Credentials never travel in clear, placeholders left from an example are refused naming the field to edit, and a
 * Chrome endpoint off googleapis.com is flagged.
 */
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { compileConfig, loadConfigFile, type Config } from '../../../src/config/load.ts';
import { placeholderProblems } from '../../../src/config/placeholders.ts';
import { configWarnings } from '../../../src/config/warnings.ts';
import { ConfigError } from '../../../src/errors.ts';
import { DIGICERT_CONNECTION } from '../../support/config-fixtures.ts';
import { readSettings } from '../../deploy/kustomize.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');

const base = {
  caConnections: { trial_ca: { type: 'local', directory: './ca' } },
  profiles: {
    // A user profile: DigiCert's client_authentication_plus (below) issues to users only.
    user_profile: {
      subject: 'CN={{user.userPrimaryEmail}}',
      subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
      validity: '30d',
    },
  },
};
const digicert = DIGICERT_CONNECTION;

function compile(input: unknown): Config {
  return compileConfig(input, { source: 'certprov.yaml', baseDir: ROOT, purpose: 'demo' });
}

function problemsOf(input: unknown): readonly string[] {
  try {
    compile(input);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('credentials never travel in clear', () => {
  it.each([
    ['chrome.endpoint', { ...base, chrome: { endpoint: 'http://chrome-proxy.corp.example:8080' } }],
    [
      'caConnections.dc.baseUrl',
      { ...base, caConnections: { dc: { ...digicert, baseUrl: 'http://www.digicert.com/services/v2' } } },
    ],
  ])('%s over http to another host is a configuration error', (field, input) => {
    expect(problemsOf(input)).toContainEqual(
      expect.stringMatching(
        new RegExp(`^${field.replace(/\./g, '\\.')}: credentials would travel in clear: write an https:// URL`),
      ),
    );
  });

  it.each([
    { ...base, chrome: { endpoint: 'http://127.0.0.1:8443', credentials: 'none' } },
    { ...base, caConnections: { dc: { ...digicert, baseUrl: 'http://localhost:9443/services/v2' } } },
    { ...base, caConnections: { dc: { ...digicert, baseUrl: 'https://certcentral.digicert.eu/services/v2' } } },
  ])('https, or http to a loopback test endpoint, is accepted (%#)', (input) => {
    expect(problemsOf(input)).toEqual([]);
  });
});

describe('a Chrome endpoint off googleapis.com', () => {
  it('is a warning naming the field; the default, another googleapis.com host and loopback are not', () => {
    expect(configWarnings(compile({ ...base, chrome: { endpoint: 'https://chrome-proxy.corp.example' } }))).toEqual([
      expect.stringMatching(/^chrome\.endpoint: https:\/\/chrome-proxy\.corp\.example is not a googleapis\.com host/),
    ]);
    expect(configWarnings(compile(base))).toEqual([]);
    expect(
      configWarnings(compile({ ...base, chrome: { endpoint: 'https://eu-chromemanagement.googleapis.com' } })),
    ).toEqual([]);
    expect(
      configWarnings(compile({ ...base, chrome: { endpoint: 'http://127.0.0.1:9', credentials: 'none' } })),
    ).toEqual([]);
  });
});

describe('placeholders left from an example', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it.each([
    {
      file: 'deploy/overlays/digicert/config.yaml',
      overlay: 'digicert',
      fields: ['pubsub.subscription', 'caConnections.default_ca_config.organizationId'],
    },
    {
      file: 'deploy/overlays/azure-key-vault/config.yaml',
      overlay: 'azure-key-vault',
      fields: ['pubsub.subscription', '.tenantId', '.clientId'],
    },
    {
      file: 'deploy/overlays/google-cas/config.yaml',
      overlay: 'google-cas',
      fields: ['pubsub.subscription', 'caConnections.default_ca_config.caPool'],
    },
    { file: 'config/azure-key-vault.example.yaml', fields: ['.tenantId', '.clientId'] },
    { file: 'config/digicert.example.yaml', fields: ['.organizationId'] },
  ] as const)('$file: each is refused, naming the field to edit', async ({ file, fields, ...entry }) => {
    // An overlay's pod gets GOOGLE_CLOUD_PROJECT from the overlay's settings.env (components/settings).
    const overlay = 'overlay' in entry ? entry.overlay : undefined;
    if (overlay !== undefined) vi.stubEnv('GOOGLE_CLOUD_PROJECT', (await readSettings(overlay)).get('PROJECT_ID'));
    const problems = placeholderProblems(await loadConfigFile(path.join(ROOT, file), 'run'));
    for (const field of fields) {
      expect(
        problems.some((p) => p.split(':')[0]?.endsWith(field) || p.startsWith(`${field}:`)),
        `${field}\n${problems.join('\n')}`,
      ).toBe(true);
    }
    for (const p of problems) expect(p).toMatch(/: (write|".*" still holds the placeholder)|is the example's/);
  });

  it('real values pass', () => {
    const config = compile({
      ...base,
      pubsub: { subscription: 'projects/acme-certs-prod/subscriptions/certprov' },
      store: { type: 'firestore', projectId: 'acme-certs-prod' },
      caConnections: { dc: digicert },
    });
    expect(placeholderProblems(config)).toEqual([]);
  });
});
