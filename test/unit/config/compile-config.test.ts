/**
 * compileConfig beyond the templates (test/unit/pki/template-grammar.test.ts): the defaults a minimal file gets,
 * one problem per invalid section — each naming its path, in our words rather than the validator's, all reported
 * at once —, what comes from the environment, cross references between profiles and connections, and secrets that
 * never appear in a problem. Related cases live beside their topic: instanceId and the bare subscription id in
 * tenant-settings.test.ts, the sqlite default path in test/unit/store/sqlite.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { compileConfig, parseConfigText, type Config, type ConfigPurpose } from '../../../src/config/load.ts';
import { ConfigError } from '../../../src/errors.ts';
import { DIGICERT_CONNECTION } from '../../support/config-fixtures.ts';

const minimal = {
  caConnections: { ca: { type: 'local', directory: './ca' } },
  profiles: { p: { subject: 'CN={{device.serialNumber}}', validity: '30d' } },
};
const digicert = DIGICERT_CONNECTION;

function compile(input: unknown, purpose: ConfigPurpose = 'demo', env: NodeJS.ProcessEnv = {}): Config {
  return compileConfig(input, { source: 'certprov.yaml', baseDir: '/etc/certprov', purpose, env });
}

/** The problems, and the whole error text (what the operator reads). */
function refusal(input: unknown, purpose: ConfigPurpose = 'demo', env: NodeJS.ProcessEnv = {}) {
  try {
    compile(input, purpose, env);
  } catch (error) {
    if (error instanceof ConfigError) return { problems: [...error.problems], text: error.message };
    throw error;
  }
  throw new Error('the configuration was accepted');
}

const problemsOf = (input: unknown, purpose?: ConfigPurpose, env?: NodeJS.ProcessEnv) =>
  refusal(input, purpose, env).problems;

/** Wording of the validator that reaches the operator only when a message was not written for the case. */
const VALIDATOR_WORDING = /Invalid input|Invalid URL|expected \w+, received|Too (small|big)|[<>]=\d|Unrecognized key/;

describe('a minimal file gets every default', () => {
  const config = compile(minimal);

  it('in each section, durations in milliseconds', () => {
    expect({
      chrome: config.chrome,
      pubsub: config.pubsub,
      store: config.store,
      scheduler: config.scheduler,
      http: config.http,
      log: config.log,
      shutdown: config.shutdown,
    }).toEqual({
      chrome: {
        customer: 'my_customer',
        endpoint: 'https://chromemanagement.googleapis.com',
        credentials: 'google-default',
        signatureTimeoutMs: 24 * 3_600_000,
        requestTimeoutMs: 30_000,
        rateLimit: { requestsPerMinute: 2400, maxConcurrent: 64, maxWaitMs: 10_000 },
      },
      pubsub: {
        subscription: undefined,
        projectFromEnvironment: false,
        maxInFlight: 100,
        maxExtensionMs: 60 * 60_000,
        closeTimeoutMs: 10_000,
      },
      store: { type: 'memory' },
      scheduler: {
        leaseMs: 2 * 60_000,
        pollIntervalMs: 1_000,
        maxConcurrent: 32,
        retryInitialMs: 1_000,
        retryMaxMs: 5 * 60_000,
        maxAttempts: 30,
        signaturePollInitialMs: 200,
        signaturePollMaxMs: 15 * 60_000,
        caMaxWaitMs: 72 * 3_600_000,
        finishedRetentionMs: 7 * 24 * 3_600_000,
      },
      http: { port: 8080, host: '0.0.0.0' },
      log: { level: 'info' },
      shutdown: { gracePeriodMs: 25_000 },
    });
    expect([config.source, config.baseDir]).toEqual(['certprov.yaml', '/etc/certprov']);
  });

  it('in a profile: no SANs, clientAuth, the keyUsage by key type, every connection, no revocation of superseded', () => {
    const profile = compile({
      ...minimal,
      caConnections: { a: minimal.caConnections.ca, b: { type: 'local', directory: './b' } },
    }).profiles.get('p');
    expect(profile).toMatchObject({
      name: 'p',
      subjectAltNames: [],
      validityMs: 30 * 24 * 3_600_000,
      extendedKeyUsages: ['1.3.6.1.5.5.7.3.2'],
      caConnections: ['a', 'b'],
    });
    expect(profile).not.toHaveProperty('keyUsages');
    expect(profile).not.toHaveProperty('revokeSupersededAfterMs');
  });

  it('drops trailing slashes from the Chrome endpoint', () => {
    expect(
      compile({ ...minimal, chrome: { endpoint: 'https://chromemanagement.googleapis.com//' } }).chrome.endpoint,
    ).toBe('https://chromemanagement.googleapis.com');
  });

  it('is frozen all the way down, maps included', () => {
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.scheduler)).toBe(true);
    expect(Object.isFrozen(config.profiles.get('p')?.subject)).toBe(true);
    expect(() => {
      (config.chrome.rateLimit as { requestsPerMinute: number }).requestsPerMinute = 1;
    }).toThrow(TypeError);
  });
});

describe('each section refuses invalid input, naming the path in our words', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['instanceId', { instanceId: 'two words' }, 'instanceId: use 1–63 letters, digits, dot, dash or underscore'],
    [
      'chrome.endpoint',
      { chrome: { endpoint: 'chromemanagement.googleapis.com' } },
      'chrome.endpoint: is not a URL: write the scheme and host, e.g. https://service.example.com',
    ],
    ['chrome.customer', { chrome: { customer: '' } }, 'chrome.customer: must not be empty'],
    [
      'chrome.rateLimit',
      { chrome: { rateLimit: { requestsPerMinute: 6 } } },
      'chrome.rateLimit.requestsPerMinute: must be at least 12',
    ],
    [
      'chrome.signatureTimeout (its own bound message)',
      { chrome: { signatureTimeout: '100ms' } },
      'chrome.signatureTimeout: at least 1s',
    ],
    ['pubsub.maxInFlight', { pubsub: { maxInFlight: 20_000 } }, 'pubsub.maxInFlight: must be at most 10000'],
    [
      'pubsub.maxExtension (a bare number)',
      { pubsub: { maxExtension: 300 } },
      'pubsub.maxExtension: "300" is not a duration; write it with a unit, e.g. 30s, 15m, 2h, 365d',
    ],
    ['store', { store: { type: 'sqlite', path: '' } }, 'store.path: must not be empty'],
    ['store.type', { store: {} }, 'store.type: required: write one of memory, sqlite, firestore'],
    ['scheduler.maxConcurrent', { scheduler: { maxConcurrent: 0 } }, 'scheduler.maxConcurrent: must be at least 1'],
    [
      'scheduler retry bounds',
      { scheduler: { retryInitial: '10m', retryMax: '1m' } },
      'scheduler.retryInitial: must not exceed scheduler.retryMax',
    ],
    ['caConnections', { caConnections: {} }, 'caConnections: configure at least one CA connection'],
    ['profiles', { profiles: {} }, 'profiles: configure at least one profile'],
    [
      'profiles.*.extendedKeyUsages',
      { profiles: { p: { ...minimal.profiles.p, extendedKeyUsages: [] } } },
      'profiles.p.extendedKeyUsages: must list at least one entry',
    ],
    ['http.port', { http: { port: 70_000 } }, 'http.port: must be at most 65535'],
    ['http.host', { http: { host: '' } }, 'http.host: must not be empty'],
    [
      'log.level',
      { log: { level: 'inf' } },
      'log.level: the text "inf" is not one of trace, debug, info, warn, error, fatal, silent; did you mean "info"?',
    ],
    [
      'log.userHashKey',
      { log: { userHashKey: { file: 'key', env: 'KEY' } } },
      'log.userHashKey: give exactly one of file or env',
    ],
    [
      'shutdown.gracePeriod',
      { shutdown: { gracePeriod: '25 seconds' } },
      'shutdown.gracePeriod: "25 seconds" is not a duration; write it with a unit, e.g. 30s, 15m, 2h, 365d',
    ],
  ])('%s', (_section, patch, problem) => {
    const problems = problemsOf({ ...minimal, ...patch });
    expect(problems).toEqual([problem]);
    expect(problems[0]).not.toMatch(VALIDATOR_WORDING);
  });

  it('reports every section at once, schema and cross-field problems together', () => {
    const problems = problemsOf({
      instanceId: 'two words',
      chrome: { customer: '' },
      pubsub: { maxInFlight: 0 },
      store: { type: 'sqlite', path: '' },
      scheduler: { maxConcurrent: 0 },
      caConnections: { ca: { type: 'local', directory: 7 } },
      profiles: { p: { subject: 'CN=x' } },
      http: { port: -1 },
      log: { level: 'loud' },
      shutdown: { gracePeriod: 'soon' },
    });
    expect(problems.map((p) => p.split(/[.:[]/)[0])).toEqual(
      expect.arrayContaining([
        'instanceId',
        'chrome',
        'pubsub',
        'store',
        'scheduler',
        'caConnections',
        'profiles',
        'http',
        'log',
        'shutdown',
      ]),
    );
    for (const p of problems) expect(p).not.toMatch(VALIDATOR_WORDING);
  });

  it('reports cross-field problems of several sections at once', () => {
    const problems = problemsOf({
      ...minimal,
      chrome: { endpoint: 'https://chrome-proxy.corp.example', credentials: 'none' },
      scheduler: { retryInitial: '10m', retryMax: '1m', signaturePollInitial: '1h', signaturePollMax: '1m' },
    });
    expect(problems).toEqual([
      'chrome.credentials: "none" is allowed only for loopback endpoints (the sandbox and tests)',
      'scheduler.signaturePollInitial: must not exceed scheduler.signaturePollMax',
      'scheduler.retryInitial: must not exceed scheduler.retryMax',
    ]);
  });
});

describe('what comes from the environment', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('reads GOOGLE_CLOUD_PROJECT from the environment it is given, not from the process', () => {
    vi.stubEnv('GOOGLE_CLOUD_PROJECT', 'process-project');
    expect(
      problemsOf({ ...minimal, instanceId: 'fleet-a', pubsub: { subscription: 'certprov-sub' } }, 'run', {}),
    ).toEqual([
      expect.stringMatching(/^pubsub\.subscription: "certprov-sub" is a subscription id without its project/),
    ]);
    const config = compile({ ...minimal, instanceId: 'fleet-a', pubsub: { subscription: 'certprov-sub' } }, 'run', {
      GOOGLE_CLOUD_PROJECT: ' given-project ',
    });
    expect(config.pubsub.subscription).toBe('projects/given-project/subscriptions/certprov-sub');
  });

  it('treats a blank GOOGLE_CLOUD_PROJECT as unset', () => {
    expect(
      problemsOf({ ...minimal, instanceId: 'fleet-a', pubsub: { subscription: 'certprov-sub' } }, 'run', {
        GOOGLE_CLOUD_PROJECT: '  ',
      }),
    ).toEqual([
      expect.stringMatching(/^pubsub\.subscription: "certprov-sub" is a subscription id without its project/),
    ]);
  });

  it('refuses a GOOGLE_CLOUD_PROJECT that is a path rather than an id', () => {
    expect(
      problemsOf({ ...minimal, instanceId: 'fleet-a', pubsub: { subscription: 'certprov-sub' } }, 'run', {
        GOOGLE_CLOUD_PROJECT: 'projects/acme-prod',
      }),
    ).toEqual([
      'pubsub.subscription: GOOGLE_CLOUD_PROJECT "projects/acme-prod" is not a project id (write the id alone, e.g. my-project)',
    ]);
  });

  it('run without a subscription is refused; the demo needs none', () => {
    expect(problemsOf(minimal, 'run')).toContain(
      'pubsub.subscription: required by run (projects/PROJECT/subscriptions/NAME)',
    );
    expect(compile(minimal, 'demo').pubsub.subscription).toBeUndefined();
  });
});

describe('the store a file without one gets', () => {
  const withDigicert = {
    ...minimal,
    pubsub: { subscription: 'projects/acme-prod/subscriptions/certprov' },
    caConnections: { dc: digicert },
    profiles: {
      u: {
        subject: 'CN={{user.userPrimaryEmail}}',
        subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
        validity: '30d',
      },
    },
  };

  it('is sqlite for run, which satisfies a connection that needs a durable store', () => {
    expect(compile(withDigicert, 'run').store).toMatchObject({ type: 'sqlite', synchronous: 'full' });
  });

  it('is memory for the demo; memory written out for run is refused for that connection', () => {
    expect(compile(withDigicert, 'demo').store).toEqual({ type: 'memory' });
    expect(problemsOf({ ...withDigicert, store: { type: 'memory' } }, 'run')).toEqual([
      expect.stringMatching(/^caConnections\.dc: a digicert connection needs a durable store/),
    ]);
  });

  it('firestore takes its defaults', () => {
    expect(compile({ ...minimal, store: { type: 'firestore' } }).store).toEqual({
      type: 'firestore',
      databaseId: '(default)',
      collection: 'certprov-processes',
    });
  });
});

describe('profiles and connections refer to each other by name', () => {
  const twoConnections = { alpha: { type: 'local', directory: './a' }, beta: { type: 'local', directory: './b' } };

  it('a profile naming an unknown connection is refused, suggesting the close one', () => {
    expect(
      problemsOf({
        caConnections: twoConnections,
        profiles: { p: { ...minimal.profiles.p, caConnections: ['alpah', 'gamma'] } },
      }),
    ).toEqual([
      'profiles.p.caConnections[0]: no CA connection named "alpah"; did you mean "alpha"?',
      'profiles.p.caConnections[1]: no CA connection named "gamma"; known here: alpha, beta',
    ]);
  });

  it('a connection listed twice in one profile is refused', () => {
    expect(
      problemsOf({
        caConnections: twoConnections,
        profiles: { p: { ...minimal.profiles.p, caConnections: ['beta', 'alpha', 'beta'] } },
      }),
    ).toEqual(['profiles.p.caConnections[2]: "beta" is listed twice']);
  });

  it('a profile is used only with the connections it names', () => {
    const config = compile({
      caConnections: twoConnections,
      profiles: { p: { ...minimal.profiles.p, caConnections: ['beta'] } },
    });
    expect(config.profiles.get('p')?.caConnections).toEqual(['beta']);
  });

  it('a profile is checked against each connection it names (not against the others)', () => {
    const config = {
      caConnections: { local: { type: 'local', directory: './ca' }, dc: digicert },
      profiles: { p: { subject: 'CN={{device.serialNumber}},L=Somewhere', validity: '30d' } },
    };
    expect(problemsOf({ ...config, profiles: { p: { ...config.profiles.p, caConnections: ['dc'] } } })).toEqual(
      expect.arrayContaining([expect.stringMatching(/^profiles\.p\.subject: CA connection "dc" \(type digicert\)/)]),
    );
    expect(
      compile({ ...config, profiles: { p: { ...config.profiles.p, caConnections: ['local'] } } }).profiles.size,
    ).toBe(1);
  });

  it.each([
    ['profiles', 'profiles:\n  p: { subject: CN=x, validity: 1d }\n  p: { subject: CN=y, validity: 2d }\n'],
    ['caConnections', 'caConnections:\n  ca: { type: local }\n  ca: { type: local }\n'],
  ])('a name given twice in %s is refused with its line', (_section, text) => {
    expect(() => parseConfigText(text, 'certprov.yaml')).toThrow(
      expect.objectContaining({ problems: [expect.stringMatching(/^Map keys must be unique at line 3/)] }),
    );
  });
});

describe('a secret in the wrong place is never echoed', () => {
  const SECRET = 'Zx8Q~sEcReT-0123456789abcdefghij';
  const azure = {
    type: 'azure-key-vault',
    vaultUrl: 'https://acme.vault.azure.net',
    certificateName: 'issuing',
    credential: {
      type: 'client-secret',
      tenantId: '3f1c2a9e-1234-4abc-9def-0123456789ab',
      clientId: '6b0d5e7f-4321-4cba-8fed-ba9876543210',
    },
  };

  it.each<[string, Record<string, unknown>, string]>([
    [
      'as the DigiCert API key',
      { caConnections: { dc: { ...digicert, apiKey: SECRET } } },
      'caConnections.dc.apiKey: a text value is not accepted here',
    ],
    [
      'as an Azure client secret',
      { caConnections: { kv: { ...azure, credential: { ...azure.credential, clientSecret: SECRET } } } },
      'caConnections.kv.credential.clientSecret: a text value is not accepted here',
    ],
    ['as the log hash key', { log: { userHashKey: SECRET } }, 'log.userHashKey: a text value is not accepted here'],
    [
      'inside a secret reference',
      { log: { userHashKey: { value: SECRET } } },
      'log.userHashKey.value: unknown key; known here: file, env',
    ],
    [
      'under a misspelt key',
      { caConnections: { dc: { ...digicert, apiKye: SECRET } } },
      'caConnections.dc.apiKye: unknown key; did you mean "apiKey"?',
    ],
    [
      'as chrome.credentials (a value of a closed set)',
      { chrome: { credentials: SECRET } },
      'chrome.credentials: a text value is not one of google-default, none',
    ],
  ])('%s', (_label, patch, problem) => {
    const { problems, text } = refusal({ ...minimal, ...patch });
    expect(problems).toEqual(expect.arrayContaining([expect.stringContaining(problem)]));
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(SECRET.slice(0, 12));
  });

  it('nor in a YAML syntax error on its line', () => {
    const text = `caConnections:\n  dc:\n    apiKey: "${SECRET}\nprofiles: {}\n`;
    let thrown: unknown;
    try {
      parseConfigText(text, 'certprov.yaml');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).message).toMatch(/Missing closing "quote at line \d/);
    expect((thrown as ConfigError).message).not.toContain(SECRET.slice(0, 12));
  });
});
