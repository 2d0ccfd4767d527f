/**
 * The metric catalogue's conventions (DESIGN.md §6): `certprov_` prefix, `_total` counters, `_seconds` histograms,
 * low-cardinality labels only. Checked over the registry itself, so a metric added later is held to them too.
 */
import { describe, expect, it } from 'vitest';
import { Metrics, NOT_OURS_REFERENCE_LIMIT, statusClass } from '../../../src/observability/metrics.ts';

/** Every label a certprov metric may carry: none of them can hold a device, user or process id. */
const LOW_CARDINALITY_LABELS = new Set([
  'step',
  'outcome',
  'reason',
  'ca_connection',
  'backend',
  'api',
  'method',
  'status_class',
  'where',
  'error_class',
  'bucket',
  'component',
  'version',
  'node',
  'within', // certificates_expiring: two fixed horizons (7d, 30d)
  'state', // store_congestion: congested, healthy
]);

interface RegisteredMetric {
  readonly name: string;
  readonly type: string;
  readonly labelNames?: readonly string[];
}

/** The adapter's own metrics (a registry without the Node.js default metrics). */
function ownMetrics(metrics: Metrics): RegisteredMetric[] {
  return metrics.registry.getMetricsAsArray() as unknown as RegisteredMetric[];
}

describe('Metrics', () => {
  it('names every metric by the conventions and labels it with low-cardinality labels only', () => {
    const own = ownMetrics(new Metrics({ defaultMetrics: false }));
    expect(own.length).toBeGreaterThan(15);
    for (const metric of own) {
      expect(metric.name).toMatch(/^certprov_[a-z0-9_]+$/);
      if (metric.type === 'counter') expect(metric.name, metric.name).toMatch(/_total$/);
      if (metric.type === 'histogram') expect(metric.name, metric.name).toMatch(/_seconds$/);
      if (metric.type !== 'counter') expect(metric.name, metric.name).not.toMatch(/_total$/);
      for (const label of metric.labelNames ?? [])
        expect(LOW_CARDINALITY_LABELS, `${metric.name}{${label}}`).toContain(label);
      // certprov_process_* is Node's runtime (the OS process, from the default metrics): a provisioning process
      // series there would be read as one of them.
      expect(metric.name, metric.name).not.toMatch(/^certprov_process_/);
    }
  });

  it('covers what an operator needs to see', () => {
    const names = new Set(ownMetrics(new Metrics({ defaultMetrics: false })).map((m) => m.name));
    for (const name of [
      'certprov_messages_received_total',
      'certprov_messages_acked_total',
      'certprov_messages_nacked_total',
      'certprov_messages_malformed_total',
      'certprov_processes_started_total',
      'certprov_processes_issued_total',
      'certprov_processes_failed_total',
      'certprov_processes_in_flight',
      'certprov_ca_pending_orders',
      'certprov_step_duration_seconds',
      'certprov_signature_wait_seconds',
      'certprov_provisioning_duration_seconds',
      'certprov_remote_requests_total',
      'certprov_remote_request_duration_seconds',
      'certprov_retries_total',
      'certprov_rate_limiter_wait_seconds',
      'certprov_deployment_fault_active',
      'certprov_build_info',
      'certprov_ready',
    ]) {
      expect(names, name).toContain(name);
    }
  });

  it('adds the Node.js default metrics (start time, event loop lag, heap) under the same prefix', async () => {
    const text = await new Metrics({ version: '1.2.3' }).scrape();
    expect(text).toMatch(/^certprov_process_start_time_seconds \d+/m);
    expect(text).toMatch(/^certprov_nodejs_eventloop_lag_seconds /m);
    expect(text).toMatch(/^certprov_nodejs_heap_size_used_bytes /m);
    expect(text).toContain(`certprov_build_info{version="1.2.3",node="${process.versions.node}"} 1`);
    expect(await new Metrics({ defaultMetrics: false }).scrape()).not.toContain('certprov_nodejs_');
  });

  it('exports a CA connection’s issued series at 0 before anything happened', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    expect(await metrics.scrape()).not.toContain('certprov_processes_issued_total{');
    metrics.declareCaConnection('default_ca_config', 'digicert');
    const text = await metrics.scrape();
    expect(text).toContain('certprov_processes_issued_total{ca_connection="default_ca_config",backend="digicert"} 0');
    expect(text).toContain(
      'certprov_ca_certificates_issued_total{ca_connection="default_ca_config",backend="digicert"} 0',
    );
  });

  it("counts other adapters' processes by reference, with a bounded label set", async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    for (let i = 0; i < NOT_OURS_REFERENCE_LIMIT + 5; i += 1) metrics.countNotOurs(`ref_${i}`, 'unknown_ca_connection');
    metrics.countNotOurs('ref_0', 'unknown_ca_connection');
    metrics.countNotOurs('x'.repeat(500), 'scep');
    const values = (await metrics.processesNotOurs.get()).values;
    const labels = new Set(values.map((v) => String(v.labels.ca_connection)));
    expect(labels.size).toBe(NOT_OURS_REFERENCE_LIMIT + 1); // the first N, then "other"
    expect(values.find((v) => v.labels.ca_connection === 'ref_0')?.value).toBe(2);
    expect(
      values.find((v) => v.labels.ca_connection === 'other' && v.labels.reason === 'unknown_ca_connection')?.value,
    ).toBe(5);
    expect(values.find((v) => v.labels.reason === 'scep')?.labels.ca_connection).toBe('other');
  });

  it('starts not ready', async () => {
    expect(await new Metrics({ defaultMetrics: false }).scrape()).toMatch(/^certprov_ready 0$/m);
  });
});

describe('statusClass', () => {
  it.each([
    [200, '2xx'],
    [204, '2xx'],
    [302, '3xx'],
    [400, '4xx'],
    [403, '4xx'],
    [404, '4xx'],
    [429, '429'],
    [500, '5xx'],
    [503, '5xx'],
    ['network', 'network'],
    ['timeout', 'timeout'],
  ] as const)('%s → %s', (status, expected) => {
    expect(statusClass(status)).toBe(expected);
  });
});
