/**
 * Prometheus metrics (prom-client). Naming: `certprov_` prefix, `_total` counters, `_seconds` histograms.
 * Labels are low-cardinality only — step, outcome, reason, ca_connection, backend, api, method, status_class,
 * error_class, component. Never a device, user or process id (DESIGN.md §6).
 *
 * One {@link Metrics} per adapter instance, on its own registry, so tests can run several side by side.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Latency buckets for remote calls and steps: 5 ms … 5 min. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** End-to-end buckets: a device may take minutes to sign, a CA order hours. */
const PROCESS_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600, 72 * 3600];

/** Distinct CA connection references that get their own `certprov_processes_not_ours_total` series. */
export const NOT_OURS_REFERENCE_LIMIT = 20;

/** Why a process is another adapter's (src/provisioning/ownership.ts). */
export type NotOursReason = 'unknown_ca_connection' | 'scep' | 'no_reference';

export interface MetricsOptions {
  /** Collect Node.js process metrics (event loop lag, heap, GC, start time). Default true. */
  defaultMetrics?: boolean;
  version?: string;
}

export class Metrics {
  readonly registry = new Registry();

  readonly messagesReceived = new Counter({
    name: 'certprov_messages_received_total',
    help: 'Pub/Sub messages received.',
    registers: [this.registry],
  });
  readonly messagesAcked = new Counter({
    name: 'certprov_messages_acked_total',
    help: 'Pub/Sub messages acknowledged.',
    registers: [this.registry],
  });
  readonly messagesNacked = new Counter({
    name: 'certprov_messages_nacked_total',
    help: 'Pub/Sub messages handed back for redelivery, by reason (malformed, store_unavailable, shutdown, error).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly messagesMalformed = new Counter({
    name: 'certprov_messages_malformed_total',
    help: 'Pub/Sub messages that could not be decoded into a process id (nacked for the dead-letter policy).',
    registers: [this.registry],
  });

  readonly processesStarted = new Counter({
    name: 'certprov_processes_started_total',
    help: 'Provisioning processes taken up (first time a record was created for them).',
    registers: [this.registry],
  });
  readonly processesIssued = new Counter({
    name: 'certprov_processes_issued_total',
    help: 'Processes that ended with a certificate uploaded.',
    labelNames: ['ca_connection', 'backend'] as const,
    registers: [this.registry],
  });
  readonly processesFailed = new Counter({
    name: 'certprov_processes_failed_total',
    help: 'Processes that ended with setFailure, by reason.',
    labelNames: ['reason', 'ca_connection'] as const,
    registers: [this.registry],
  });
  readonly processesSkipped = new Counter({
    name: 'certprov_processes_skipped_total',
    help: 'Processes acknowledged without work (already finished, claimed by another adapter instance, not found).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  /**
   * Another adapter's processes by the CA connection reference they carry, so an admin who mistyped a reference in
   * the Admin console finds it. The names are admin-defined and few; the label set is bounded all the same
   * ({@link countNotOurs}).
   */
  readonly processesNotOurs = new Counter({
    name: 'certprov_processes_not_ours_total',
    help: 'Processes left to another adapter, by the CA connection reference they carry (ca_connection) and why (reason: unknown_ca_connection, scep, no_reference).',
    labelNames: ['ca_connection', 'reason'] as const,
    registers: [this.registry],
  });
  readonly claims = new Counter({
    name: 'certprov_claims_total',
    help: 'claim calls by outcome: won, repeated (accepted for a process that already carried signData: a second claim by this callerInstanceId), refused.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  private readonly notOursReferences = new Set<string>();
  readonly processesInFlight = new Gauge({
    name: 'certprov_processes_in_flight',
    help: 'Processes whose step is running on this replica right now.',
    registers: [this.registry],
  });
  readonly storeConcurrencyLimit = new Gauge({
    name: 'certprov_store_concurrency_limit',
    help: 'Processes this replica runs at once at most now: scheduler.maxConcurrent, halved while the store times out or answers slowly, back one at a time when it answers in time.',
    registers: [this.registry],
  });
  readonly scanSpacing = new Gauge({
    name: 'certprov_scan_spacing_seconds',
    help: "Least time between this replica's scans of the store for due records now: the store's own spacing, longer after slow scans or scans that found nothing.",
    registers: [this.registry],
  });
  readonly storeCongestion = new Counter({
    name: 'certprov_store_congestion_total',
    help: 'Store congestion episodes beginning (state congested, reason: timeout, overload, slow) and ending (state healthy, reason recovered: back at maxConcurrent and a minute without a congestion signal).',
    labelNames: ['state', 'reason'] as const,
    registers: [this.registry],
  });
  readonly storeCheckpointFailures = new Counter({
    name: 'certprov_store_checkpoint_failures_total',
    help: "Failed WAL checkpoints of the sqlite store, by where: worker (the checkpoint thread failed; SQLite's own checkpoints took over, commits slower), connection (finishing a round on the store's connection failed; the WAL grows past its bound until a round succeeds).",
    labelNames: ['where'] as const,
    registers: [this.registry],
  });
  readonly processesWaiting = new Gauge({
    name: 'certprov_processes_waiting',
    help: 'Processes not finished, by step (from the store; waiting on a device, a CA or a retry).',
    labelNames: ['step'] as const,
    registers: [this.registry],
  });
  readonly caPendingOrders = new Gauge({
    name: 'certprov_ca_pending_orders',
    help: 'CA requests pending at the CA (from the store).',
    registers: [this.registry],
  });

  readonly stepDuration = new Histogram({
    name: 'certprov_step_duration_seconds',
    help: 'Duration of one workflow step execution, by step and outcome (ok, wait, retry, terminal, deployment_fault).',
    labelNames: ['step', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly signatureWait = new Histogram({
    name: 'certprov_signature_wait_seconds',
    help: 'Time from signData to the device signature being available.',
    buckets: PROCESS_BUCKETS,
    registers: [this.registry],
  });
  readonly provisioningDuration = new Histogram({
    name: 'certprov_provisioning_duration_seconds',
    help: 'End-to-end duration of a process, from record creation to its outcome.',
    labelNames: ['outcome'] as const,
    buckets: PROCESS_BUCKETS,
    registers: [this.registry],
  });

  readonly remoteRequests = new Counter({
    name: 'certprov_remote_requests_total',
    help: 'Requests to remote APIs by api, method and status class (2xx, 4xx, 429, 5xx, network, timeout).',
    labelNames: ['api', 'method', 'status_class'] as const,
    registers: [this.registry],
  });
  readonly remoteRequestDuration = new Histogram({
    name: 'certprov_remote_request_duration_seconds',
    help: 'Latency of remote API requests.',
    labelNames: ['api', 'method'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'certprov_retries_total',
    help: 'Retries, by where (an api name, or "step") and error class.',
    labelNames: ['where', 'error_class'] as const,
    registers: [this.registry],
  });
  readonly rateLimiterWait = new Histogram({
    name: 'certprov_rate_limiter_wait_seconds',
    help: 'Time spent waiting for a client-side rate budget, by bucket kind.',
    labelNames: ['bucket'] as const,
    buckets: [0, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly deploymentFaults = new Counter({
    name: 'certprov_deployment_faults_total',
    help: 'Deployment faults seen (401/403, missing permission, unreachable store), by component.',
    labelNames: ['component'] as const,
    registers: [this.registry],
  });
  readonly deploymentFaultActive = new Gauge({
    name: 'certprov_deployment_fault_active',
    help: '1 while a deployment fault of the component is unresolved on this replica.',
    labelNames: ['component'] as const,
    registers: [this.registry],
  });
  readonly certificatesIssued = new Counter({
    name: 'certprov_ca_certificates_issued_total',
    help: 'Certificates returned by CA backends, by ca_connection and backend.',
    labelNames: ['ca_connection', 'backend'] as const,
    registers: [this.registry],
  });
  /** Known for the CAs that sign themselves (local, Key Vault, Cloud KMS), once their certificate is loaded. */
  readonly caCertificateExpiry = new Gauge({
    name: 'certprov_ca_certificate_expiry_timestamp_seconds',
    help: 'notAfter of the issuing CA certificate of a CA connection, as a Unix timestamp (self-run CAs).',
    labelNames: ['ca_connection', 'backend'] as const,
    registers: [this.registry],
  });
  readonly certificatesExpiring = new Gauge({
    name: 'certprov_certificates_expiring',
    help: 'Active inventory certificates not yet expired that expire within `within` (7d, 30d), by ca_connection.',
    labelNames: ['ca_connection', 'within'] as const,
    registers: [this.registry],
  });
  readonly buildInfo = new Gauge({
    name: 'certprov_build_info',
    help: 'Always 1; labels carry the adapter version and Node.js version.',
    labelNames: ['version', 'node'] as const,
    registers: [this.registry],
  });
  /**
   * What /readyz answers, as a number, so dashboards and alerts see it without scraping the probe: a replica that
   * stays unready (deployment fault, lost subscription) is visible next to the reason in its logs.
   */
  readonly ready = new Gauge({
    name: 'certprov_ready',
    help: '1 while this replica is ready (running, subscribed, no deployment fault), else 0.',
    registers: [this.registry],
  });

  constructor(options: MetricsOptions = {}) {
    if (options.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry, prefix: 'certprov_' });
    }
    this.buildInfo.set({ version: options.version ?? 'dev', node: process.versions.node }, 1);
    this.ready.set(0);
  }

  /**
   * Exports the per-connection series at 0 before anything happened. A series that first appears with value 1
   * hides that increment from rate()/increase(), and the failure-ratio alert divides by issued + failed: without
   * an `issued` series a connection that only fails would never alert (deploy/components/*).
   */
  declareCaConnection(caConnection: string, backend: string): void {
    this.processesIssued.inc({ ca_connection: caConnection, backend }, 0);
    this.certificatesIssued.inc({ ca_connection: caConnection, backend }, 0);
  }

  /**
   * Counts a process left to another adapter. The first {@link NOT_OURS_REFERENCE_LIMIT} distinct references get
   * their own series; later ones are counted as `other` (and still logged with their name).
   */
  countNotOurs(reference: string, reason: NotOursReason): void {
    let label = reference.slice(0, 100);
    if (!this.notOursReferences.has(label)) {
      if (this.notOursReferences.size < NOT_OURS_REFERENCE_LIMIT) this.notOursReferences.add(label);
      else label = 'other';
    }
    this.processesNotOurs.inc({ ca_connection: label, reason });
  }

  /** Prometheus text exposition. */
  async scrape(): Promise<string> {
    return this.registry.metrics();
  }
}

/**
 * Maps an HTTP status (or a transport failure) to the `status_class` label: `2xx`…`5xx`, `network`, `timeout`, and
 * `429` on its own — throttling is what the rate-limit alert watches (deploy/components/*), and folded into `4xx`
 * it would be indistinguishable from a rejected request.
 */
export function statusClass(status: number | 'network' | 'timeout'): string {
  if (typeof status !== 'number') return status;
  if (status === 429) return '429';
  return `${Math.floor(status / 100)}xx`;
}
