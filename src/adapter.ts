/**
 * Composition root: builds the adapter's parts from a compiled Config and runs them in order. Shared by `run`
 * (Pub/Sub, real Google API) and `demo` (in-process source, sandbox tenant), so both exercise the same code.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { connectCa, type CaConnection } from './ca/connection.ts';
import { createChromeAuth } from './chrome/auth.ts';
import { ChromeClient, chromeRateLimiter } from './chrome/client.ts';
import type { ChromeApi } from './chrome/types.ts';
import type { Config } from './config/load.ts';
import { describeError } from './errors.ts';
import { Health } from './observability/health.ts';
import type { SharedRateLimiter } from './http/shared-rate-limiter.ts';
import type { Logger } from './observability/logger.ts';
import type { Metrics } from './observability/metrics.ts';
import { startOpsServer, type OpsServer } from './observability/server.ts';
import { ProvisioningEngine } from './provisioning/engine.ts';
import { CrlCache, CrlPublisher, crlPublications } from './lifecycle/crl.ts';
import { crlBucketUploaderFor } from './lifecycle/crl-bucket.ts';
import { ExpiryGauges } from './lifecycle/expiry.ts';
import { SupersededRevoker } from './lifecycle/superseded.ts';
import { Intake } from './pubsub/intake.ts';
import type { MessageSource } from './pubsub/source.ts';
import { createStore } from './store/create.ts';
import type { ProcessStore } from './store/types.ts';

export interface AdapterOptions {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly source: MessageSource;
  /** Defaults to the Chrome Management API client built from `config.chrome`. */
  readonly chrome?: ChromeApi;
  /** Defaults to the store named by `config.store`. */
  readonly store?: ProcessStore;
  /** Serve /metrics, /healthz, /readyz on config.http. Default true. */
  readonly serveHttp?: boolean;
  /** The workflow's wall clock (deadlines, due times); tests and the benchmark simulate hours with it. */
  readonly now?: () => number;
}

/** A lease owner id unique to this OS process: host, pid and randomness (a restarted pod is a new owner). */
export function newReplicaId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export async function createCertificateAuthorities(
  config: Config,
  log: Logger,
  metrics: Metrics,
): Promise<Map<string, CaConnection>> {
  const cas = new Map<string, CaConnection>();
  for (const connection of config.caConnections.values()) {
    metrics.declareCaConnection(connection.name, connection.type);
    cas.set(
      connection.name,
      await connectCa(connection.backend, connection.name, connection.settings, {
        log: log.child({ caConnection: connection.name, backend: connection.type }),
        metrics,
        baseDir: config.baseDir,
      }),
    );
  }
  return cas;
}

/** The Chrome API budget shared by the replica set through `store` (config `chrome.rateLimit`). */
export function chromeLimiter(config: Config, metrics: Metrics, store: ProcessStore): SharedRateLimiter {
  const limiter = chromeRateLimiter(config.chrome.rateLimit, metrics);
  limiter.useStore(store);
  return limiter;
}

export class Adapter {
  readonly health: Health;
  readonly engine: ProvisioningEngine;
  readonly store: ProcessStore;
  readonly replicaId: string;
  private readonly intake: Intake;
  private readonly cas: ReadonlyMap<string, CaConnection>;
  private readonly options: AdapterOptions;
  private readonly background = new AbortController();
  private ops: OpsServer | undefined;
  private readonly crlPublisher: CrlPublisher;
  private readonly crls: CrlCache;
  private readonly expiry: ExpiryGauges;
  private readonly superseded: SupersededRevoker;
  /** start() completed: a stop() before that only releases what was opened and says nothing about draining. */
  private started = false;
  private stopping: Promise<void> | undefined;

  private constructor(
    options: AdapterOptions,
    parts: { store: ProcessStore; cas: Map<string, CaConnection>; chrome: ChromeApi; health: Health },
  ) {
    this.options = options;
    this.store = parts.store;
    this.cas = parts.cas;
    this.health = parts.health;
    this.replicaId = newReplicaId();
    const { config, log, metrics } = options;
    this.engine = new ProvisioningEngine({
      config,
      chrome: parts.chrome,
      cas: parts.cas,
      store: parts.store,
      metrics,
      log,
      health: parts.health,
      replicaId: this.replicaId,
      ...(options.now === undefined ? {} : { now: options.now }),
    });
    const publications = crlPublications(parts.cas.values());
    const bucket = crlBucketUploaderFor(publications, log);
    this.crlPublisher = new CrlPublisher(
      {
        store: parts.store,
        owner: this.replicaId,
        log,
        now: options.now ?? Date.now,
        signal: this.background.signal,
        ...(bucket === undefined ? {} : { bucket }),
      },
      publications,
    );
    this.crls = new CrlCache(
      parts.store,
      publications.map((p) => p.connection),
    );
    this.expiry = new ExpiryGauges({
      store: parts.store,
      connections: [...parts.cas.values()],
      metrics,
      log,
      now: options.now ?? Date.now,
      signal: this.background.signal,
    });
    this.superseded = new SupersededRevoker({
      store: parts.store,
      cas: parts.cas,
      profiles: config.profiles,
      owner: this.replicaId,
      log,
      now: options.now ?? Date.now,
      signal: this.background.signal,
      ...(bucket === undefined ? {} : { bucket }),
    });
    this.intake = new Intake({
      config,
      engine: this.engine,
      source: options.source,
      store: parts.store,
      metrics,
      log,
      health: parts.health,
    });
  }

  static async create(options: AdapterOptions): Promise<Adapter> {
    const { config, log, metrics } = options;
    const health = new Health(metrics);
    const store = options.store ?? (await createStore(config, log, { metrics }));
    const cas = await createCertificateAuthorities(config, log, metrics);
    const chrome =
      options.chrome ??
      new ChromeClient({
        endpoint: config.chrome.endpoint,
        requestTimeoutMs: config.chrome.requestTimeoutMs,
        metrics,
        log,
        authHeaders: createChromeAuth({ credentials: config.chrome.credentials }),
        limiter: chromeLimiter(config, metrics, store),
      });
    return new Adapter(options, { store, cas, chrome, health });
  }

  /** Port of the ops HTTP server once started (0 when not serving). */
  get httpPort(): number {
    return this.ops?.port ?? 0;
  }

  async start(): Promise<void> {
    const { config, log } = this.options;
    if (this.options.serveHttp ?? true) {
      this.ops = await startOpsServer({
        host: config.http.host,
        port: config.http.port,
        metrics: this.options.metrics,
        health: this.health,
        crl: (connection) => this.crls.get(connection),
        retryFaulted: () => this.engine.faultGate.retryNow(),
      });
    }
    for (const { abilities } of this.cas.values()) {
      await abilities.background?.start({
        store: this.store,
        replicaId: this.replicaId,
        signal: this.background.signal,
        wake: (lookupKey, hint) => this.store.wakeByLookupKey(lookupKey, hint),
        reportFault: (error) => this.health.reportFault(error.component, error.message),
        clearFault: (component) => this.health.clearFault(component),
      });
    }
    this.crlPublisher.start();
    this.expiry.start();
    this.superseded.start();
    this.engine.start();
    await this.intake.start();
    this.health.setState('running');
    this.started = true;
    log.info(
      {
        instanceId: config.instanceId,
        replicaId: this.replicaId,
        store: this.store.kind,
        caConnections: [...this.cas.values()].map((ca) => `${ca.name}:${ca.type}`),
        httpPort: this.httpPort,
      },
      'adapter started',
    );
  }

  /**
   * Drains within `graceMs`: readiness goes false and no new step starts; running steps finish or, when the grace
   * period is over, are aborted and their processes handed back (lease released, due now); only then are the
   * messages of unfinished processes nacked and the subscription closed.
   *
   * The subscription closes last on purpose: closing it nacks what it holds, and with the memory store (no lease
   * shared between replicas) another replica would then start a process this one is still in the middle of — two
   * signData calls fail the process on the device (DESIGN.md §1). Messages that arrive during the drain are
   * recorded but not worked on: acknowledged once durable (Firestore, another replica's scheduler runs them), held
   * and nacked at the end otherwise.
   */
  async stop(graceMs = this.options.config.shutdown.gracePeriodMs): Promise<void> {
    if (this.stopping !== undefined) return this.stopping;
    this.stopping = this.drain(graceMs);
    return this.stopping;
  }

  private async drain(graceMs: number): Promise<void> {
    const { log } = this.options;
    this.health.setState('draining');
    if (this.started) {
      log.info(
        { graceMs, inFlight: this.engine.inFlight },
        'draining: no new work; finishing or handing back in-flight steps',
      );
    } else {
      log.debug('start-up failed: releasing what was opened');
    }
    await this.engine.stop(graceMs);
    await this.intake
      .stop()
      .catch((error: unknown) => log.warn({ error: describeError(error) }, 'closing the subscription failed'));
    this.background.abort();
    await this.crlPublisher.stop();
    await this.expiry.stop();
    await this.superseded.stop();
    for (const connection of this.cas.values()) {
      await connection.abilities.background
        ?.close()
        .catch((error: unknown) =>
          log.warn({ caConnection: connection.name, error: describeError(error) }, 'closing a CA connection failed'),
        );
    }
    await this.store.close();
    await this.ops?.close();
    this.health.setState('stopped');
    if (this.started) log.info('adapter stopped');
  }
}
