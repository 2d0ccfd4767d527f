/**
 * The sqlite store's file as `check-config` and `run` see it before anything opens it: can the adapter create or open
 * a store there, and is a file already there one it can use? Read only — nothing is created (no directory, no file, no
 * `-wal`), and no SQLite connection is opened: the 100-byte database header says whether a file is a SQLite database
 * and which layout version (`PRAGMA user_version`, bytes 60–63) it has. Without `node:sqlite`, so that `check-config`
 * stays cheap to load.
 *
 * The header is what the last checkpoint wrote: a layout change still in the `-wal` file is not seen. A layout only
 * moves forward, so this can miss a file a newer adapter has just upgraded (the store itself refuses it at open) but
 * never refuses a usable one.
 */
import { constants, type Stats } from 'node:fs';
import { access, open, stat, statfs } from 'node:fs/promises';
import path from 'node:path';

/**
 * Bumped when the table layout changes: a file of an earlier version is moved to this one by the adapter that claims
 * it (see src/store/sqlite.ts, upgradeLayout), a file of a version this adapter does not know is refused, never
 * rewritten.
 */
export const SQLITE_LAYOUT_VERSION = 2;

/** Layout versions this adapter reads and writes: a version 1 file has the same tables and columns, stored otherwise. */
export const WORKABLE_LAYOUT_VERSIONS: readonly number[] = [1, SQLITE_LAYOUT_VERSION];

/**
 * Why a file of layout `version` is refused, and what to do: one wording for `check-config` (from the header) and the
 * store (from `PRAGMA user_version` at open).
 */
export function unknownLayout(file: string, version: number): { readonly problem: string; readonly hint: string } {
  return {
    problem: `the sqlite store ${file} has layout version ${version}; this adapter reads ${WORKABLE_LAYOUT_VERSIONS.join(' and ')}`,
    hint: 'an adapter version with another layout wrote this file: run that version, or point store.path to a new file',
  };
}

/** The first 16 bytes of every SQLite 3 database file. */
const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');
const HEADER_BYTES = 100;
const USER_VERSION_OFFSET = 60;

/**
 * File systems where a database file cannot live although `access` may say "writable" (to root): the kernel's views of
 * processes and devices. A directory missing there cannot be made either (src/make-directory.ts).
 */
const PSEUDO_FILE_SYSTEMS = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
]);

const HINT = 'point store.path to a file on a writable, local volume';

function code(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? 'error';
}

async function statOrUndefined(file: string): Promise<Stats | undefined> {
  try {
    return await stat(file);
  } catch (error) {
    if (code(error) === 'ENOENT' || code(error) === 'ENOTDIR') return undefined;
    throw error;
  }
}

/** Why the store could not keep its file (and `-wal`, `-shm`) in `directory`, which exists; undefined if it can. */
async function directoryProblem(directory: string, file: string): Promise<string | undefined> {
  try {
    await access(directory, constants.W_OK | constants.X_OK);
  } catch (error) {
    return `cannot create ${file}: ${directory} is not writable (${code(error)}); ${HINT}`;
  }
  const system = PSEUDO_FILE_SYSTEMS.get(Number((await statfs(directory)).type));
  if (system !== undefined) return `cannot create ${file}: ${directory} is on the ${system} file system; ${HINT}`;
  return undefined;
}

/** Why the file at `file` is not a store this adapter can use; undefined if it is one or is empty. */
async function existingFileProblem(file: string, stats: Stats): Promise<string | undefined> {
  if (!stats.isFile()) return `${file} is not a regular file; ${HINT}`;
  try {
    await access(file, constants.R_OK | constants.W_OK);
  } catch (error) {
    return `cannot open ${file} for reading and writing (${code(error)}); ${HINT}`;
  }
  // SQLite takes an empty file for a new database.
  if (stats.size === 0) return undefined;
  const header = Buffer.alloc(HEADER_BYTES);
  const handle = await open(file, 'r');
  let read: number;
  try {
    ({ bytesRead: read } = await handle.read(header, 0, HEADER_BYTES, 0));
  } finally {
    await handle.close();
  }
  if (read < HEADER_BYTES || !header.subarray(0, SQLITE_MAGIC.length).equals(SQLITE_MAGIC)) {
    return `${file} is not a SQLite database; point store.path to the adapter's store file or to a new file`;
  }
  const version = header.readUInt32BE(USER_VERSION_OFFSET);
  if (version !== 0 && !WORKABLE_LAYOUT_VERSIONS.includes(version)) {
    const { problem, hint } = unknownLayout(file, version);
    return `${problem}; ${hint}`;
  }
  return undefined;
}

/**
 * What would stop the sqlite store from opening `file` (absolute), as one sentence with what to do; undefined when it
 * would open. A missing directory is fine when the store can make it (its nearest existing ancestor is a writable
 * directory), as the store does at open.
 */
export async function sqliteFileProblem(file: string): Promise<string | undefined> {
  try {
    const stats = await statOrUndefined(file);
    if (stats !== undefined) {
      return (await existingFileProblem(file, stats)) ?? (await directoryProblem(path.dirname(file), file));
    }
    // Walk up to the nearest existing ancestor: the store makes the missing levels below it.
    let ancestor = path.dirname(file);
    let ancestorStats = await statOrUndefined(ancestor);
    while (ancestorStats === undefined && path.dirname(ancestor) !== ancestor) {
      ancestor = path.dirname(ancestor);
      ancestorStats = await statOrUndefined(ancestor);
    }
    if (ancestorStats === undefined) return `cannot create ${file}: no existing directory above it; ${HINT}`;
    if (!ancestorStats.isDirectory()) return `cannot create ${file}: ${ancestor} is not a directory (ENOTDIR); ${HINT}`;
    return await directoryProblem(ancestor, file);
  } catch (error) {
    return `cannot check ${file} (${code(error)}); ${HINT}`;
  }
}
