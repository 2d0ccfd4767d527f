/**
 * Where `certprov demo` writes its certificates, decided BEFORE any work: a directory the demo created, or one
 * holding only what an earlier demo wrote (listed in its manifest) — never someone else's files. Files the demo
 * wrote are replaced; nothing else is touched. When the default directory cannot be written (the container image's
 * read-only working directory) the demo writes to a new temporary directory and says so.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeDirectorySync } from '../make-directory.ts';
import { UsageError } from './command.ts';

/** Lists, one per line, the files the demo wrote into the directory. */
export const DEMO_MANIFEST = '.certprov-demo-files';

export interface DemoOutput {
  readonly directory: string;
  /** Why the directory is not the one asked for (the fallback), for the operator. */
  readonly note: string | undefined;
  /** Writes one file and records it in the manifest. */
  write(name: string, content: string): Promise<void>;
}

/** A leaf's file name: never starting with `-` (a process id may), so no shell tool reads it as an option. */
export function leafFileName(processId: string): string {
  return `process-${processId.replace(/[^A-Za-z0-9._-]/g, '_')}.pem`;
}

async function manifestOf(directory: string): Promise<string[] | undefined> {
  try {
    return (await readFile(path.join(directory, DEMO_MANIFEST), 'utf8')).split('\n').filter((l) => l !== '');
  } catch {
    return undefined;
  }
}

async function claim(directory: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    makeDirectorySync(directory);
    entries = [];
  }
  const manifest = await manifestOf(directory);
  if (manifest === undefined && entries.length > 0) {
    throw new UsageError(
      `${directory} is not empty and was not written by the demo: give a new or empty directory with --out`,
    );
  }
  // Only what an earlier demo wrote, by name; anything added since stays.
  for (const name of manifest ?? []) {
    if (path.basename(name) === name) await rm(path.join(directory, name), { force: true });
  }
  // Also the writability probe: fails here, before any work, on a read-only file system.
  await writeFile(path.join(directory, DEMO_MANIFEST), '');
}

function isNotWritable(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EPERM' || code === 'EROFS';
}

/**
 * Prepares the output directory. `explicit`: the operator named it with --out, so an unwritable one is an error;
 * the default falls back to a temporary directory.
 */
export async function prepareDemoOutput(requested: string, explicit: boolean): Promise<DemoOutput> {
  let directory = path.resolve(requested);
  let note: string | undefined;
  try {
    await claim(directory);
  } catch (error) {
    if (explicit || !isNotWritable(error)) {
      if (isNotWritable(error))
        throw new UsageError(`cannot write to ${directory}: give a writable directory with --out`);
      throw error;
    }
    directory = await mkdtemp(path.join(tmpdir(), 'certprov-demo-output-'));
    note = `${path.resolve(requested)} is not writable (read-only working directory?): writing to ${directory} instead`;
    await claim(directory);
  }
  const written: string[] = [];
  return {
    directory,
    note,
    async write(name, content) {
      await writeFile(path.join(directory, name), content);
      written.push(name);
      await writeFile(path.join(directory, DEMO_MANIFEST), written.join('\n') + '\n');
    },
  };
}
