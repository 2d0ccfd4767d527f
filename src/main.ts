#!/usr/bin/env node
/**
 * `certprov` — the command line. The container runs `certprov run`; `npm start` runs `certprov demo`.
 * Exit codes: 0 success, 1 runtime failure, 2 bad usage or invalid configuration.
 */
import { UsageError, type Command } from './cli/command.ts';
import { explainFailure, failureText } from './cli/failure.ts';
import { routeProcessWarnings } from './observability/process-warnings.ts';
import { runCommand } from './cli/run.ts';
import { demoCommand } from './cli/demo.ts';
import { checkConfigCommand } from './cli/check-config.ts';
import { localCaCommand } from './cli/local-ca.ts';
import { kvCaCommand } from './cli/kv-ca.ts';
import { kmsCaCommand } from './cli/kms-ca.ts';
import { setupPubSubCommand } from './cli/setup-pubsub.ts';
import { deadLetterCommand } from './cli/dead-letter.ts';
import { VERSION } from './version.ts';

const COMMANDS: readonly Command[] = [
  runCommand,
  demoCommand,
  checkConfigCommand,
  localCaCommand,
  kvCaCommand,
  kmsCaCommand,
  setupPubSubCommand,
  deadLetterCommand,
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
    console.log(topic?.help ?? overview());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    console.log(VERSION);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    console.error(`certprov: unknown command "${name}"\n\n${overview()}`);
    return 2;
  }
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

process.exitCode = await main(process.argv.slice(2));
