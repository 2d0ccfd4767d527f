/**
 * Settings that make the adapter a good citizen of a real tenant: a deployment identity that is never a silent
 * shared default, a signature wait sized for sleeping devices, a Chrome API budget, and a warning when the signature
 * timeout leaves no room to recover from an unclear signData.
 */
import { describe, expect, it } from 'vitest';
import { compileConfig, type ConfigPurpose } from '../../../src/config/load.ts';
import { instanceIdFromSubscription } from '../../../src/config/instance-id.ts';
import { placeholderProblems } from '../../../src/config/placeholders.ts';
import { configWarnings } from '../../../src/config/warnings.ts';
import { ConfigError } from '../../../src/errors.ts';

const base = {
  caConnections: { trial_ca: { type: 'local', directory: './ca' } },
  profiles: { device_profile: { subject: 'CN={{device.serialNumber}}', validity: '30d' } },
};
const SUBSCRIPTION = 'projects/acme-prod/subscriptions/certprov-sub';

function compile(input: Record<string, unknown>, purpose: ConfigPurpose = 'run', env: NodeJS.ProcessEnv = {}) {
  return compileConfig({ ...base, ...input }, { source: 'certprov.yaml', baseDir: '/', purpose, env });
}

function problemsOf(
  input: Record<string, unknown>,
  purpose: ConfigPurpose = 'run',
  env: NodeJS.ProcessEnv = {},
): readonly string[] {
  try {
    compile(input, purpose, env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('the configuration was accepted');
}

describe('instanceId: no silent default against a real endpoint', () => {
  it('is derived from the subscription (project + name) when not configured, and says so', () => {
    const config = compile({ pubsub: { subscription: SUBSCRIPTION } });
    expect(config.instanceId).toBe('acme-prod.certprov-sub');
    expect(config.instanceIdSource).toBe(`derived from pubsub.subscription ${SUBSCRIPTION}`);
  });

  it('is the configured value when given', () => {
    const config = compile({ instanceId: 'fleet-a', pubsub: { subscription: SUBSCRIPTION } });
    expect([config.instanceId, config.instanceIdSource]).toEqual(['fleet-a', 'configured']);
  });

  it('is required when nothing names the deployment', () => {
    expect(problemsOf({ pubsub: {} })).toEqual(
      expect.arrayContaining([expect.stringMatching(/^instanceId: required for a real Chrome endpoint/)]),
    );
    expect(compile({ pubsub: {} }, 'demo').instanceIdSource).toBe('default (not for run)');
  });

  it('falls back to certprov only for a loopback endpoint', () => {
    const config = compile({ chrome: { endpoint: 'http://127.0.0.1:9', credentials: 'none' } }, 'demo');
    expect([config.instanceId, config.instanceIdSource]).toEqual(['certprov', 'default (loopback Chrome endpoint)']);
  });

  it('derives ids that differ per subscription and fit the alphabet and 63 characters', () => {
    const long = `projects/p/subscriptions/${'s'.repeat(200)}`;
    const other = `projects/p/subscriptions/${'s'.repeat(199)}t`;
    for (const id of [instanceIdFromSubscription(long), instanceIdFromSubscription(other)]) {
      expect(id).toMatch(/^[A-Za-z0-9._-]{1,63}$/);
    }
    expect(instanceIdFromSubscription(long)).not.toBe(instanceIdFromSubscription(other));
    expect(instanceIdFromSubscription('projects/a/subscriptions/b')).not.toBe(
      instanceIdFromSubscription('projects/b/subscriptions/a'),
    );
  });
});

describe('pubsub.subscription as an id alone (the overlays name the project once, in settings.env)', () => {
  it('takes its project from GOOGLE_CLOUD_PROJECT, and derives the same instanceId as the full name', () => {
    const config = compile({ pubsub: { subscription: 'certprov-sub' } }, 'run', { GOOGLE_CLOUD_PROJECT: 'acme-prod' });
    expect(config.pubsub.subscription).toBe(SUBSCRIPTION);
    expect(config.pubsub.projectFromEnvironment).toBe(true);
    expect(config.instanceId).toBe(compile({ pubsub: { subscription: SUBSCRIPTION } }).instanceId);
  });

  it('is refused without GOOGLE_CLOUD_PROJECT, saying both ways to fix it', () => {
    expect(problemsOf({ pubsub: { subscription: 'certprov-sub' } })).toContain(
      'pubsub.subscription: "certprov-sub" is a subscription id without its project: set GOOGLE_CLOUD_PROJECT (the overlays set it from settings.env), or write projects/PROJECT/subscriptions/certprov-sub',
    );
  });

  it('leaves a full name alone, whatever GOOGLE_CLOUD_PROJECT says', () => {
    const config = compile({ pubsub: { subscription: SUBSCRIPTION } }, 'run', { GOOGLE_CLOUD_PROJECT: 'other' });
    expect([config.pubsub.subscription, config.pubsub.projectFromEnvironment]).toEqual([SUBSCRIPTION, false]);
  });

  it.each(['projects/acme/subscriptions', '9lives', 'a/b'])('refuses the malformed name %s', (subscription) => {
    expect(problemsOf({ pubsub: { subscription } }, 'run', { GOOGLE_CLOUD_PROJECT: 'acme-prod' }).join('\n')).toMatch(
      /^pubsub\.subscription: .*projects\/PROJECT\/subscriptions\/NAME, or the id NAME alone with GOOGLE_CLOUD_PROJECT set/m,
    );
  });

  it('names settings.env when the project left in GOOGLE_CLOUD_PROJECT is a placeholder', () => {
    const config = compile({ pubsub: { subscription: 'certprov' } }, 'run', { GOOGLE_CLOUD_PROJECT: 'PROJECT_ID' });
    expect(placeholderProblems(config)).toEqual([
      `pubsub.subscription: GOOGLE_CLOUD_PROJECT is "PROJECT_ID", a placeholder: write your project id as PROJECT_ID in the overlay's settings.env (or set the variable)`,
    ]);
  });
});

describe('sleeping devices', () => {
  it('waits 24 h for a signature by default, polls from 200 ms up to 15 min, with a Chrome budget', () => {
    const config = compile({ pubsub: { subscription: SUBSCRIPTION } });
    expect(config.chrome.signatureTimeoutMs).toBe(24 * 3_600_000);
    expect(config.scheduler.signaturePollInitialMs).toBe(200);
    expect(config.scheduler.signaturePollMaxMs).toBe(15 * 60_000);
    expect(config.chrome.rateLimit).toEqual({ requestsPerMinute: 2400, maxConcurrent: 64, maxWaitMs: 10_000 });
    expect(configWarnings(config)).toEqual([]);
  });

  it.each(['8d', '500ms'])('bounds chrome.signatureTimeout (%s is refused)', (value) => {
    expect(problemsOf({ pubsub: { subscription: SUBSCRIPTION }, chrome: { signatureTimeout: value } })).toEqual([
      expect.stringMatching(/^chrome\.signatureTimeout: /),
    ]);
  });

  it('refuses a first signature check later than the longest gap', () => {
    expect(
      problemsOf({
        pubsub: { subscription: SUBSCRIPTION },
        scheduler: { signaturePollInitial: '1m', signaturePollMax: '30s' },
      }),
    ).toEqual(['scheduler.signaturePollInitial: must not exceed scheduler.signaturePollMax']);
  });

  it('warns when signatureTimeout leaves no room to recover from an unclear signData (60s with 30s requests)', () => {
    const config = compile({ pubsub: { subscription: SUBSCRIPTION }, chrome: { signatureTimeout: '60s' } });
    expect(configWarnings(config)).toEqual([expect.stringMatching(/^chrome\.signatureTimeout \(1m\) leaves no room/)]);
    expect(configWarnings(config)[0]).toContain('2 × chrome.requestTimeout (1m)');
  });
});
