/** The ops HTTP server over real HTTP: what the kubelet's probes and a Prometheus scrape see. */
import { afterEach, describe, expect, it } from 'vitest';
import { Health } from '../../../src/observability/health.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { startOpsServer, type OpsServer } from '../../../src/observability/server.ts';

let server: OpsServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start() {
  const metrics = new Metrics({ version: '9.9.9' });
  const health = new Health(metrics);
  server = await startOpsServer({ host: '127.0.0.1', port: 0, metrics, health });
  const url = (path: string) => `http://127.0.0.1:${server?.port ?? 0}${path}`;
  return { metrics, health, url };
}

describe('ops server', () => {
  it('/healthz answers 200 whatever the readiness', async () => {
    const { url } = await start();
    const response = await fetch(url('/healthz'));
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('ok\n');
  });

  it('/readyz answers 503 with every reason until ready, then 200', async () => {
    const { url, health } = await start();
    let response = await fetch(url('/readyz'));
    expect(response.status).toBe(503);
    expect(await response.text()).toBe('not ready: state starting\nnot ready: not subscribed\n');
    health.setState('running');
    health.setSubscribed(true);
    response = await fetch(url('/readyz'));
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('ready\n');
    health.reportFault('store', 'Firestore PERMISSION_DENIED');
    response = await fetch(url('/readyz?verbose=1'));
    expect(response.status).toBe(503);
    expect(await response.text()).toContain('deployment fault (store): Firestore PERMISSION_DENIED');
  });

  it('/metrics serves the Prometheus text format, with readiness and build info', async () => {
    const { url, health } = await start();
    health.setState('running');
    health.setSubscribed(true);
    const response = await fetch(url('/metrics'));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toContain('# TYPE certprov_messages_received_total counter');
    expect(text).toMatch(/^certprov_ready 1$/m);
    expect(text).toContain('certprov_build_info{version="9.9.9"');
    expect(text).toMatch(/^certprov_process_start_time_seconds \d+$/m);
  });

  it('refuses other methods and paths', async () => {
    const { url } = await start();
    expect((await fetch(url('/metrics'), { method: 'POST' })).status).toBe(405);
    expect((await fetch(url('/'))).status).toBe(404);
    expect((await fetch(url('/healthz'), { method: 'HEAD' })).status).toBe(200);
  });
});
