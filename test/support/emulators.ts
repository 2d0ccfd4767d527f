/**
 * Google's own emulators (Java), started on free loopback ports for a test run and stopped after. No mocking of
 * the Pub/Sub or Firestore clients (DESIGN.md §7). If an emulator is missing the run fails with a message saying
 * how to install it — it never skips silently.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';

export interface RunningEmulator {
  /** `127.0.0.1:PORT`, the value for PUBSUB_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST. */
  readonly host: string;
  readonly port: number;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

let sdkRoot: string | undefined;
function gcloudSdkRoot(): string {
  if (sdkRoot !== undefined) return sdkRoot;
  const fromEnv = process.env.CLOUDSDK_ROOT_DIR;
  if (fromEnv !== undefined && existsSync(fromEnv)) return (sdkRoot = fromEnv);
  try {
    sdkRoot = execFileSync('gcloud', ['info', '--format=value(installation.sdk_root)'], { encoding: 'utf8' }).trim();
  } catch {
    sdkRoot = '/usr/lib/google-cloud-sdk';
  }
  return sdkRoot;
}

function missing(what: string, file: string, debPackage: string): Error {
  return new Error(
    `${what} not found at ${file}. Install it with \`sudo apt-get install ${debPackage}\` ` +
      '(Google Cloud CLI apt repository) and a Java 17+ runtime, or run .ci/run which installs it.',
  );
}

async function waitReady(url: string, child: ChildProcess, timeoutMs: number, output: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`emulator exited with ${child.exitCode}:\n${output()}`);
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`emulator at ${url} not ready after ${timeoutMs} ms:\n${output()}`);
}

async function startJava(command: string, args: string[], port: number, what: string): Promise<RunningEmulator> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: false });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  await waitReady(`http://127.0.0.1:${port}/`, child, 60_000, () => `${what}: ${output}`);
  return {
    host: `127.0.0.1:${port}`,
    port,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
        child.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

export async function startPubSubEmulator(port?: number): Promise<RunningEmulator> {
  const bin = path.join(gcloudSdkRoot(), 'platform/pubsub-emulator/bin/cloud-pubsub-emulator');
  if (!existsSync(bin)) throw missing('Pub/Sub emulator', bin, 'google-cloud-cli-pubsub-emulator');
  const p = port ?? (await freePort());
  return startJava(bin, ['--host=127.0.0.1', `--port=${p}`], p, 'pubsub emulator');
}

/** `extraArgs`: further emulator flags, e.g. `--seed_from_export=FILE` to start with the data of an export. */
export async function startFirestoreEmulator(
  port?: number,
  projectId = 'certprov-test',
  extraArgs: readonly string[] = [],
): Promise<RunningEmulator> {
  const jar = path.join(gcloudSdkRoot(), 'platform/cloud-firestore-emulator/cloud-firestore-emulator.jar');
  if (!existsSync(jar)) throw missing('Firestore emulator', jar, 'google-cloud-cli-firestore-emulator');
  const p = port ?? (await freePort());
  return startJava(
    'java',
    [
      '-cp',
      jar,
      'com.google.cloud.datastore.emulator.firestore.CloudFirestore',
      '--host=127.0.0.1',
      `--port=${p}`,
      `--project_id=${projectId}`,
      ...extraArgs,
    ],
    p,
    'firestore emulator',
  );
}
