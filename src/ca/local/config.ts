import { z } from 'zod';
import { crlSettingsSchema } from '../crl-settings.ts';
import { durationMs } from '../../config/zod-helpers.ts';

/** `type: local` — a file-backed CA for the demo, trials and tests (`certprov local-ca init` creates one). */
export const localCaConfigSchema = z
  .object({
    type: z.literal('local'),
    /** Directory holding `ca.key.pem` (PKCS#8, mode 0600) and `ca.cert.pem`; relative to the config file. */
    directory: z.string().min(1),
    /** How far `notBefore` is set back for device clock skew. Default 5m. */
    backdate: durationMs.prefault('5m'),
    /** Longest validity this CA grants, in days; profiles asking for more are rejected at load. Default 825. */
    maxValidityDays: z.number().int().positive().default(825),
    /** Publish a CRL for this connection, and point every leaf at it (docs/lifecycle.md). Default: no CRL. */
    crl: crlSettingsSchema.optional(),
  })
  .strict();

export type LocalCaConfig = z.infer<typeof localCaConfigSchema>;
