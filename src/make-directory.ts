/**
 * Creates a directory and its missing parents, one level at a time.
 *
 * Node's `mkdir(…, { recursive: true })` never returns for a path under a pseudo file system such as /proc: the kernel
 * answers ENOENT for a directory that cannot be made there, and Node takes that as a missing parent, makes the parent
 * (which exists) and tries again, forever. A path from the configuration or the command line must fail with an error
 * instead, so the levels are made here: walk up to the nearest existing ancestor, then `mkdir` each missing level
 * without `recursive`, which reports what the file system says (ENOENT, EACCES, ENOTDIR, EROFS).
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

export function makeDirectorySync(directory: string, mode?: number): void {
  const missing: string[] = [];
  for (let current = path.resolve(directory); !existsSync(current);) {
    missing.push(current);
    const parent = path.dirname(current);
    if (parent === current) break;
    current = parent;
  }
  for (const level of missing.reverse()) {
    try {
      mkdirSync(level, mode === undefined ? {} : { mode });
    } catch (error) {
      // Made meanwhile by another process (several adapters may share a volume): fine if it is a directory.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      mkdirSync(level, { recursive: true });
    }
  }
}
