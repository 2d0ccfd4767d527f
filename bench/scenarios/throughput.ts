/**
 * The core path at volume: sandbox tenant + in-process source + local CA, memory store, one replica. Reports
 * per-process costs (CPU, Chrome API requests, memory) and processes per second, all measured in this run.
 * CPU includes the simulated devices' signing and the sandbox server (everything runs in this process), so it is an
 * upper bound on the adapter's own cost.
 */
import { performance } from 'node:perf_hooks';
import { KeyPool } from '../../src/sandbox/index.ts';
import { AdapterRig } from '../../test/support/adapter-rig.ts';
import type { BenchScenario } from '../scenario.ts';

const scenario: BenchScenario = {
  name: 'throughput',
  description: 'core path, local CA, memory store: processes/s and per-process costs',
  async run({ quick }) {
    const count = quick ? 100 : 1_000;
    const pool = await KeyPool.generate({ 'rsa-2048': 4, 'ec-p256': 4 });
    const rig = await AdapterRig.start({
      logLevel: 'warn',
      config: { scheduler: { maxConcurrent: 128 }, pubsub: { maxInFlight: 1000 } },
    });
    try {
      const ids = rig.tenant.createProcesses(count, { pool, ecShare: 0.5, userShare: 0.5 });
      const requestsBefore = Object.values(rig.tenant.requests).reduce((a, b) => a + b, 0);
      global.gc?.();
      const heapBefore = process.memoryUsage().heapUsed;
      let heapPeak = heapBefore;
      // Sampled, not read once at the end: a GC during the run would hide the peak.
      const sampler = setInterval(() => (heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)), 10);
      const cpuBefore = process.cpuUsage();
      const started = performance.now();
      for (const id of ids) await rig.notify(id);
      await rig.tenant.waitUntilFinished(ids, 300_000);
      const wallMs = performance.now() - started;
      const cpu = process.cpuUsage(cpuBefore);
      clearInterval(sampler);
      const stats = rig.tenant.stats();
      const requests = Object.values(rig.tenant.requests).reduce((a, b) => a + b, 0) - requestsBefore;
      return [
        { name: 'processes', value: count, unit: '' },
        { name: 'issued', value: stats.issued, unit: '', target: `= ${count}` },
        { name: 'double signData', value: stats.doubleSignData, unit: '', target: '= 0' },
        { name: 'throughput', value: count / (wallMs / 1000), unit: 'processes/s' },
        { name: 'CPU per process (whole rig)', value: (cpu.user + cpu.system) / 1000 / count, unit: 'ms' },
        { name: 'Chrome API requests per certificate', value: requests / stats.issued, unit: 'requests' },
        {
          name: 'peak heap growth per process (whole rig, all in flight)',
          value: Math.max(0, heapPeak - heapBefore) / count / 1024,
          unit: 'KiB',
        },
      ];
    } finally {
      await rig.stop();
    }
  },
};
export default scenario;
