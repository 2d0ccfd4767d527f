/**
 * Adapter replicas as real OS processes: `node src/main.ts run --config FILE`, exactly what the container runs,
 * with the emulators and the sandbox given through the environment and the configuration. Used by the replica,
 * crash and fault tests and by `npm run bench -- --faults`, so it imports nothing from vitest.
 *
 * Every spawned process is registered; {@link killAllAdapters} (call it in afterAll) SIGKILLs what is left, and a
 * process 'exit' hook does the same if the test runner itself goes away.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const MAIN = path.join(REPO_ROOT, 'src/main.ts');

export interface AdapterProcessOptions {
  /** Path of the configuration file (JSON is valid YAML). */
  readonly configFile: string;
  /** Environment added to the test's own (PUBSUB_EMULATOR_HOST, FIRESTORE_EMULATOR_HOST, …). */
  readonly env: Readonly<Record<string, string>>;
  /** Where stdout and stderr (JSON log lines) are appended. */
  readonly logFile: string;
  /** A label for messages ("replica-2"). */
  readonly name: string;
  /** Options for `node` itself, before the script (`--import` of a benchmark probe). Default none. */
  readonly nodeArgs?: readonly string[];
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

/** One adapter OS process. A restart is a new AdapterProcess (a new pid and a new replica id), like a new pod. */
export class AdapterProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Resolves with the exit code (or the signal name) when the process has ended. */
  readonly exited: Promise<number | NodeJS.Signals>;
  /** Set from the "adapter started" log line. */
  replicaId: string | undefined;
  /** The ops port (/metrics, /healthz), set from the "adapter started" log line. */
  httpPort: number | undefined;
  /** True once the "adapter started" line was seen (see {@link waitStarted}). */
  isStarted = false;
  /** Steps this process has logged finishing ("process → …", "process done: …"): it has been working on processes. */
  steps = 0;
  /** `Date.now()` of the first and the last such line (0: none yet). */
  firstStepAt = 0;
  lastStepAt = 0;
  private readonly log: WriteStream;
  private started: Promise<void> | undefined;
  private paused = false;

  private constructor(options: AdapterProcessOptions) {
    installExitHook();
    this.name = options.name;
    this.logFile = options.logFile;
    this.log = createWriteStream(options.logFile, { flags: 'a' });
    this.child = spawn(process.execPath, [...(options.nodeArgs ?? []), MAIN, 'run', '--config', options.configFile], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(this.child);
    this.child.stdout?.pipe(this.log, { end: false });
    let partial = '';
    this.child.stdout?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line.includes('"message":"process → ') || line.includes('"message":"process done: ')) {
          this.steps += 1;
          this.lastStepAt = Date.now();
          if (this.firstStepAt === 0) this.firstStepAt = this.lastStepAt;
        }
      }
    });
    this.child.stderr?.pipe(this.log, { end: false });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        live.delete(this.child);
        resolve(signal ?? code ?? -1);
      });
    });
    // Close our end of the log once the pipes have drained.
    void this.exited.then(() => setTimeout(() => this.log.end(), 50));
  }

  static spawn(options: AdapterProcessOptions): AdapterProcess {
    return new AdapterProcess(options);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves once the adapter logged "adapter started" (subscribed, scheduler running); rejects if it exits first. */
  waitStarted(timeoutMs = 60_000): Promise<void> {
    this.started ??= new Promise<void>((resolve, reject) => {
      let buffer = '';
      const deadline = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.name} (pid ${this.pid}) did not start within ${timeoutMs} ms; log: ${this.logFile}`));
      }, timeoutMs);
      const onData = (chunk: Buffer) => {
        buffer = (buffer + chunk.toString()).slice(-100_000);
        for (const line of buffer.split('\n')) {
          if (!line.includes('"adapter started"')) continue;
          try {
            const started = JSON.parse(line) as { replicaId?: string; httpPort?: number };
            this.replicaId = started.replicaId;
            this.httpPort = started.httpPort;
          } catch {
            // a partial line; the next chunk completes it
            continue;
          }
          this.isStarted = true;
          cleanup();
          resolve();
          return;
        }
      };
      const onExit = () => {
        cleanup();
        reject(new Error(`${this.name} (pid ${this.pid}) exited before it started; log: ${this.logFile}`));
      };
      const cleanup = () => {
        clearTimeout(deadline);
        this.child.stdout?.off('data', onData);
        this.child.off('exit', onExit);
      };
      this.child.stdout?.on('data', onData);
      this.child.once('exit', onExit);
    });
    return this.started;
  }

  /** SIGKILL: the replica dies at whatever instruction it is on. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM and wait for the drain; SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 15_000): Promise<number | NodeJS.Signals> {
    if (!this.running) return this.exited;
    if (this.paused) this.resume();
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGSTOP: the replica is frozen mid-instruction (a long GC pause, a descheduled VM). */
  pause(): void {
    if (!this.running) return;
    this.child.kill('SIGSTOP');
    this.paused = true;
  }

  /** SIGCONT. */
  resume(): void {
    if (!this.running) return;
    this.child.kill('SIGCONT');
    this.paused = false;
  }

  /** The JSON log lines written so far (lines that are not JSON are skipped). */
  async logLines(): Promise<Record<string, unknown>[]> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '');
    const lines: Record<string, unknown>[] = [];
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line cut by SIGKILL
      }
    }
    return lines;
  }
}

/** SIGKILLs every adapter process still alive (afterAll; also safe when none was started). */
export async function killAllAdapters(): Promise<void> {
  const children = [...live];
  for (const child of children) {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  }
  await Promise.all(
    children.map((child) =>
      child.exitCode !== null || child.signalCode !== null
        ? Promise.resolve()
        : new Promise<void>((r) => child.once('exit', () => r())),
    ),
  );
}

/**
 * The `scheduler` of a crash test: a short lease, so the killed adapter's lease on a process expires soon enough
 * for the next one to continue, and quick polls.
 */
export const CRASH_TEST_SCHEDULER = {
  lease: '6s',
  pollInterval: '200ms',
  retryInitial: '200ms',
  retryMax: '2s',
  signaturePollInitial: '50ms',
  signaturePollMax: '500ms',
} as const;

/** Writes an adapter configuration as JSON (a subset of YAML, which `run --config` reads). */
export async function writeAdapterConfig(file: string, config: Record<string, unknown>): Promise<string> {
  await writeFile(file, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  return file;
}
