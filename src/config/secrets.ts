/**
 * Secrets come from files (Kubernetes Secret volumes) or environment variables, never from the configuration
 * file (DESIGN.md §2). The value is returned to the caller only; messages name the source, never the value.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DeploymentFaultError, type FaultComponent } from '../errors.ts';
import type { SecretReference } from './zod-helpers.ts';

export async function readSecret(ref: SecretReference, baseDir: string, component: FaultComponent): Promise<string> {
  if (ref.env !== undefined) {
    const value = process.env[ref.env]?.trim();
    if (value === undefined || value === '') {
      throw new DeploymentFaultError(`environment variable ${ref.env} is not set or empty`, {
        component,
        hint: `set ${ref.env} (from a Kubernetes Secret) before starting the adapter`,
      });
    }
    return value;
  }
  const file = path.resolve(baseDir, ref.file ?? '');
  let value: string;
  try {
    value = (await readFile(file, 'utf8')).trim();
  } catch (error) {
    throw new DeploymentFaultError(
      `cannot read secret file ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        component,
        hint: 'mount the Secret at that path or fix the path in the configuration',
      },
    );
  }
  if (value === '') throw new DeploymentFaultError(`secret file ${file} is empty`, { component });
  return value;
}
