/**
 * Loading: file (YAML or JSON) → schema → cross-field checks → compiled, frozen {@link Config}. Every problem is
 * collected with its path and reported at once (Temporal's worker options, cert-manager's validation).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { CA_BACKENDS } from '../ca/registry.ts';
import type { CaBackend, CaCapabilities, ProfileTemplate } from '../ca/types.ts';
import { resolveExtendedKeyUsage } from '../pki/extended-key-usage.ts';
import {
  parseSubjectTemplate,
  parseValueTemplate,
  TemplateSyntaxError,
  type SanTemplate,
  type SubjectTemplate,
} from '../pki/subject-template.ts';
import { keyTypesFor } from '../pki/key-usage.ts';
import type { SubjectAltNameType } from '../pki/types.ts';
import { CLEAR_TEXT_PROBLEM, isLoopbackUrl, sendsCredentialsInClear } from '../http/url-safety.ts';
import { describeIssues, nearest, suggestion } from './problems.ts';
import { instanceIdFromSubscription, LOOPBACK_INSTANCE_ID } from './instance-id.ts';
import { rawConfigSchema, type RawConfig, type RawProfile } from './schema.ts';
import { DAY_MS } from '../time.ts';

export interface CaConnectionConfig {
  readonly name: string;
  readonly type: string;
  /** The registry entry of `type`, resolved once when the configuration is compiled. */
  // Each backend's config type differs; the connection only needs the common shape.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly backend: CaBackend<any>;
  /** The backend's own validated configuration. */
  readonly settings: { readonly type: string } & Readonly<Record<string, unknown>>;
  readonly capabilities: CaCapabilities;
}

/** A profile as the CAs see it ({@link ProfileTemplate}), plus the connections it may be used with. */
export interface CompiledProfile extends ProfileTemplate {
  /** CA connections this profile may be used with. */
  readonly caConnections: readonly string[];
  /** Revoke superseded certificates this long after they were superseded (ms); undefined: never. */
  readonly revokeSupersededAfterMs?: number;
}

/** Where process state lives (DESIGN.md §8); `run` defaults to sqlite, the demo to memory. */
export type StoreConfig =
  | { readonly type: 'memory' }
  | {
      readonly type: 'sqlite';
      /** Absolute path of the database file. */
      readonly path: string;
      readonly synchronous: 'full' | 'normal';
    }
  | {
      readonly type: 'firestore';
      readonly projectId?: string | undefined;
      readonly databaseId: string;
      readonly collection: string;
    };

/** The directory of `run`'s default sqlite file: CERTPROV_DATA_DIR, else `data` in the working directory. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.CERTPROV_DATA_DIR ?? 'data');
}

/** The store a configuration without `store` gets: sqlite for `run` (durable, one replica), memory for the demo. */
function resolveStore(raw: RawConfig['store'], purpose: ConfigPurpose, baseDir: string): StoreConfig {
  const fallback: NonNullable<RawConfig['store']> =
    purpose === 'run' ? { type: 'sqlite', synchronous: 'full' } : { type: 'memory' };
  const store = raw ?? fallback;
  if (store.type !== 'sqlite') return store;
  return {
    type: 'sqlite',
    path: store.path === undefined ? path.join(defaultDataDir(), 'certprov.db') : path.resolve(baseDir, store.path),
    synchronous: store.synchronous,
  };
}

/**
 * A parsed block of the schema with its durations (milliseconds once parsed) renamed `…Ms`, the way the compiled
 * configuration names them. Derived, not copied: a field added to the schema appears here, and compileConfig does
 * not typecheck until it carries it.
 */
type WithMs<T, Durations extends keyof T> = {
  readonly [K in keyof T as K extends Durations ? `${K & string}Ms` : K]: T[K];
};

type RawChrome = RawConfig['chrome'];
type RawPubsub = RawConfig['pubsub'];

/** The compiled, frozen configuration: the zod schema's output (src/config/schema.ts), resolved and renamed. */
export interface Config {
  /** Where the configuration came from (a path, or `embedded demo`). */
  readonly source: string;
  /** Relative paths in the configuration resolve against this directory. */
  readonly baseDir: string;
  readonly instanceId: string;
  /** Where {@link instanceId} came from, for check-config: configured, derived from the subscription, or loopback default. */
  readonly instanceIdSource: string;
  readonly chrome: WithMs<Omit<RawChrome, 'rateLimit'>, 'signatureTimeout' | 'requestTimeout'> & {
    readonly rateLimit: WithMs<RawChrome['rateLimit'], 'maxWait'>;
  };
  readonly pubsub: WithMs<Omit<RawPubsub, 'subscription'>, 'maxExtension' | 'closeTimeout'> & {
    /** The full name `projects/P/subscriptions/S` (a configured bare id is resolved against GOOGLE_CLOUD_PROJECT). */
    readonly subscription: string | undefined;
    /** The project of {@link subscription} came from GOOGLE_CLOUD_PROJECT (the configuration wrote the id alone). */
    readonly projectFromEnvironment: boolean;
  };
  readonly store: StoreConfig;
  readonly scheduler: WithMs<
    RawConfig['scheduler'],
    | 'lease'
    | 'pollInterval'
    | 'retryInitial'
    | 'retryMax'
    | 'signaturePollInitial'
    | 'signaturePollMax'
    | 'caMaxWait'
    | 'finishedRetention'
  >;
  readonly caConnections: ReadonlyMap<string, CaConnectionConfig>;
  readonly profiles: ReadonlyMap<string, CompiledProfile>;
  readonly http: Readonly<RawConfig['http']>;
  readonly log: Readonly<RawConfig['log']>;
  readonly shutdown: WithMs<RawConfig['shutdown'], 'gracePeriod'>;
}

/** What the configuration is loaded for: `run` (and `check-config`) enforce what production needs. */
export type ConfigPurpose = 'run' | 'demo';

function sanTypeOf(entry: RawProfile['subjectAltNames'][number]): [SubjectAltNameType, string] {
  const [type, value] = Object.entries(entry)[0] as [SubjectAltNameType, string];
  return [type, value];
}

/** Problems that make `profile` impossible for a connection with `caps`, each naming the offending field. */
function capabilityProblems(profileName: string, profile: CompiledProfile, connection: CaConnectionConfig): string[] {
  const caps = connection.capabilities;
  const at = `profiles.${profileName}`;
  const against = `CA connection "${connection.name}" (type ${connection.type})`;
  const problems: string[] = [];
  if (caps.subjectAttributes !== 'any') {
    const allowed = caps.subjectAttributes;
    for (const attribute of profile.subject.flat()) {
      if (!allowed.includes(attribute.type)) {
        problems.push(
          `${at}.subject: ${against} cannot carry subject attribute ${attribute.type} (it takes ${allowed.join(', ')})`,
        );
      }
    }
  }
  profile.subjectAltNames.forEach((san, i) => {
    if (!caps.subjectAltNameTypes.includes(san.type)) {
      problems.push(
        `${at}.subjectAltNames[${i}]: ${against} cannot issue ${san.type} SANs (it takes ${caps.subjectAltNameTypes.join(', ') || 'none'})`,
      );
    }
  });
  if (profile.validityMs > caps.maxValidityDays * DAY_MS) {
    problems.push(`${at}.validity: ${against} issues at most ${caps.maxValidityDays} days`);
  }
  if (caps.extendedKeyUsages !== 'any') {
    const allowed = caps.extendedKeyUsages;
    for (const eku of profile.extendedKeyUsages) {
      if (!allowed.includes(eku)) problems.push(`${at}.extendedKeyUsages: ${against} cannot issue EKU ${eku}`);
    }
  }
  if (profile.keyUsages !== undefined && caps.keyUsages === 'ca') {
    problems.push(
      `${at}.keyUsages: ${against} sets the key usage itself (by product); remove keyUsages from this profile or use it with another connection`,
    );
  }
  return problems;
}

/** The backend's own finer checks of a profile ({@link CaBackend.profileProblems}), each naming the field. */
function backendProfileProblems(
  profileName: string,
  profile: CompiledProfile,
  connection: CaConnectionConfig,
): string[] {
  const found = connection.backend.profileProblems?.(connection.settings, profile) ?? [];
  return found.map(
    (p) =>
      `profiles.${profileName}.${p.field}: CA connection "${connection.name}" (type ${connection.type}) ${p.message}`,
  );
}

// Each backend's config type differs; the registry only needs the common shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Backends = ReadonlyMap<string, CaBackend<any>>;

/**
 * The CA `type` is a closed set: the value is echoed only when it is a likely typo of a known type (like every
 * closed-set value, src/config/problems.ts) — anything else may be a secret or an address pasted into the wrong field.
 */
function unknownTypeProblem(name: string, type: string, backends: Backends): string {
  const known = [...backends.keys()];
  const close = nearest(type, known);
  return close === undefined
    ? `caConnections.${name}.type: unknown CA type (a text value); known: ${known.join(', ')}`
    : `caConnections.${name}.type: unknown CA type "${type}"; did you mean "${close}"?`;
}

/** A CA connection block's own problems (its backend's schema), for when the rest of the file failed. */
function connectionProblems(name: string, block: unknown, backends: Backends): string[] {
  const type = (block as { type?: unknown } | null)?.type;
  const backend = typeof type === 'string' ? backends.get(type) : undefined;
  if (backend === undefined) return typeof type === 'string' ? [unknownTypeProblem(name, type, backends)] : [];
  const result = backend.configSchema.safeParse(block);
  return result.success
    ? []
    : describeIssues(result.error.issues, backend.configSchema, block, ['caConnections', name]);
}

/**
 * Validates an already-parsed configuration object. Throws {@link ConfigError} listing every problem.
 * `baseDir` resolves relative paths; `source` names the origin in messages.
 */
export function compileConfig(
  input: unknown,
  options: {
    source: string;
    baseDir: string;
    purpose: ConfigPurpose;
    /** CA backends by type; default the shipped registry (tests add a test-only backend here). */
    backends?: Backends;
    /** Where GOOGLE_CLOUD_PROJECT is read (a bare `pubsub.subscription` id); default `process.env`. */
    env?: NodeJS.ProcessEnv;
  },
): Config {
  const backends = options.backends ?? CA_BACKENDS;
  const parsed = rawConfigSchema.safeParse(input);
  if (!parsed.success) {
    // Every problem at once: the CA connection blocks are checked by their backends even when the rest failed.
    const blocks = (input as { caConnections?: unknown } | null)?.caConnections;
    const more =
      blocks !== null && typeof blocks === 'object'
        ? Object.entries(blocks).flatMap(([name, block]) => connectionProblems(name, block, backends))
        : [];
    throw new ConfigError([...describeIssues(parsed.error.issues, rawConfigSchema, input), ...more], options.source);
  }
  const raw = parsed.data;
  const problems: string[] = [];

  if (raw.chrome.credentials === 'none' && !isLoopbackUrl(raw.chrome.endpoint)) {
    problems.push('chrome.credentials: "none" is allowed only for loopback endpoints (the sandbox and tests)');
  }
  if (sendsCredentialsInClear(raw.chrome.endpoint)) problems.push(`chrome.endpoint: ${CLEAR_TEXT_PROBLEM}`);
  if (options.purpose === 'run' && raw.pubsub.subscription === undefined) {
    problems.push('pubsub.subscription: required by run (projects/PROJECT/subscriptions/NAME)');
  }
  const subscription = resolveSubscription(raw.pubsub.subscription, options.env ?? process.env);
  if (typeof subscription === 'string') problems.push(subscription);
  const subscriptionName = typeof subscription === 'string' ? undefined : subscription.name;

  const store = resolveStore(raw.store, options.purpose, options.baseDir);
  const caConnections = new Map<string, CaConnectionConfig>();
  for (const [name, block] of Object.entries(raw.caConnections)) {
    const backend = backends.get(block.type);
    if (backend === undefined) {
      problems.push(unknownTypeProblem(name, block.type, backends));
      continue;
    }
    const result = backend.configSchema.safeParse(block) as
      { success: true; data: { type: string } & Record<string, unknown> } | { success: false; error: z.ZodError };
    if (!result.success) {
      problems.push(...describeIssues(result.error.issues, backend.configSchema, block, ['caConnections', name]));
      continue;
    }
    const capabilities = backend.capabilities(result.data);
    if (options.purpose === 'run' && capabilities.requiresDurableStore && store.type === 'memory') {
      problems.push(
        `caConnections.${name}: a ${block.type} connection needs a durable store (store.type: sqlite for one replica, firestore for several): a crash with the memory store could lose an order intent and pay twice`,
      );
    }
    caConnections.set(name, { name, type: block.type, backend, settings: result.data, capabilities });
  }

  const profiles = new Map<string, CompiledProfile>();
  for (const [name, rawProfile] of Object.entries(raw.profiles)) {
    const at = `profiles.${name}`;
    let subject: SubjectTemplate | undefined;
    try {
      subject = parseSubjectTemplate(rawProfile.subject);
    } catch (error) {
      if (!(error instanceof TemplateSyntaxError)) throw error;
      problems.push(`${at}.subject: ${error.message}`);
    }
    const subjectAltNames: SanTemplate[] = [];
    rawProfile.subjectAltNames.forEach((entry, i) => {
      const [type, source] = sanTypeOf(entry);
      try {
        subjectAltNames.push({ type, value: parseValueTemplate(source) });
      } catch (error) {
        if (!(error instanceof TemplateSyntaxError)) throw error;
        problems.push(`${at}.subjectAltNames[${i}].${type}: ${error.message}`);
      }
    });
    const extendedKeyUsages: string[] = [];
    rawProfile.extendedKeyUsages.forEach((eku, i) => {
      const oid = resolveExtendedKeyUsage(eku);
      if (oid === undefined)
        problems.push(`${at}.extendedKeyUsages[${i}]: "${eku}" is neither a known name nor an OID`);
      else extendedKeyUsages.push(oid);
    });
    const keyUsages = rawProfile.keyUsages;
    if (keyUsages !== undefined) {
      const repeated = keyUsages.filter((u, i) => keyUsages.indexOf(u) !== i);
      if (repeated.length > 0) problems.push(`${at}.keyUsages: ${repeated.join(', ')} listed twice`);
      // Which device key a process brings is known only per process; a list no key could carry is wrong for all.
      if (keyTypesFor(keyUsages).length === 0) {
        problems.push(
          `${at}.keyUsages: no device key can carry all of ${keyUsages.join(', ')} (keyEncipherment and dataEncipherment need an RSA key, keyAgreement an EC key)`,
        );
      }
    }
    if (rawProfile.validity < 60_000) problems.push(`${at}.validity: must be at least 1m`);
    const wired = rawProfile.caConnections ?? [...Object.keys(raw.caConnections)];
    rawProfile.caConnections?.forEach((connection, i, all) => {
      if (!(connection in raw.caConnections)) {
        problems.push(
          `${at}.caConnections[${i}]: no CA connection named "${connection}"${suggestion(connection, Object.keys(raw.caConnections))}`,
        );
      } else if (all.indexOf(connection) !== i) {
        problems.push(`${at}.caConnections[${i}]: "${connection}" is listed twice`);
      }
    });
    if (subject === undefined) continue;
    const profile: CompiledProfile = {
      name,
      subject,
      subjectAltNames,
      validityMs: rawProfile.validity,
      extendedKeyUsages,
      ...(keyUsages === undefined ? {} : { keyUsages }),
      caConnections: wired,
      ...(rawProfile.revokeSupersededAfter === undefined
        ? {}
        : { revokeSupersededAfterMs: rawProfile.revokeSupersededAfter }),
    };
    for (const connectionName of wired) {
      const connection = caConnections.get(connectionName);
      if (connection !== undefined) {
        problems.push(
          ...capabilityProblems(name, profile, connection),
          ...backendProfileProblems(name, profile, connection),
        );
      }
    }
    profiles.set(name, profile);
  }

  const identity = resolveInstanceId(raw, subscriptionName, options.purpose);
  if (typeof identity === 'string') problems.push(identity);
  const s = raw.scheduler;
  if (s.signaturePollInitial > s.signaturePollMax) {
    problems.push('scheduler.signaturePollInitial: must not exceed scheduler.signaturePollMax');
  }
  if (s.retryInitial > s.retryMax) problems.push('scheduler.retryInitial: must not exceed scheduler.retryMax');

  if (problems.length > 0 || typeof identity === 'string') throw new ConfigError(problems, options.source);
  const config: Config = {
    source: options.source,
    baseDir: options.baseDir,
    instanceId: identity.id,
    instanceIdSource: identity.source,
    chrome: {
      customer: raw.chrome.customer,
      endpoint: raw.chrome.endpoint.replace(/\/+$/, ''),
      credentials: raw.chrome.credentials,
      signatureTimeoutMs: raw.chrome.signatureTimeout,
      requestTimeoutMs: raw.chrome.requestTimeout,
      rateLimit: {
        requestsPerMinute: raw.chrome.rateLimit.requestsPerMinute,
        maxConcurrent: raw.chrome.rateLimit.maxConcurrent,
        maxWaitMs: raw.chrome.rateLimit.maxWait,
      },
    },
    pubsub: {
      subscription: subscriptionName,
      projectFromEnvironment: typeof subscription !== 'string' && subscription.projectFromEnvironment,
      maxInFlight: raw.pubsub.maxInFlight,
      maxExtensionMs: raw.pubsub.maxExtension,
      closeTimeoutMs: raw.pubsub.closeTimeout,
    },
    store,
    scheduler: {
      leaseMs: s.lease,
      pollIntervalMs: s.pollInterval,
      maxConcurrent: s.maxConcurrent,
      retryInitialMs: s.retryInitial,
      retryMaxMs: s.retryMax,
      maxAttempts: s.maxAttempts,
      signaturePollInitialMs: s.signaturePollInitial,
      signaturePollMaxMs: s.signaturePollMax,
      caMaxWaitMs: s.caMaxWait,
      finishedRetentionMs: s.finishedRetention,
    },
    caConnections,
    profiles,
    http: raw.http,
    log: raw.log,
    shutdown: { gracePeriodMs: raw.shutdown.gracePeriod },
  };
  return deepFreeze(config);
}

/**
 * The deployment's callerInstanceId and where it came from, or the problem when `run` would have to guess
 * (src/config/instance-id.ts).
 */
function resolveInstanceId(
  raw: RawConfig,
  subscription: string | undefined,
  purpose: ConfigPurpose,
): { id: string; source: string } | string {
  if (raw.instanceId !== undefined) return { id: raw.instanceId, source: 'configured' };
  if (subscription !== undefined) {
    return {
      id: instanceIdFromSubscription(subscription),
      source: `derived from pubsub.subscription ${subscription}`,
    };
  }
  if (isLoopbackUrl(raw.chrome.endpoint)) {
    return { id: LOOPBACK_INSTANCE_ID, source: 'default (loopback Chrome endpoint)' };
  }
  // `run` (and check-config, which validates for it) never guesses; the demo talks to its own sandbox.
  if (purpose === 'demo') return { id: LOOPBACK_INSTANCE_ID, source: 'default (not for run)' };
  return 'instanceId: required for a real Chrome endpoint when pubsub.subscription cannot name the deployment; two deployments with one id would both ask a device to sign';
}

/**
 * The full subscription name. A bare id takes its project from GOOGLE_CLOUD_PROJECT — the variable Google's client
 * libraries read, which the overlays set from settings.env — so a deployment names its project in one place.
 */
function resolveSubscription(
  configured: string | undefined,
  env: NodeJS.ProcessEnv,
): { name: string | undefined; projectFromEnvironment: boolean } | string {
  if (configured === undefined || configured.startsWith('projects/')) {
    return { name: configured, projectFromEnvironment: false };
  }
  const project = env.GOOGLE_CLOUD_PROJECT?.trim();
  if (project === undefined || project === '') {
    return `pubsub.subscription: "${configured}" is a subscription id without its project: set GOOGLE_CLOUD_PROJECT (the overlays set it from settings.env), or write projects/PROJECT/subscriptions/${configured}`;
  }
  if (project.includes('/')) {
    return `pubsub.subscription: GOOGLE_CLOUD_PROJECT "${project}" is not a project id (write the id alone, e.g. my-project)`;
  }
  return { name: `projects/${project}/subscriptions/${configured}`, projectFromEnvironment: true };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    if (value instanceof Map) {
      for (const v of value.values()) deepFreeze(v);
    } else {
      for (const v of Object.values(value)) deepFreeze(v);
    }
    Object.freeze(value);
  }
  return value;
}

/** Parses YAML (a superset of JSON) text; a syntax error becomes a ConfigError with the line. */
export function parseConfigText(text: string, source: string): unknown {
  try {
    return parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (error) {
    throw new ConfigError(
      [error instanceof Error ? (error.message.split('\n')[0] ?? error.message) : String(error)],
      source,
    );
  }
}

/** Reads and compiles a configuration file (`--config FILE` or CERTPROV_CONFIG). */
export async function loadConfigFile(file: string, purpose: ConfigPurpose): Promise<Config> {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError([`cannot read ${absolute}: ${code ?? String(error)}`], file);
  }
  return compileConfig(parseConfigText(text, file), { source: file, baseDir: path.dirname(absolute), purpose });
}
