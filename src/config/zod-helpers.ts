import { z } from 'zod';
import { parseDuration } from './duration.ts';

/** A duration string with units (`30s`, `15m`, `365d`) parsed to milliseconds. */
export const durationMs = z
  .union([z.string(), z.number()])
  .transform((text, ctx) => {
    const ms = typeof text === 'string' ? parseDuration(text) : undefined;
    if (ms === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: `"${text}" is not a duration; write it with a unit, e.g. 30s, 15m, 2h, 365d`,
      });
      return z.NEVER;
    }
    return ms;
  })
  .describe('a duration with a unit, e.g. 30s, 15m, 2h, 365d');

/** A secret is never written in the config file: it names a file or an environment variable holding it. */
export const secretReference = z
  .object({
    /** Path of a file holding the secret (trailing newline ignored); relative to the config file. */
    file: z.string().min(1).optional(),
    /** Name of an environment variable holding the secret. */
    env: z.string().min(1).optional(),
  })
  .strict()
  .refine((ref) => (ref.file === undefined) !== (ref.env === undefined), {
    message: 'give exactly one of file or env',
  })
  .describe(
    '{ file: PATH } (a mounted Kubernetes Secret) or { env: VARIABLE }; the secret itself never goes into the configuration',
  );

export type SecretReference = z.infer<typeof secretReference>;
