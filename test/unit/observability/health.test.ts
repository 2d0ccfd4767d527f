import { describe, expect, it } from 'vitest';
import { Health } from '../../../src/observability/health.ts';
import { Metrics } from '../../../src/observability/metrics.ts';

async function gauge(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values as { value: number; labels: Record<string, string> }[] | undefined)?.find((v) =>
    Object.entries(labels).every(([k, want]) => v.labels[k] === want),
  )?.value;
}

describe('Health (readiness of one replica)', () => {
  it('is ready only when running and subscribed, and says why not', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const health = new Health(metrics);
    expect(health.notReadyReasons()).toEqual(['state starting', 'not subscribed']);
    health.setSubscribed(true);
    expect(health.isReady).toBe(false);
    health.setState('running');
    expect(health.isReady).toBe(true);
    expect(health.notReadyReasons()).toEqual([]);
    expect(await gauge(metrics, 'certprov_ready')).toBe(1);
    health.setState('draining');
    expect(health.notReadyReasons()).toEqual(['state draining']);
    expect(await gauge(metrics, 'certprov_ready')).toBe(0);
  });

  it('a deployment fault makes the replica unready until the component works again', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const health = new Health(metrics);
    health.setState('running');
    health.setSubscribed(true);
    health.reportFault('digicert', 'DigiCert refused the API key (401)');
    health.reportFault('digicert', 'DigiCert refused the API key (401)');
    expect(health.notReadyReasons()).toEqual(['deployment fault (digicert): DigiCert refused the API key (401)']);
    expect(await gauge(metrics, 'certprov_deployment_fault_active', { component: 'digicert' })).toBe(1);
    expect(await gauge(metrics, 'certprov_deployment_faults_total', { component: 'digicert' })).toBe(2);
    expect(await gauge(metrics, 'certprov_ready')).toBe(0);

    health.clearFault('chrome'); // another component: no effect
    expect(health.isReady).toBe(false);
    health.clearFault('digicert');
    expect(health.isReady).toBe(true);
    expect(await gauge(metrics, 'certprov_deployment_fault_active', { component: 'digicert' })).toBe(0);
    expect(await gauge(metrics, 'certprov_ready')).toBe(1);
  });
});
