/**
 * One workflow step at a time, without the engine: the real Chrome client against the sandbox tenant (the fake of
 * the Chrome API, which rejects what the real one rejects), a local CA, the memory store and a clock the test moves.
 * A test puts a record at a step, leases it, builds the ProcessRun the step receives, and looks at the StepResult and
 * at the tenant.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { afterEach, beforeAll } from 'vitest';
import { setTimeout } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCertificateAuthorities } from '../../../../src/adapter.ts';
import { abilitiesOf, type CaConnection } from '../../../../src/ca/connection.ts';
import type { IssueRequest, IssueResult, PendingRef, StepContext } from '../../../../src/ca/types.ts';
import { initLocalCa } from '../../../../src/ca/local/init.ts';
import { ChromeClient } from '../../../../src/chrome/client.ts';
import type { ChromeApi } from '../../../../src/chrome/types.ts';
import { compileConfig, type Config } from '../../../../src/config/load.ts';
import { Health } from '../../../../src/observability/health.ts';
import { createLogger } from '../../../../src/observability/logger.ts';
import { Metrics } from '../../../../src/observability/metrics.ts';
import { LeaseGuard, type EngineDependencies, type ProcessRun } from '../../../../src/provisioning/step.ts';
import { awaitSignatureStep } from '../../../../src/provisioning/steps/await-signature.ts';
import { startStep } from '../../../../src/provisioning/steps/start.ts';
import {
  SandboxTenant,
  type CreateProcessOptions,
  type KeyPool,
  type SandboxTenantOptions,
} from '../../../../src/sandbox/index.ts';

import { MemoryProcessStore } from '../../../../src/store/memory.ts';
import type { ProcessPatch, ProcessRecord } from '../../../../src/store/types.ts';
import { LogCapture, deepMerge, rigConfig, type RawConfig } from '../../../support/adapter-rig.ts';
import { testKeyPool } from '../../../support/keys.ts';

/** The lease owner the harness writes as. */
export const REPLICA = 'replica-under-test';

export interface HarnessOptions {
  /** Deep-merged over the rig's configuration (fast timings, a local CA `default_ca_config`). */
  readonly config?: RawConfig;
  readonly tenant?: SandboxTenantOptions;
  /** Wraps the real Chrome client, e.g. to script one call's answer. */
  readonly wrapChrome?: (real: ChromeApi) => ChromeApi;
  /** Extra CA connections by name (a scripted CA), beside the configured ones. */
  readonly cas?: ReadonlyMap<string, CaConnection>;
}

export class StepHarness {
  readonly tenant: SandboxTenant;
  readonly config: Config;
  readonly store = new MemoryProcessStore();
  readonly chrome: ChromeApi;
  readonly cas: ReadonlyMap<string, CaConnection>;
  readonly metrics: Metrics;
  readonly logs: LogCapture;
  readonly health: Health;
  /** The workflow's wall clock; {@link advance} moves it. */
  clock = Date.now();
  private readonly workDir: string;

  private constructor(init: {
    tenant: SandboxTenant;
    config: Config;
    chrome: ChromeApi;
    cas: ReadonlyMap<string, CaConnection>;
    workDir: string;
    logs: LogCapture;
    metrics: Metrics;
  }) {
    this.tenant = init.tenant;
    this.config = init.config;
    this.chrome = init.chrome;
    this.cas = init.cas;
    this.workDir = init.workDir;
    this.logs = init.logs;
    this.metrics = init.metrics;
    this.health = new Health(init.metrics);
  }

  static async start(options: HarnessOptions = {}): Promise<StepHarness> {
    const workDir = await mkdtemp(path.join(tmpdir(), 'certprov-steps-'));
    const caDirectory = path.join(workDir, 'ca');
    await initLocalCa({ directory: caDirectory, keyType: 'ec', subject: 'CN=certprov step test CA' });
    const tenant = await SandboxTenant.start(options.tenant ?? {});
    const raw = deepMerge(
      rigConfig({
        endpoint: tenant.endpoint,
        caConnections: { default_ca_config: { type: 'local', directory: 'ca' } },
      }),
      options.config ?? {},
    );
    const config = compileConfig(raw, { source: 'step harness', baseDir: workDir, purpose: 'demo' });
    const logs = new LogCapture();
    const log = createLogger({ level: 'debug', destination: logs });
    const metrics = new Metrics({ defaultMetrics: false });
    const configured = await createCertificateAuthorities(config, log, metrics);
    const real = new ChromeClient({
      endpoint: config.chrome.endpoint,
      requestTimeoutMs: config.chrome.requestTimeoutMs,
      metrics,
      log,
      authHeaders: () => Promise.resolve({}),
    });
    return new StepHarness({
      tenant,
      config,
      chrome: options.wrapChrome?.(real) ?? real,
      cas: new Map([...configured, ...(options.cas ?? [])]),
      workDir,
      logs,
      metrics,
    });
  }

  advance(ms: number): void {
    this.clock += ms;
  }

  /** The process record of sandbox process `id`, leased by this harness, with `fields` written at `step`. */
  async leased(id: string, fields: ProcessPatch = {}): Promise<ProcessRecord> {
    await this.store.create({ processId: id, customer: 'my_customer', correlationId: 'CP-STEPTEST', dueAt: 0 });
    const record = await this.store.tryLease(id, REPLICA, this.config.scheduler.leaseMs);
    if (record === undefined) throw new Error(`cannot lease ${id}`);
    return Object.keys(fields).length === 0 ? record : this.store.update(id, REPLICA, fields);
  }

  /** What the engine is built with: this harness's parts, its clock, and a logger into {@link logs}. */
  deps(log = createLogger({ level: 'debug', destination: this.logs })): EngineDependencies {
    return {
      config: this.config,
      chrome: this.chrome,
      cas: this.cas,
      store: this.store,
      metrics: this.metrics,
      log,
      health: this.health,
      replicaId: REPLICA,
      now: () => this.clock,
    };
  }

  /** What a step receives for `record`: the first step under this lease unless `freshLease` is false. */
  runOf(record: ProcessRecord, options: { freshLease?: boolean; signal?: AbortSignal } = {}): ProcessRun {
    const log = createLogger({ level: 'debug', destination: this.logs }).child({ processId: record.processId });
    return {
      deps: this.deps(log),
      record,
      ref: { customer: record.customer, processId: record.processId },
      ctx: { signal: options.signal ?? new AbortController().signal, log },
      lease: new LeaseGuard(this.config.scheduler.leaseMs, 5_000, performance.now()),
      freshLease: options.freshLease ?? true,
      now: () => this.clock,
      persist: (patch) => this.store.update(record.processId, REPLICA, patch),
    };
  }

  /**
   * A process of ours driven through `start` and `await_signature` by the real steps: the device signed, the CSR is
   * verified, and the record is at `issue` (on `caConnection`, when given: a scripted CA).
   */
  async atIssue(options: CreateProcessOptions, caConnection?: string): Promise<{ id: string; record: ProcessRecord }> {
    const id = this.tenant.createProcess(options);
    const asked = await startStep(this.runOf(await this.leased(id)));
    if (asked.kind !== 'wait') throw new Error(`start did not wait: ${JSON.stringify(asked)}`);
    let record = await this.write(id, { ...asked.patch, step: 'await_signature' });
    // The sandbox device signs within milliseconds; a loaded machine gets 5 s.
    for (let i = 0; i < 250 && this.tenant.process(id).signature === undefined; i += 1) await setTimeout(20);
    const verified = await awaitSignatureStep(this.runOf(record, { freshLease: false }));
    if (verified.kind !== 'next') throw new Error(`await_signature did not verify: ${JSON.stringify(verified)}`);
    record = await this.write(id, {
      ...verified.patch,
      step: 'issue',
      ...(caConnection === undefined ? {} : { caConnection }),
    });
    return { id, record };
  }

  /** The record as stored now. */
  async record(id: string): Promise<ProcessRecord> {
    const record = await this.store.get(id);
    if (record === undefined) throw new Error(`no record for ${id}`);
    return record;
  }

  /** Writes a step's patch the way the engine would before the next step, and returns the stored record. */
  async write(id: string, patch: ProcessPatch | undefined): Promise<ProcessRecord> {
    return this.store.update(id, REPLICA, patch ?? {});
  }

  async close(): Promise<void> {
    await this.tenant.close();
    await rm(this.workDir, { recursive: true, force: true });
  }
}

/**
 * The hooks of a step test file: the device key pool, loaded once, and a harness per test, closed after it. `keys()`
 * and `start()` are for use inside tests.
 */
export function stepTests(): { keys: () => KeyPool; start: (options?: HarnessOptions) => Promise<StepHarness> } {
  let pool: KeyPool | undefined;
  const open: StepHarness[] = [];
  beforeAll(async () => {
    pool = await testKeyPool();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((h) => h.close()));
  });
  return {
    keys: () => {
      if (pool === undefined) throw new Error('the key pool is loaded in beforeAll');
      return pool;
    },
    start: async (options) => {
      const harness = await StepHarness.start(options);
      open.push(harness);
      return harness;
    },
  };
}

/** One answer of a scripted CA: a result, or an error it throws. */
export type ScriptedAnswer = IssueResult | Error | ((request: IssueRequest, ctx: StepContext) => Promise<IssueResult>);

/**
 * A CA connection that answers `issue` and `poll` from a script, in order, and records every call — the stand-in
 * for a remote CA (DigiCert-like: pending orders that can be cancelled).
 */
export class ScriptedCa {
  readonly issued: IssueRequest[] = [];
  readonly polled: PendingRef[] = [];
  readonly cancelled: { ref: PendingRef; reason: string }[] = [];
  readonly connection: CaConnection;
  /** The answers still to give, first first; a test may add more. */
  readonly script: ScriptedAnswer[];

  /** `linksRenewals`: the CA wants the certificate a renewal replaces (DigiCert's renewal_of_order_id). */
  constructor(name: string, answers: ScriptedAnswer[], options: { linksRenewals?: boolean } = {}) {
    this.script = [...answers];
    const answer = async (request: IssueRequest, ctx: StepContext): Promise<IssueResult> => {
      const next = this.script.shift();
      if (next === undefined) throw new Error('the scripted CA has no answer left');
      if (next instanceof Error) throw next;
      return typeof next === 'function' ? next(request, ctx) : next;
    };
    const ca = {
      name,
      type: 'scripted',
      linksRenewals: options.linksRenewals ?? false,
      issue: (request: IssueRequest, ctx: StepContext) => {
        this.issued.push(request);
        return answer(request, ctx);
      },
      poll: (ref: PendingRef, request: IssueRequest, ctx: StepContext) => {
        this.polled.push(ref);
        return answer(request, ctx);
      },
      cancel: (ref: PendingRef, reason: string) => {
        this.cancelled.push({ ref, reason });
        return Promise.resolve();
      },
    };
    this.connection = { name, type: 'scripted', faultComponent: 'scripted-ca', ca, abilities: abilitiesOf(ca) };
  }
}
