/**
 * `certprov check-config --probe`: checks what a static validation cannot — that credentials are obtainable and
 * accepted, and that the subscription, the CA connections and the store answer — without side effects: only
 * reads (a token request, a GET of a process id that does not exist, subscription metadata, a record read) and each
 * CA backend's own `probe()` (CertificateAuthority in src/ca/types.ts), which never orders or signs anything.
 *
 * Every check produces one row (component, check, result, detail, hint); one failure does not stop the others,
 * so an operator sees every problem of a new deployment at once.
 */
import { randomBytes } from 'node:crypto';
import { constants, existsSync } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { PubSub, type ClientConfig } from '@google-cloud/pubsub';
import { GoogleAuth } from 'google-auth-library';
import type { StepContext } from '../ca/types.ts';
import { connectCa } from '../ca/connection.ts';
import { CHROME_CREDENTIALS_HINT, createChromeAuth } from '../chrome/auth.ts';
import { ChromeClient } from '../chrome/client.ts';
import { ProcessNotFoundError } from '../chrome/errors.ts';
import { CERTPROV_SCOPE, type ChromeApi } from '../chrome/types.ts';
import type { Config } from '../config/load.ts';
import { DeploymentFaultError, RetryableError, describeError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { GRPC_STATUS, grpcCode } from '../pubsub/grpc-status.ts';
import { createStore } from '../store/create.ts';
import { describeStore } from '../store/describe.ts';
import { table } from './table.ts';

/** `ok` and `warn` and `skip` pass; any `fail` makes `check-config --probe` exit 1. */
export type ProbeStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface ProbeResult {
  /** `google`, `chrome`, `pubsub`, `ca:<connection>`, `store`. */
  readonly component: string;
  readonly check: string;
  readonly status: ProbeStatus;
  readonly detail: string;
  /** What the operator should do, for `warn` and `fail`. */
  readonly hint?: string;
}

export interface ProbeOptions {
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Bound on each check. Default 15 s. */
  readonly timeoutMs?: number;
  /** Extra Pub/Sub client options (tests); by default the client reads PUBSUB_EMULATOR_HOST and ADC itself. */
  readonly pubsubClientOptions?: ClientConfig;
  /** A preconfigured GoogleAuth (tests). Default: Application Default Credentials with the certprov scope. */
  readonly googleAuth?: GoogleAuth;
}

const DEFAULT_TIMEOUT_MS = 15_000;

/** A process id no real process has: the Chrome API answers it with NOT_FOUND once the caller is authorised. */
function probeProcessId(): string {
  return `certprov-probe-${randomBytes(6).toString('hex')}`;
}

class ProbeTimeout extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'ProbeTimeout';
  }
}

/** Runs `work` with an abort signal that fires after `ms`; rejects with ProbeTimeout if it does not settle by then. */
async function bounded<T>(ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      abort.abort(new ProbeTimeout(ms));
      reject(new ProbeTimeout(ms));
    }, ms);
  });
  try {
    return await Promise.race([work(abort.signal), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function failure(component: string, check: string, error: unknown, hint?: string): ProbeResult {
  const faultHint = error instanceof DeploymentFaultError ? error.hint : undefined;
  const message = (error instanceof Error ? error.message : describeError(error)).split('\n')[0] ?? '';
  const h = faultHint ?? hint;
  return { component, check, status: 'fail', detail: message, ...(h === undefined ? {} : { hint: h }) };
}

/** Runs every check; never rejects. */
export async function runProbes(config: Config, options: ProbeOptions): Promise<ProbeResult[]> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // google-gax (under @google-cloud/pubsub and firestore) leaves its stub-creation promise unhandled when no
  // credentials are found; the same error also rejects the call that needed it, which reports it in its row. A
  // probe must finish its table, so such strays are tolerated here (and only here: `run` exits on them).
  const stray = (error: unknown) =>
    options.log.debug({ error: describeError(error) }, 'unhandled rejection during a probe');
  process.on('unhandledRejection', stray);
  try {
    return await runAll(config, options, timeoutMs);
  } finally {
    // Late strays from clients closed above surface on a later tick.
    await new Promise((resolve) => setTimeout(resolve, 50));
    process.off('unhandledRejection', stray);
  }
}

async function runAll(config: Config, options: ProbeOptions, timeoutMs: number): Promise<ProbeResult[]> {
  const results: ProbeResult[] = [];
  const googleAuth =
    config.chrome.credentials === 'google-default'
      ? (options.googleAuth ?? new GoogleAuth({ scopes: [CERTPROV_SCOPE] }))
      : undefined;

  results.push(await probeToken(googleAuth, timeoutMs));
  const chrome = new ChromeClient({
    endpoint: config.chrome.endpoint,
    requestTimeoutMs: Math.min(config.chrome.requestTimeoutMs, timeoutMs),
    metrics: options.metrics,
    log: options.log,
    authHeaders: createChromeAuth(
      { credentials: config.chrome.credentials },
      googleAuth === undefined ? {} : { googleAuth },
    ),
    // One attempt: a probe reports what it saw, it does not ride out an outage.
    retry: { attempts: 1 },
  });
  results.push(await probeChrome(chrome, config, options.log, timeoutMs));
  results.push(...(await probeSubscription(config, options, timeoutMs)));
  results.push(...(await probeCaConnections(config, options, timeoutMs)));
  results.push(await probeStore(config, options.log, timeoutMs));
  return results;
}

async function probeToken(auth: GoogleAuth | undefined, timeoutMs: number): Promise<ProbeResult> {
  const check = 'access token (Application Default Credentials)';
  if (auth === undefined) {
    return {
      component: 'google',
      check,
      status: 'skip',
      detail: 'chrome.credentials is none (loopback endpoint): no token is sent',
    };
  }
  try {
    const identity = await bounded(timeoutMs, async () => {
      const client = await auth.getClient();
      const { token } = await client.getAccessToken();
      if (token === null || token === undefined || token === '')
        throw new Error('the credential returned no access token');
      // Which identity the token belongs to, when the credential says (service account key, metadata server).
      const email = await auth.getCredentials().then(
        (c) => c.client_email,
        () => undefined,
      );
      return email;
    });
    return {
      component: 'google',
      check,
      status: 'ok',
      detail: identity === undefined ? 'token obtained' : `token obtained for ${identity}`,
    };
  } catch (error) {
    // Messages only: a credential error object may carry a refresh token in its request config.
    const message = error instanceof Error ? error.message : String(error);
    return {
      component: 'google',
      check,
      status: 'fail',
      detail: `no token: ${message.split('\n')[0] ?? message}`,
      hint: CHROME_CREDENTIALS_HINT,
    };
  }
}

async function probeChrome(chrome: ChromeApi, config: Config, log: Logger, timeoutMs: number): Promise<ProbeResult> {
  const check = 'Chrome Management API reachable, credentials accepted';
  const processId = probeProcessId();
  try {
    await bounded(timeoutMs, (signal) => chrome.get({ customer: config.chrome.customer, processId }, { signal, log }));
    return {
      component: 'chrome',
      check,
      status: 'ok',
      detail: `${config.chrome.endpoint} answered (customer ${config.chrome.customer})`,
    };
  } catch (error) {
    // A GET of an id that does not exist: NOT_FOUND means the request passed authentication and authorisation.
    if (error instanceof ProcessNotFoundError) {
      return {
        component: 'chrome',
        check,
        status: 'ok',
        detail: `${config.chrome.endpoint} answered NOT_FOUND for a probe id, as expected (customer ${config.chrome.customer})`,
      };
    }
    if (error instanceof DeploymentFaultError || error instanceof RetryableError || error instanceof ProbeTimeout)
      return failure('chrome', check, error);
    // Any other answer (a 400 for the probe id) also came from past the authorisation check.
    return {
      component: 'chrome',
      check,
      status: 'ok',
      detail: `${config.chrome.endpoint} answered: ${describeError(error)}`,
    };
  }
}

interface SubscriptionMetadata {
  topic?: string | null;
  ackDeadlineSeconds?: number | null;
  enableExactlyOnceDelivery?: boolean | null;
  deadLetterPolicy?: { deadLetterTopic?: string | null; maxDeliveryAttempts?: number | null } | null;
  retryPolicy?: {
    minimumBackoff?: { seconds?: number | string | null } | null;
    maximumBackoff?: { seconds?: number | string | null } | null;
  } | null;
}

async function probeSubscription(config: Config, options: ProbeOptions, timeoutMs: number): Promise<ProbeResult[]> {
  const name = config.pubsub.subscription;
  const check = 'subscription exists';
  if (name === undefined) {
    return [
      {
        component: 'pubsub',
        check,
        status: 'fail',
        detail: 'pubsub.subscription is not set',
        hint: 'set pubsub.subscription: projects/PROJECT/subscriptions/NAME',
      },
    ];
  }
  const projectId = /^projects\/([^/]+)\//.exec(name)?.[1];
  const pubsub = new PubSub({ ...(projectId === undefined ? {} : { projectId }), ...options.pubsubClientOptions });
  const where = pubsub.isEmulator ? ` (emulator ${pubsub.options.servicePath ?? ''}:${pubsub.options.port ?? ''})` : '';
  try {
    const [metadata] = (await bounded(timeoutMs, () =>
      pubsub.subscription(name).getMetadata({ timeout: timeoutMs }),
    )) as unknown as [SubscriptionMetadata];
    const rows: ProbeResult[] = [
      {
        component: 'pubsub',
        check,
        status: 'ok',
        detail: `${name}${where}: topic ${metadata.topic ?? '?'}, ack deadline ${metadata.ackDeadlineSeconds ?? '?'}s`,
      },
    ];
    const deadLetter = metadata.deadLetterPolicy;
    if (
      deadLetter?.deadLetterTopic === undefined ||
      deadLetter.deadLetterTopic === null ||
      deadLetter.deadLetterTopic === ''
    ) {
      rows.push({
        component: 'pubsub',
        check: 'dead-letter policy',
        status: 'warn',
        detail: 'none: undecodable messages are redelivered until the retention period ends',
        hint: 'run `certprov setup-pubsub` (or its --print-gcloud commands) to add one',
      });
    } else {
      const backoff = metadata.retryPolicy
        ? `, retry backoff ${String(metadata.retryPolicy.minimumBackoff?.seconds ?? 10)}–${String(metadata.retryPolicy.maximumBackoff?.seconds ?? 600)}s`
        : '';
      rows.push({
        component: 'pubsub',
        check: 'dead-letter policy',
        status: 'ok',
        detail: `to ${deadLetter.deadLetterTopic} after ${deadLetter.maxDeliveryAttempts ?? 5} delivery attempts${backoff}`,
      });
    }
    rows.push({
      component: 'pubsub',
      check: 'exactly-once delivery',
      status: 'ok',
      detail:
        metadata.enableExactlyOnceDelivery === true
          ? 'enabled: acknowledgements are confirmed'
          : 'disabled: at-least-once; duplicate deliveries are de-duplicated by the store',
    });
    return rows;
  } catch (error) {
    switch (grpcCode(error)) {
      case GRPC_STATUS.NOT_FOUND:
        return [
          {
            component: 'pubsub',
            check,
            status: 'fail',
            detail: `${name} does not exist${where}`,
            hint: 'create it with `certprov setup-pubsub`, or correct pubsub.subscription',
          },
        ];
      case GRPC_STATUS.PERMISSION_DENIED:
        // roles/pubsub.subscriber may pull without subscriptions.get; run works, but settings cannot be shown.
        return [
          {
            component: 'pubsub',
            check,
            status: 'warn',
            detail: `cannot read ${name} (PERMISSION_DENIED); pulling may still be allowed`,
            hint: "grant roles/pubsub.viewer on the subscription to the adapter's service account to see its settings",
          },
        ];
      case GRPC_STATUS.UNAUTHENTICATED:
        return [
          {
            component: 'pubsub',
            check,
            status: 'fail',
            detail: `Pub/Sub refused the credentials for ${name}`,
            hint: 'check Workload Identity / GOOGLE_APPLICATION_CREDENTIALS',
          },
        ];
      default: {
        const noCredentials = /default credentials/i.test(describeError(error));
        return [
          failure(
            'pubsub',
            check,
            error instanceof ProbeTimeout
              ? error
              : new Error(
                  `Pub/Sub error for ${name}${where}: ${error instanceof Error ? error.message : describeError(error)}`,
                ),
            noCredentials ? CHROME_CREDENTIALS_HINT : undefined,
          ),
        ];
      }
    }
  } finally {
    await bounded(5_000, () => pubsub.close()).catch(() => undefined);
  }
}

async function probeCaConnections(config: Config, options: ProbeOptions, timeoutMs: number): Promise<ProbeResult[]> {
  const rows: ProbeResult[] = [];
  for (const connection of config.caConnections.values()) {
    const component = `ca:${connection.name}`;
    const log = options.log.child({ caConnection: connection.name, backend: connection.type });
    let ca;
    try {
      ca = await bounded(timeoutMs, () =>
        connectCa(connection.backend, connection.name, connection.settings, {
          log,
          metrics: options.metrics,
          baseDir: config.baseDir,
        }),
      );
    } catch (error) {
      rows.push(failure(component, `open ${connection.type} connection`, error));
      continue;
    }
    try {
      const { probe } = ca.abilities;
      if (probe === undefined) {
        rows.push({
          component,
          check: `${connection.type} credentials and reachability`,
          status: 'skip',
          detail: 'this backend has no side-effect-free check',
        });
      } else {
        const detail = await bounded(timeoutMs, (signal) => probe.probe({ signal, log } satisfies StepContext));
        rows.push({ component, check: `${connection.type} credentials and reachability`, status: 'ok', detail });
      }
    } catch (error) {
      rows.push(failure(component, `${connection.type} credentials and reachability`, error));
    } finally {
      await ca.abilities.background?.close().catch(() => undefined);
    }
  }
  return rows;
}

async function probeStore(config: Config, log: Logger, timeoutMs: number): Promise<ProbeResult> {
  const check = 'process store reachable';
  if (config.store.type === 'memory') {
    return {
      component: 'store',
      check,
      status: 'skip',
      detail: 'memory store: nothing to reach (one replica, not crash-safe)',
    };
  }
  const where = describeStore(config.store);
  if (config.store.type === 'sqlite' && !existsSync(config.store.path)) {
    // Opening would create the file: a probe writes nothing, so check that `run` will be able to create it.
    const directory = nearestExistingDirectory(path.dirname(config.store.path));
    try {
      await access(directory, constants.W_OK);
      return { component: 'store', check, status: 'ok', detail: `${where}: not created yet; ${directory} is writable` };
    } catch (error) {
      return failure('store', check, error, `mount a writable volume at ${path.dirname(config.store.path)}`);
    }
  }
  try {
    // soleUse off: probing must not take the file away from (or wait for) an adapter that is running on it.
    const store = await bounded(timeoutMs, () => createStore(config, log, { soleUse: false }));
    try {
      // A read of a record that does not exist: proves reachability and read permission, writes nothing.
      await bounded(timeoutMs, () => store.get(probeProcessId()));
    } finally {
      await store.close().catch(() => undefined);
    }
    return { component: 'store', check, status: 'ok', detail: `${where}: readable` };
  } catch (error) {
    return failure(
      'store',
      check,
      error,
      config.store.type === 'firestore'
        ? "grant roles/datastore.user to the adapter's service account and check store.projectId/databaseId"
        : 'check that store.path is on a writable volume',
    );
  }
}

function nearestExistingDirectory(directory: string): string {
  let current = directory;
  while (!existsSync(current) && path.dirname(current) !== current) current = path.dirname(current);
  return current;
}

/** The probe table as printed by `check-config --probe`; hints go on their own line under the row. */
export function formatProbeResults(results: readonly ProbeResult[]): string {
  const rows: string[][] = [['  component', 'check', 'result', 'detail']];
  for (const r of results) {
    rows.push([`  ${r.component}`, r.check, r.status === 'fail' ? 'FAIL' : r.status, r.detail]);
    if (r.hint !== undefined && r.status !== 'ok') rows.push(['', '', '', `hint: ${r.hint}`]);
  }
  const failed = results.filter((r) => r.status === 'fail').length;
  const warned = results.filter((r) => r.status === 'warn').length;
  const summary =
    failed === 0
      ? `all checks passed${warned === 0 ? '' : ` (${warned} warning${warned === 1 ? '' : 's'})`}`
      : `${failed} check${failed === 1 ? '' : 's'} failed`;
  return ['Probes (read-only; nothing is ordered, signed or written):', table(rows), '', summary].join('\n');
}
