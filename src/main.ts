#!/usr/bin/env node
/**
 * `certprov` — the command line. The container runs `certprov run`; `npm start` runs `certprov demo`.
 * Exit codes: 0 success, 1 runtime failure, 2 bad usage or invalid configuration.
 */
import { UsageError, type Command } from './cli/command.ts';
import { explainFailure, failureText } from './cli/failure.ts';
import { routeProcessWarnings } from './observability/process-warnings.ts';
import { VERSION } from './version.ts';

/**
 * The commands, loaded on use: `certprov --help` must not pay for every SDK (Pub/Sub, Firestore, Azure) that some
 * command needs — each import costs a fraction of a second. Usage and summary are repeated here so the overview
 * loads no command; test/unit/cli/command-index.test.ts holds them equal to each command's own.
 */
export interface CommandEntry {
  readonly name: string;
  readonly usage: string;
  readonly summary: string;
  load(): Promise<Command>;
}

export const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'run',
    usage: 'run --config FILE',
    summary: 'run the adapter: subscribe to Pub/Sub and provision certificates',
    load: async () => (await import('./cli/run.ts')).runCommand,
  },
  {
    name: 'demo',
    usage: 'demo [--count N] [--out DIR]',
    summary: 'provision simulated ChromeOS devices end to end, locally (npm start)',
    load: async () => (await import('./cli/demo.ts')).demoCommand,
  },
  {
    name: 'check-config',
    usage: 'check-config --config FILE [--probe]',
    summary: 'validate a configuration file; --probe also checks credentials and reachability',
    load: async () => (await import('./cli/check-config.ts')).checkConfigCommand,
  },
  {
    name: 'config',
    usage: 'config schema',
    summary: 'print the JSON Schema of the configuration file (editor validation and completion)',
    load: async () => (await import('./cli/config.ts')).configCommand,
  },
  {
    name: 'local-ca',
    usage: 'local-ca init --dir DIR [--key ec|rsa] [--intermediate]',
    summary: 'create a local file-backed CA (trials, tests, air-gapped labs)',
    load: async () => (await import('./cli/local-ca.ts')).localCaCommand,
  },
  {
    name: 'kv-ca',
    usage: 'kv-ca <create|status|merge|cancel|delete-pending> --config FILE',
    summary: 'create, enroll and rotate the issuing CA certificate held in Azure Key Vault',
    load: async () => (await import('./cli/kv-ca.ts')).kvCaCommand,
  },
  {
    name: 'kms-ca',
    usage: 'kms-ca csr --config FILE --subject DN',
    summary: 'write the CSR of the issuing CA whose key is in Cloud KMS',
    load: async () => (await import('./cli/kms-ca.ts')).kmsCaCommand,
  },
  {
    name: 'setup-pubsub',
    usage: 'setup-pubsub --project P --topic T --subscription S --dead-letter-topic D',
    summary: 'create or check the Pub/Sub topic, subscription, dead-letter topic and retry policy',
    load: async () => (await import('./cli/setup-pubsub.ts')).setupPubSubCommand,
  },
  {
    name: 'dead-letter',
    usage: 'dead-letter replay --subscription DL --topic T [--limit N] [--dry-run]',
    summary: 'republish parked notifications from the dead-letter subscription to the provisioning topic',
    load: async () => (await import('./cli/dead-letter.ts')).deadLetterCommand,
  },
  {
    name: 'retry',
    usage: 'retry --faulted [--port N]',
    summary: 'make the running adapter probe its faulted components now (after fixing the cause)',
    load: async () => (await import('./cli/retry.ts')).retryCommand,
  },
  {
    name: 'status',
    usage: 'status ID --config FILE [--json]',
    summary: 'show one process (by process id or correlation id) and its certificate',
    load: async () => (await import('./cli/status.ts')).statusCommand,
  },
  {
    name: 'certs',
    usage: 'certs list --config FILE [filters] [--json]',
    summary: 'list issued certificates (by device, user, profile, connection, status, expiry)',
    load: async () => (await import('./cli/certs.ts')).certsCommand,
  },
  {
    name: 'revoke',
    usage: 'revoke --config FILE (--serial S | --device ID | --user ID) --reason R [--dry-run] [--yes]',
    summary: 'revoke certificates of a serial, a device or a user',
    load: async () => (await import('./cli/revoke.ts')).revokeCommand,
  },
];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.usage.length));
  return [
    `certprov ${VERSION} — Chrome Enterprise certificate provisioning adapter`,
    '',
    'Takes certificate provisioning processes from Google Cloud Pub/Sub, asks the ChromeOS device for a',
    'proof-of-possession signature over a CSR, has a CA issue the certificate and uploads it.',
    '',
    'Usage:',
    ...COMMANDS.map((c) => `  certprov ${c.usage.padEnd(width)}  ${c.summary}`),
    '',
    'Run `certprov <command> --help` for the options of a command.',
  ].join('\n');
}

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    console.log(topic === undefined ? overview() : (await topic.load()).help);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    console.log(VERSION);
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (entry === undefined) {
    console.error(`certprov: unknown command "${name}"\n\n${overview()}`);
    return 2;
  }
  const command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.help);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`certprov ${command.name}: ${error.message}\n\n${command.help}`);
      return 2;
    }
    const failure = explainFailure(error);
    console.error(`certprov ${command.name}: ${failureText(failure)}`);
    return failure.exitCode;
  }
}

// Library warnings: one line each on stderr, noise dropped (src/observability/process-warnings.ts); `run` routes
// them into its JSON log instead.
routeProcessWarnings((warning, noise) => {
  if (!noise) console.error(`certprov: warning: ${warning.name}: ${warning.message}`);
});

// A client library may reject a promise nobody awaits (the Pub/Sub client does when credentials are missing): one
// line and exit 1, never Node's default stack dump. `run` installs its own JSON-logging handlers over these.
process.on('unhandledRejection', (error: unknown) => {
  if (process.listenerCount('unhandledRejection') > 1) return; // `run` logs it as a JSON line
  console.error(`certprov: ${failureText(explainFailure(error))}`);
  process.exit(1);
});

// Run only as the entry point: the command index is importable (tests) without running anything.
if (process.argv[1] !== undefined && import.meta.filename === (await import('node:fs')).realpathSync(process.argv[1])) {
  process.exitCode = await main(process.argv.slice(2));
}
