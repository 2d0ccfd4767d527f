/**
 * A Firestore emulator that can be restarted without losing data, for the "Firestore restarts" fault. Real
 * Firestore never forgets an acknowledged write, so a restart that wiped the emulator's memory would test a failure
 * that cannot happen. The restart therefore exports the data over the emulator's HTTP API, stops the JVM, and starts
 * a new one on the same port seeded from the export (`--seed_from_export`). Callers stop traffic first (a frozen TCP
 * proxy in front), so nothing is written between the export and the stop. Imports nothing from vitest.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFirestoreEmulator, type RunningEmulator } from './emulators.ts';

export class RestartableFirestoreEmulator {
  readonly projectId: string;
  private current: RunningEmulator;
  private readonly exportRoot: string;

  private constructor(projectId: string, emulator: RunningEmulator, exportRoot: string) {
    this.projectId = projectId;
    this.current = emulator;
    this.exportRoot = exportRoot;
  }

  static async start(projectId = 'certprov-test'): Promise<RestartableFirestoreEmulator> {
    const exportRoot = await mkdtemp(path.join(tmpdir(), 'certprov-firestore-export-'));
    try {
      return new RestartableFirestoreEmulator(
        projectId,
        await startFirestoreEmulator(undefined, projectId),
        exportRoot,
      );
    } catch (error) {
      await rm(exportRoot, { recursive: true, force: true });
      throw error;
    }
  }

  /** `127.0.0.1:PORT`; stays the same across restarts. */
  get host(): string {
    return this.current.host;
  }

  /** Exports every document, stops the emulator, starts a new one on the same port with the exported data. */
  async restart(): Promise<void> {
    const directory = await mkdtemp(path.join(this.exportRoot, 'export-'));
    const response = await fetch(`http://${this.current.host}/emulator/v1/projects/${this.projectId}:export`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ database: `projects/${this.projectId}/databases/(default)`, export_directory: directory }),
    });
    if (!response.ok) throw new Error(`Firestore emulator export failed: ${response.status} ${await response.text()}`);
    const [exportName] = await readdir(directory);
    if (exportName === undefined) throw new Error(`Firestore emulator export wrote nothing to ${directory}`);
    const metadata = path.join(directory, exportName, `${exportName}.overall_export_metadata`);
    const port = this.current.port;
    await this.current.stop();
    this.current = await startFirestoreEmulator(port, this.projectId, [`--seed_from_export=${metadata}`]);
  }

  async stop(): Promise<void> {
    await this.current.stop();
    await rm(this.exportRoot, { recursive: true, force: true });
  }
}
