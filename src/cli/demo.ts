/**
 * `certprov demo` (`npm start`) — the embedded default: the sandbox tenant (a simulated Chrome tenant with ChromeOS
 * clients holding real keys), an in-process message source and a local CA, wired through the same Adapter as `run`.
 * No cloud account, no Java, no network beyond loopback.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { Adapter } from '../adapter.ts';
import { initLocalCa } from '../ca/local/init.ts';
import { compileConfig } from '../config/load.ts';
import { createLogger } from '../observability/logger.ts';
import { Metrics } from '../observability/metrics.ts';
import { InProcessMessageSource } from '../pubsub/in-process-source.ts';
import { SandboxTenant, KeyPool, type NotificationEncoding } from '../sandbox/index.ts';
import { VERSION } from '../version.ts';
import { parseOptions, UsageError, type Command } from './command.ts';
import { leafFileName, prepareDemoOutput } from './demo-output.ts';

const ENCODINGS: readonly NotificationEncoding[] = ['json-camel', 'json-snake', 'protobuf'];

/** The embedded configuration: what a `config/local.example.yaml` would say, pointed at the sandbox. */
export function demoConfig(endpoint: string, caDirectory: string) {
  return compileConfig(
    {
      instanceId: 'certprov-demo',
      chrome: { endpoint, credentials: 'none', signatureTimeout: '1m', requestTimeout: '10s' },
      store: { type: 'memory' },
      scheduler: { signaturePollInitial: '50ms', signaturePollMax: '1s', pollInterval: '200ms', maxConcurrent: 64 },
      caConnections: { default_ca_config: { type: 'local', directory: caDirectory } },
      profiles: {
        device_profile: {
          subject: 'CN={{device.serialNumber}},O=certprov demo',
          subjectAltNames: [{ uri: 'urn:chromeos:device:{{device.deviceDirectoryApiId}}' }],
          validity: '30d',
          extendedKeyUsages: ['clientAuth'],
        },
        user_profile: {
          subject: 'CN={{user.userPrimaryEmail}},O=certprov demo',
          subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
          validity: '30d',
          extendedKeyUsages: ['clientAuth'],
        },
      },
      http: { host: '127.0.0.1', port: 0 },
    },
    { source: 'embedded demo configuration', baseDir: process.cwd(), purpose: 'demo' },
  );
}

function positiveInt(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0 || n > 100_000)
    throw new UsageError(`${flag} must be a whole number from 1 to 100000`);
  return n;
}

const DEFAULT_OUT = 'demo-output';
/** The wait for every process: 120 s, plus 20 ms per process (about 50 per second, several times slower than here). */
const BASE_CAP_MS = 120_000;
const CAP_PER_PROCESS_MS = 20;

export const demoCommand: Command = {
  name: 'demo',
  usage: 'demo [--count N] [--out DIR]',
  summary: 'provision simulated ChromeOS devices end to end, locally (npm start)',
  help: `certprov demo [--count N] [--out DIR] [--log-level LEVEL]

Runs the whole adapter on the embedded default, with no cloud account: a sandbox Chrome tenant on loopback
(simulated ChromeOS devices and users holding real RSA-2048 and EC P-256 keys), an in-process notification source
(JSON and protobuf encodings) and a local CA created for the run. Provisions N processes, shows progress, prints a
summary and writes every issued leaf to DIR/process-<process-id>.pem and the CA certificate to DIR/ca.pem, so that
  openssl verify -CAfile DIR/ca.pem DIR/process-<process-id>.pem
accepts each one. Exits 0 when every process was issued. DIR must be new, empty, or an earlier demo's output
(only the files that demo wrote are replaced); it is checked before any work. When the default DIR cannot be
written (a read-only working directory) the demo writes to a temporary directory and says where. The wait for
the processes grows with N (120 s + 20 ms per process); at the cap, what finished is kept and the rest reported.

Options:
  --count N           processes to provision (default 50)
  --out DIR           output directory (default demo-output; see above)
  --max-wait SECONDS  stop waiting after this long (default 120 + 0.02 per process); what finished is kept
  --log-level LEVEL   adapter log level on stderr (default warn; info shows every state change)`,
  async run(args) {
    const { values } = parseOptions(args, {
      count: { type: 'string' },
      out: { type: 'string' },
      'max-wait': { type: 'string' },
      'log-level': { type: 'string', default: 'warn' },
    });
    const count = positiveInt(values.count, 50, '--count');
    const level = values['log-level'];
    if (!['trace', 'debug', 'info', 'warn', 'error', 'silent'].includes(level))
      throw new UsageError('--log-level must be trace, debug, info, warn, error or silent');
    const say = (line: string) => process.stdout.write(line + '\n');
    const setupStarted = performance.now();
    // Decided before the work: a directory that cannot be written must not cost a whole run.
    const output = await prepareDemoOutput(values.out ?? DEFAULT_OUT, values.out !== undefined);
    if (output.note !== undefined) say(`note: ${output.note}`);
    const out = output.directory;

    const work = await mkdtemp(path.join(tmpdir(), 'certprov-demo-'));
    const keyPool = KeyPool.generate({ 'rsa-2048': 4, 'ec-p256': 4 });
    const ca = await initLocalCa({ directory: path.join(work, 'ca'), keyType: 'ec', subject: 'CN=certprov demo CA' });
    const tenant = await SandboxTenant.start({});
    const log = createLogger({
      level: level as 'warn',
      destination: pino.destination({ fd: 2, sync: false }),
      base: { service: 'certprov-demo', version: VERSION },
    });
    const metrics = new Metrics({ version: VERSION });
    const source = new InProcessMessageSource({ maxInFlight: 100 });
    const config = demoConfig(tenant.endpoint, path.join(work, 'ca'));
    const adapter = await Adapter.create({ config, log, metrics, source });
    try {
      const pool = await keyPool;
      // Devices sign after 20–300 ms, like clients that are online; a few use the older flat resource shape.
      const ids = tenant.createProcesses(count, { pool, ecShare: 0.5, userShare: 0.5, affiliatedShare: 0.5 });
      say(
        `certprov ${VERSION} demo: ${count} processes, sandbox tenant at ${tenant.endpoint}, local CA in a temporary directory`,
      );
      await adapter.start();
      say(`metrics: http://127.0.0.1:${adapter.httpPort}/metrics`);
      const started = performance.now();
      await Promise.all(
        ids.map((id, i) =>
          tenant.notify(id, { encoding: ENCODINGS[i % ENCODINGS.length] ?? 'json-camel' }, (data, attributes) => {
            source.publish(data, attributes);
            return Promise.resolve();
          }),
        ),
      );

      const progress = setInterval(() => {
        const s = tenant.stats();
        say(`  provisioned ${s.issued + s.failed}/${count} (issued ${s.issued}, failed ${s.failed})`);
      }, 500);
      // The cap grows with the count (a large run is slow, not stuck); at the cap the demo keeps and reports what
      // finished instead of throwing it away.
      const capMs =
        values['max-wait'] === undefined
          ? BASE_CAP_MS + count * CAP_PER_PROCESS_MS
          : positiveInt(values['max-wait'], 1, '--max-wait') * 1000;
      let timedOut = false;
      try {
        await tenant.waitUntilFinished(ids, capMs);
      } catch {
        timedOut = true;
      } finally {
        clearInterval(progress);
      }
      const wallMs = performance.now() - started;
      await adapter.stop(5_000);

      await output.write('ca.pem', ca.certificatePem);
      const failures = new Map<string, number>();
      let issued = 0;
      for (const id of ids) {
        const resource = tenant.process(id);
        if (resource?.issuedCertificate !== undefined) {
          issued += 1;
          await output.write(leafFileName(id), resource.issuedCertificate);
        } else {
          const reason = (await adapter.store.get(id))?.reason ?? 'unfinished';
          failures.set(reason, (failures.get(reason) ?? 0) + 1);
        }
      }
      const stats = tenant.stats();
      say('');
      say('summary');
      say(`  issued              ${issued}`);
      say(
        `  failed              ${count - issued}${failures.size === 0 ? '' : ' (' + [...failures].map(([r, n]) => `${r}: ${n}`).join(', ') + ')'}`,
      );
      say(
        `  wall time           ${(wallMs / 1000).toFixed(2)} s (setup ${((started - setupStarted) / 1000).toFixed(2)} s before that)`,
      );
      say(`  processes/second    ${(count / (wallMs / 1000)).toFixed(1)}`);
      say(`  signData calls      ${stats.signDataCalls} (double: ${stats.doubleSignData})`);
      if (timedOut) {
        say(
          `  unfinished          ${count - stats.issued - stats.failed} (stopped waiting after ${Math.round(capMs / 1000)} s; what finished is kept)`,
        );
      }
      const relative = path.relative(process.cwd(), out);
      const shown = relative.startsWith('..') ? out : relative || '.';
      say(`  output              ${shown}/process-<process-id>.pem, ca.pem`);
      const first = ids.find((id) => tenant.process(id)?.issuedCertificate !== undefined);
      if (first !== undefined) {
        say(`  check one           openssl verify -CAfile ${shown}/ca.pem ${shown}/${leafFileName(first)}`);
      }
      return issued === count ? 0 : 1;
    } finally {
      await adapter.stop(1_000).catch(() => undefined);
      await tenant.close();
      await rm(work, { recursive: true, force: true });
    }
  },
};
