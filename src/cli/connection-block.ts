/**
 * The CA-key commands (`kv-ca`, `kms-ca`) act on one CA connection of the configuration file, read exactly as the
 * adapter reads it, so they reach the service with the same endpoint and credentials. Only that connection's block
 * is validated: the commands run before the rest of the configuration (the CA certificate, say) can be complete.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import { parseConfigText } from '../config/load.ts';
import { ConfigError } from '../errors.ts';
import { UsageError } from './command.ts';

export interface ConnectionBlock<T> {
  readonly name: string;
  readonly config: T;
  /** The configuration file's directory (relative paths in the block are resolved against it). */
  readonly baseDir: string;
}

/**
 * The block of the connection named `connectionName` — or of the only connection of `type` — validated by
 * `schema`.
 * @throws UsageError when the file has none or several and no name was given; ConfigError for a bad block.
 */
export async function readConnectionBlock<T>(
  file: string,
  type: string,
  connectionName: string | undefined,
  schema: z.ZodType<T>,
): Promise<ConnectionBlock<T>> {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (error) {
    throw new ConfigError([`cannot read ${absolute}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`], file);
  }
  const raw = parseConfigText(text, file) as { caConnections?: Record<string, { type?: unknown }> } | null;
  const connections = Object.entries(raw?.caConnections ?? {}).filter(([, c]) => c?.type === type);
  const name = connectionName ?? (connections.length === 1 ? connections[0]![0] : undefined);
  if (name === undefined) {
    throw new UsageError(
      connections.length === 0
        ? `${file} has no caConnections entry of type ${type}`
        : `${file} has several ${type} connections (${connections.map(([n]) => n).join(', ')}): give --connection NAME`,
    );
  }
  const block = connections.find(([n]) => n === name)?.[1];
  if (block === undefined) throw new UsageError(`${file} has no ${type} CA connection named "${name}"`);
  const parsed = schema.safeParse(block);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map(
        (i) => `caConnections.${name}${i.path.map((p) => `.${String(p)}`).join('')}: ${i.message}`,
      ),
      file,
    );
  }
  return { name, config: parsed.data, baseDir: path.dirname(absolute) };
}
