/**
 * What `run` resolves outside the configuration file — secret files, secret environment variables, files a CA
 * backend opens (a local CA's directory, a CA certificate file), the sqlite store's file (src/store/sqlite-file.ts),
 * GOOGLE_APPLICATION_CREDENTIALS — checked at load, so `check-config` fails exactly where `run` would and `run` fails
 * before it opens anything. Secret values are read only to see that they are there; nothing read is kept or printed.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { CA_BACKENDS } from '../ca/registry.ts';
import { sqliteFileProblem } from '../store/sqlite-file.ts';
import { ConfigError, DeploymentFaultError } from '../errors.ts';
import type { Config } from './load.ts';
import { placeholderProblems } from './placeholders.ts';
import { readSecret } from './secrets.ts';
import type { SecretReference } from './zod-helpers.ts';

/** `{file}` or `{env}` alone: the shape of a validated {@link SecretReference}. */
function isSecretReference(value: unknown): value is SecretReference {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return (
    keys.length === 1 &&
    (keys[0] === 'file' || keys[0] === 'env') &&
    typeof (value as Record<string, unknown>)[keys[0]] === 'string'
  );
}

/** Every secret reference inside `value`, with its path below `at`. */
function* secretReferences(value: unknown, at: string): Generator<[string, SecretReference]> {
  if (isSecretReference(value)) {
    yield [at, value];
    return;
  }
  if (value === null || typeof value !== 'object') return;
  for (const [key, child] of Object.entries(value)) {
    yield* secretReferences(child, Array.isArray(value) ? `${at}[${key}]` : `${at}.${key}`);
  }
}

async function unreadable(file: string): Promise<string | undefined> {
  try {
    await access(file, constants.R_OK);
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? 'error';
  }
}

/** Problems, each with its configuration path and what to do; empty when `run` can resolve everything. */
export async function referenceProblems(config: Config): Promise<string[]> {
  const problems: string[] = [];
  const secretAt = async (where: string, ref: SecretReference) => {
    try {
      // The component only labels a runtime fault; here the message and hint are what matter.
      await readSecret(ref, config.baseDir, 'local-ca');
    } catch (error) {
      if (!(error instanceof DeploymentFaultError)) throw error;
      problems.push(`${where}: ${error.message}${error.hint === undefined ? '' : `; ${error.hint}`}`);
    }
  };
  for (const [where, ref] of secretReferences(config.log, 'log')) await secretAt(where, ref);
  for (const connection of config.caConnections.values()) {
    const at = `caConnections.${connection.name}`;
    for (const [where, ref] of secretReferences(connection.settings, at)) await secretAt(where, ref);
    const backend = CA_BACKENDS.get(connection.type);
    for (const required of backend?.requiredFiles?.(connection.settings) ?? []) {
      const file = path.resolve(config.baseDir, required.file);
      const code = await unreadable(file);
      if (code !== undefined) problems.push(`${at}.${required.field}: cannot read ${file} (${code}); ${required.hint}`);
    }
  }
  if (config.store.type === 'sqlite') {
    const problem = await sqliteFileProblem(config.store.path);
    if (problem !== undefined) problems.push(`store.path: ${problem}`);
  }
  const keyFile = process.env.GOOGLE_APPLICATION_CREDENTIALS;
  if (keyFile !== undefined && keyFile !== '') {
    const code = await unreadable(path.resolve(keyFile));
    if (code !== undefined) {
      problems.push(
        `environment GOOGLE_APPLICATION_CREDENTIALS: cannot read ${path.resolve(keyFile)} (${code}); mount the service account key there or unset the variable (Workload Identity needs none)`,
      );
    }
  }
  return problems;
}

/**
 * What `check-config` and `run` check beyond the schema, in one place so they cannot drift apart: placeholders left
 * from an example ({@link placeholderProblems}) and every reference `run` resolves. Throws a {@link ConfigError}
 * naming the configuration file.
 */
export async function assertRunnable(config: Config): Promise<void> {
  const problems = [...placeholderProblems(config), ...(await referenceProblems(config))];
  if (problems.length > 0) throw new ConfigError(problems, config.source);
}
