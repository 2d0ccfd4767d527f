/**
 * `certprov check-config` — validates a configuration file the way `run` does and prints what it understood;
 * with `--probe`, also checks credentials and reachability without side effects (src/cli/probe.ts).
 */
import { formatDuration } from '../config/duration.ts';
import type { Config } from '../config/load.ts';
import { VERSION } from '../version.ts';
import { configPath, parseOptions, type Command } from './command.ts';
import { describeStore } from '../store/describe.ts';
import { table } from './table.ts';

export function describeConfig(config: Config): string {
  const lines = [
    `configuration ${config.source} is valid`,
    '',
    `instanceId       ${config.instanceId} (${config.instanceIdSource})`,
    `chrome           ${config.chrome.endpoint} (customer ${config.chrome.customer}, credentials ${config.chrome.credentials}, signature timeout ${formatDuration(config.chrome.signatureTimeoutMs)}, budget ${config.chrome.rateLimit.requestsPerMinute} requests/min for all replicas)`,
    `pubsub           ${config.pubsub.subscription ?? '(none)'} (maxInFlight ${config.pubsub.maxInFlight})`,
    `store            ${describeStore(config.store)}`,
    `http             ${config.http.host}:${config.http.port}`,
    '',
    'CA connections:',
    table([
      ['  name', 'type', 'key types', 'SAN types', 'max validity'],
      ...[...config.caConnections.values()].map((c) => [
        `  ${c.name}`,
        c.type,
        c.capabilities.keyTypes.join(','),
        c.capabilities.subjectAltNameTypes.join(',') || '-',
        `${c.capabilities.maxValidityDays}d`,
      ]),
    ]),
    '',
    'Profiles:',
    table([
      ['  name', 'subject', 'SANs', 'validity', 'CA connections'],
      ...[...config.profiles.values()].map((p) => [
        `  ${p.name}`,
        p.subject.map((rdn) => rdn.map((a) => `${a.type}=${a.value.source}`).join('+')).join(','),
        p.subjectAltNames.map((s) => s.type).join(',') || '-',
        formatDuration(p.validityMs),
        p.caConnections.join(','),
      ]),
    ]),
  ];
  return lines.join('\n');
}

export const checkConfigCommand: Command = {
  name: 'check-config',
  usage: 'check-config --config FILE [--probe]',
  summary: 'validate a configuration file; --probe also checks credentials and reachability',
  help: `certprov check-config --config FILE [--probe]

Validates the configuration exactly as \`run\` does — schema, templates, CA capabilities against the profiles wired
to them, and every file or variable it names (secret files and variables are checked to be readable and non-empty,
never printed; a local CA's directory; the sqlite store's file and directory, read without creating anything;
GOOGLE_APPLICATION_CREDENTIALS) and placeholders left from an example (PROJECT_ID, REGION, all-zero Entra ids, the
examples' organization ids) — lists every problem with its path (exit code 2), or prints a summary of the CA
connections and profiles and any warnings (exit code 0). Without --probe nothing is contacted.

With --probe it then checks, without side effects (reads only; nothing is claimed, ordered, signed or written):
  google    an access token is obtainable (Application Default Credentials / Workload Identity)
  chrome    the Chrome Management API answers and accepts the credentials (a GET of a probe id → NOT_FOUND)
  pubsub    the subscription exists; its dead-letter policy and exactly-once setting are shown
  ca:NAME   each CA connection opens and its backend's own check passes (credentials accepted, CA usable)
  store     the sqlite file or Firestore answers a read (skipped for the memory store)
and prints one row per check with a hint for each problem. Exit code 1 if any check failed. Each check gives up
after 15 s. PUBSUB_EMULATOR_HOST and GOOGLE_APPLICATION_CREDENTIALS are honoured as in \`run\`.

Options:
  --config FILE   configuration file (or CERTPROV_CONFIG)
  --probe         also run the read-only checks above`,
  async run(args) {
    const { values } = parseOptions(args, { config: { type: 'string' }, probe: { type: 'boolean', default: false } });
    // Loaded here, not at the top: `check-config --help` must not pay for the validator.
    const [{ loadConfigFile }, { assertRunnable }, { configWarnings }] = await Promise.all([
      import('../config/load.ts'),
      import('../config/references.ts'),
      import('../config/warnings.ts'),
    ]);
    const config = await loadConfigFile(configPath(values.config), 'run');
    await assertRunnable(config);
    console.log(describeConfig(config));
    for (const warning of configWarnings(config)) console.log(`warning: ${warning}`);
    if (!values.probe) return 0;
    // Loaded only for --probe: it needs the Pub/Sub and Google auth SDKs.
    const [{ formatProbeResults, runProbes }, { createLogger }, { Metrics }] = await Promise.all([
      import('./probe.ts'),
      import('../observability/logger.ts'),
      import('../observability/metrics.ts'),
    ]);
    // Client logs stay quiet: every finding is in the table, and a failed check must not print a stack.
    const log = createLogger({ level: 'silent' });
    const results = await runProbes(config, { log, metrics: new Metrics({ version: VERSION, defaultMetrics: false }) });
    console.log('');
    console.log(formatProbeResults(results));
    return results.some((r) => r.status === 'fail') ? 1 : 0;
  },
};
