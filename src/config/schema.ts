/**
 * The configuration file's schema (DESIGN.md §2). Raw YAML/JSON → validated → compiled, frozen {@link Config}
 * (src/config/load.ts). Every field has a default here or is required; every problem is reported with its path.
 */
import { z } from 'zod';
import { LEAF_KEY_USAGES } from '../pki/key-usage.ts';
import { durationMs, secretReference } from './zod-helpers.ts';
import { DAY_MS } from '../time.ts';

/** Defaults as typed constants; documented in config/*.example.yaml and docs/configuration.md. */
export const DEFAULTS = {
  chrome: {
    customer: 'my_customer',
    endpoint: 'https://chromemanagement.googleapis.com',
    credentials: 'google-default',
    signatureTimeout: '24h',
    requestTimeout: '30s',
    rateLimit: { requestsPerMinute: 2400, maxConcurrent: 64, maxWait: '10s' },
  },
  pubsub: {
    maxInFlight: 100,
    maxExtension: '60m',
    closeTimeout: '10s',
  },
  scheduler: {
    lease: '2m',
    pollInterval: '1s',
    maxConcurrent: 32,
    retryInitial: '1s',
    retryMax: '5m',
    maxAttempts: 30,
    signaturePollInitial: '200ms',
    signaturePollMax: '15m',
    caMaxWait: '72h',
    finishedRetention: '7d',
  },
  http: { port: 8080, host: '0.0.0.0' },
  log: { level: 'info' },
  shutdown: { gracePeriod: '25s' },
} as const;

const logLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

const chromeSchema = z
  .object({
    /** Customer id used when a notification does not carry one. Default `my_customer`. */
    customer: z.string().min(1).default(DEFAULTS.chrome.customer),
    /** Base URL of the Chrome Management API. Default https://chromemanagement.googleapis.com. */
    endpoint: z.url().default(DEFAULTS.chrome.endpoint),
    /** `google-default` (Application Default Credentials, GKE Workload Identity) or `none` (loopback only). */
    credentials: z.enum(['google-default', 'none']).default(DEFAULTS.chrome.credentials),
    /**
     * How long the device may take to sign, counted from a signData that took effect; then setFailure. A Chromebook
     * with its lid closed signs hours later, and a device whose process failed retries only after about a day.
     * Default 24h; 1s to 7d.
     */
    signatureTimeout: durationMs
      .pipe(
        z
          .number()
          .min(1_000, 'at least 1s')
          .max(7 * DAY_MS, 'at most 7d'),
      )
      .prefault(DEFAULTS.chrome.signatureTimeout),
    /** Timeout of one HTTP request. Default 30s. */
    requestTimeout: durationMs.prefault(DEFAULTS.chrome.requestTimeout),
    /**
     * Client-side budget of Chrome Management API requests for the whole replica set (shared through the store, like
     * the DigiCert budget), so that a renewal wave meets a smooth rate instead of 429 storms; a 429 still pauses for
     * its Retry-After. Set it below the project's quota for chromemanagement.googleapis.com.
     */
    rateLimit: z
      .object({
        /** Requests per minute, all replicas together; at most a twelfth of it in any 5 s. Default 2,400. */
        requestsPerMinute: z.number().int().min(12).default(DEFAULTS.chrome.rateLimit.requestsPerMinute),
        /** Requests in flight per replica. Default 64. */
        maxConcurrent: z.number().int().min(1).max(1000).default(DEFAULTS.chrome.rateLimit.maxConcurrent),
        /** Longest wait for budget inside a step; beyond it the step is rescheduled (nothing sent). Default 10s. */
        maxWait: durationMs.prefault(DEFAULTS.chrome.rateLimit.maxWait),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .prefault({});

/**
 * A full subscription name, or a bare subscription id (Pub/Sub's rule: 3–255 characters, starting with a letter, of
 * letters, digits and `-_.~+%`) resolved against GOOGLE_CLOUD_PROJECT when the configuration is compiled.
 */
const SUBSCRIPTION_NAME = /^projects\/[^/]+\/subscriptions\/[^/]+$|^[A-Za-z][\w.~+%-]{2,254}$/;

const pubsubSchema = z
  .object({
    /**
     * `projects/P/subscriptions/S`, or the subscription id `S` alone in the project GOOGLE_CLOUD_PROJECT names (the
     * overlays set it from settings.env, so the project is written in one place). Required by `run`;
     * PUBSUB_EMULATOR_HOST is honoured.
     */
    subscription: z
      .string()
      .regex(
        SUBSCRIPTION_NAME,
        'write the full name projects/PROJECT/subscriptions/NAME, or the id NAME alone with GOOGLE_CLOUD_PROJECT set',
      )
      .optional(),
    /** Most messages held at once (flow control, allowExcessMessages false). Default 100. */
    maxInFlight: z.number().int().min(1).max(10_000).default(DEFAULTS.pubsub.maxInFlight),
    /** Longest time a message is held before Pub/Sub redelivers it (memory store: the whole process). Default 60m. */
    maxExtension: durationMs.prefault(DEFAULTS.pubsub.maxExtension),
    /** Hard bound on closing the subscription at shutdown (the client's close can hang). Default 10s. */
    closeTimeout: durationMs.prefault(DEFAULTS.pubsub.closeTimeout),
  })
  .strict()
  .prefault({});

const storeSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('memory') }).strict(),
    z
      .object({
        type: z.literal('sqlite'),
        /**
         * The database file (relative paths resolve against the configuration file's directory). Default
         * `$CERTPROV_DATA_DIR/certprov.db`, where CERTPROV_DATA_DIR defaults to `./data` in the working directory.
         */
        path: z.string().min(1).optional(),
        /** `full` (default: every commit fsynced) or `normal` (a power cut may undo the last commits). */
        synchronous: z.enum(['full', 'normal']).default('full'),
      })
      .strict(),
    z
      .object({
        type: z.literal('firestore'),
        /** Google Cloud project; default from the environment (GOOGLE_CLOUD_PROJECT / metadata server). */
        projectId: z.string().min(1).optional(),
        /** Firestore database id. Default `(default)`. */
        databaseId: z.string().min(1).default('(default)'),
        /** Collection of process records. Default `certprov-processes`. */
        collection: z.string().min(1).default('certprov-processes'),
      })
      .strict(),
  ])
  // No default here: `run` defaults to sqlite, the demo to memory (src/config/load.ts).
  .optional();

const schedulerSchema = z
  .object({
    /** Lease on a process while a replica works on it; long relative to one step. Default 2m. */
    lease: durationMs.prefault(DEFAULTS.scheduler.lease),
    /** How often each replica looks for due records. Default 1s. */
    pollInterval: durationMs.prefault(DEFAULTS.scheduler.pollInterval),
    /** Processes one replica works on at the same moment. Default 32. */
    maxConcurrent: z.number().int().min(1).max(1000).default(DEFAULTS.scheduler.maxConcurrent),
    /** First retry delay after a transient error; doubles with jitter. Default 1s. */
    retryInitial: durationMs.prefault(DEFAULTS.scheduler.retryInitial),
    /** Longest retry delay. Default 5m. */
    retryMax: durationMs.prefault(DEFAULTS.scheduler.retryMax),
    /** Consecutive transient failures of one step before the process fails. Default 30. */
    maxAttempts: z.number().int().min(1).default(DEFAULTS.scheduler.maxAttempts),
    /**
     * First signature check this long after signData (most devices answer within a second); the gap then doubles
     * with the time waited, up to signaturePollMax. Default 200ms.
     */
    signaturePollInitial: durationMs.prefault(DEFAULTS.scheduler.signaturePollInitial),
    /** Longest gap between signature checks of a device that sleeps (lid closed: hours). Default 15m. */
    signaturePollMax: durationMs.prefault(DEFAULTS.scheduler.signaturePollMax),
    /** Longest wait for a pending CA request before it is cancelled and the process failed. Default 72h. */
    caMaxWait: durationMs.prefault(DEFAULTS.scheduler.caMaxWait),
    /** How long finished records are kept (Firestore TTL on `expireAt`). Default 7d. */
    finishedRetention: durationMs.prefault(DEFAULTS.scheduler.finishedRetention),
  })
  .strict()
  .prefault({});

const sanSchema = z.union([
  z.object({ email: z.string().min(1) }).strict(),
  z.object({ dns: z.string().min(1) }).strict(),
  z.object({ uri: z.string().min(1) }).strict(),
  z.object({ upn: z.string().min(1) }).strict(),
]);

const profileSchema = z
  .object({
    /** Subject DN template, e.g. `CN={{user.userPrimaryEmail}},O=Example`. */
    subject: z.string().min(1),
    /** SAN templates: `{email: …}`, `{dns: …}`, `{uri: …}`, `{upn: …}`. Default none. */
    subjectAltNames: z.array(sanSchema).default([]),
    /** Certificate lifetime, e.g. `365d`. */
    validity: durationMs,
    /** EKU names (clientAuth, serverAuth, emailProtection, codeSigning, smartcardLogon) or OIDs. Default [clientAuth]. */
    extendedKeyUsages: z.array(z.string().min(1)).min(1).default(['clientAuth']),
    /**
     * keyUsage bits of the certificate: digitalSignature, nonRepudiation, keyEncipherment and dataEncipherment (RSA
     * device keys only), keyAgreement (EC only). Default by key type: EC digitalSignature; RSA digitalSignature +
     * keyEncipherment. CAs that set the usage themselves (DigiCert) refuse a profile that sets it.
     */
    keyUsages: z.array(z.enum(LEAF_KEY_USAGES)).min(1).optional(),
    /** CA connections this profile is used with; each must be able to honour it. Default: every connection. */
    caConnections: z.array(z.string().min(1)).min(1).optional(),
    /**
     * Revoke (reason `superseded`) a certificate this long after a renewal superseded it, so a device that kept its
     * old certificate loses it; the grace lets the new one reach every relying party first. Default: off (never).
     */
    revokeSupersededAfter: durationMs.optional(),
  })
  .strict();

export const rawConfigSchema = z
  .object({
    /**
     * callerInstanceId sent with claim: one stable value for every replica of a deployment, unique among the
     * deployments on the tenant. Default: derived from pubsub.subscription (project + name); `certprov` only for a
     * loopback Chrome endpoint (src/config/instance-id.ts).
     */
    instanceId: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,63}$/, 'use 1–63 letters, digits, dot, dash or underscore')
      .optional(),
    chrome: chromeSchema,
    pubsub: pubsubSchema,
    store: storeSchema,
    scheduler: schedulerSchema,
    /** CA connections by caConnectionAdapterConfigReference; each validated by its backend's schema. */
    caConnections: z
      .record(z.string().min(1), z.looseObject({ type: z.string() }))
      .refine((m) => Object.keys(m).length > 0, {
        message: 'configure at least one CA connection',
      }),
    /** Certificate profiles by profileAdapterConfigReference. */
    profiles: z.record(z.string().min(1), profileSchema).refine((m) => Object.keys(m).length > 0, {
      message: 'configure at least one profile',
    }),
    http: z
      .object({
        /** Port of /metrics, /healthz and /readyz; 0 picks a free one. Default 8080. */
        port: z.number().int().min(0).max(65535).default(DEFAULTS.http.port),
        /** Listen address. Default 0.0.0.0. */
        host: z.string().min(1).default(DEFAULTS.http.host),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        /** trace, debug, info, warn, error, fatal or silent. Default info. */
        level: logLevel.default(DEFAULTS.log.level),
        /**
         * Key of the HMAC that hashes user emails and device serials in log lines (`{file}` or `{env}`), one per
         * deployment. Without it the hash is unkeyed and reversible for guessable addresses. Default none.
         */
        userHashKey: secretReference.optional(),
      })
      .strict()
      .prefault({}),
    shutdown: z
      .object({
        /** Time to finish or hand back in-flight work after SIGTERM; keep below terminationGracePeriodSeconds. Default 25s. */
        gracePeriod: durationMs.prefault(DEFAULTS.shutdown.gracePeriod),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type RawConfig = z.infer<typeof rawConfigSchema>;
export type RawProfile = z.infer<typeof profileSchema>;
export type LogLevelName = z.infer<typeof logLevel>;
