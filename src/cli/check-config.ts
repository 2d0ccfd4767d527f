/**
 * `certprov check-config` — validates a configuration file the way `run` does and prints what it understood.
 */
import { formatDuration } from '../config/duration.ts';
import { loadConfigFile, type Config } from '../config/load.ts';
import { configPath, parseOptions, type Command } from './command.ts';

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

export function describeConfig(config: Config): string {
  const lines = [
    `configuration ${config.source} is valid`,
    '',
    `instanceId       ${config.instanceId}`,
    `chrome           ${config.chrome.endpoint} (customer ${config.chrome.customer}, credentials ${config.chrome.credentials}, signature timeout ${formatDuration(config.chrome.signatureTimeoutMs)})`,
    `pubsub           ${config.pubsub.subscription ?? '(none)'} (maxInFlight ${config.pubsub.maxInFlight})`,
    `store            ${config.store.type === 'memory' ? 'memory (one replica, not crash-safe)' : `firestore ${config.store.projectId ?? '(project from environment)'}/${config.store.databaseId}/${config.store.collection}`}`,
    `http             ${config.http.host}:${config.http.port}`,
    '',
    'CA connections:',
    table([
      ['  name', 'type', 'key types', 'SAN types', 'max validity', 'may pend'],
      ...[...config.caConnections.values()].map((c) => [
        `  ${c.name}`,
        c.type,
        c.capabilities.keyTypes.join(','),
        c.capabilities.subjectAltNameTypes.join(',') || '-',
        `${c.capabilities.maxValidityDays}d`,
        c.capabilities.mayPend ? 'yes' : 'no',
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
  usage: 'check-config --config FILE',
  summary: 'validate a configuration file and show what it configures',
  help: `certprov check-config --config FILE

Validates the configuration exactly as \`run\` does — schema, templates, CA capabilities against the profiles wired
to them — lists every problem with its path (exit code 2), or prints a summary of the CA connections and profiles
(exit code 0). Nothing is contacted.

Options:
  --config FILE   configuration file (or CERTPROV_CONFIG)`,
  async run(args) {
    const { values } = parseOptions(args, { config: { type: 'string' } });
    const config = await loadConfigFile(configPath(values.config), 'run');
    console.log(describeConfig(config));
    return 0;
  },
};
