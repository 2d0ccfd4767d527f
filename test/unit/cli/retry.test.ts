/**
 * `certprov retry --faulted` asks the adapter's ops server in the same pod to probe its faulted components now: a
 * real OS process against a real ops server. The server takes the request only as a POST.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Health } from '../../../src/observability/health.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { RETRY_FAULTED_PATH, startOpsServer, type OpsServer } from '../../../src/observability/server.ts';
import { certprov } from '../../support/certprov-cli.ts';

let server: OpsServer;
let faulted: string[];
let probes: number;

beforeEach(async () => {
  faulted = [];
  probes = 0;
  const metrics = new Metrics({ defaultMetrics: false });
  server = await startOpsServer({
    host: '127.0.0.1',
    port: 0,
    metrics,
    health: new Health(metrics),
    retryFaulted: () => {
      probes += 1;
      return [...faulted];
    },
  });
});
afterEach(async () => {
  await server.close();
});

describe('certprov retry --faulted', () => {
  it('makes the running adapter probe every faulted component now, and says which', async () => {
    faulted = ['digicert', 'chrome'];
    const run = await certprov(['retry', '--faulted', '--port', String(server.port)]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.trim()).toBe('probing now: digicert, chrome');
    expect(probes).toBe(1);
  });

  it('says so when nothing is faulted', async () => {
    const run = await certprov(['retry', '--faulted', '--port', String(server.port)]);
    expect([run.code, run.stdout.trim()]).toEqual([0, 'no component is faulted']);
  });

  it('without an adapter on the port: one line saying what to do, exit 1', async () => {
    const port = server.port;
    await server.close();
    server = { port, close: () => Promise.resolve() };
    const run = await certprov(['retry', '--faulted', '--port', String(port)]);
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/no adapter answers on 127\.0\.0\.1:\d+; what to do: run it inside the adapter's pod/);
  });

  it('without --faulted: a usage error (exit 2), nothing asked', async () => {
    const run = await certprov(['retry', '--port', String(server.port)]);
    expect(run.code).toBe(2);
    expect(probes).toBe(0);
  });

  it('the ops server takes it only as a POST', async () => {
    const get = await fetch(`http://127.0.0.1:${server.port}${RETRY_FAULTED_PATH}`);
    expect(get.status).toBe(405);
    expect(probes).toBe(0);
  });
});
