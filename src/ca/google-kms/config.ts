/**
 * `type: google-kms` — a self-run issuing CA whose private key lives in Cloud KMS (software or HSM protection
 * level). Every field is documented with its default here and in config/google-kms.example.yaml.
 *
 * The key version is pinned, never "primary": a rotation (new key version, `certprov kms-ca csr`, the parent CA
 * signs, new `caCertificateFile`) is rolled out through configuration, and running adapters keep signing with the
 * version they were given.
 */
import { z } from 'zod';
import { crlSettingsSchema } from '../crl-settings.ts';
import { durationMs } from '../../config/zod-helpers.ts';
import { googleEndpointSchema } from '../google-cloud.ts';

/** Defaults as typed constants (STYLE.md); documented in config/google-kms.example.yaml. */
export const KMS_DEFAULTS = {
  backdate: '5m',
  maxValidityDays: 825,
  /** Per-call deadline of a KMS request (gax `timeout`). */
  requestTimeout: '30s',
} as const;

/** `projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N`. */
export const KMS_KEY_VERSION_PATTERN =
  /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[A-Za-z0-9_-]{1,63}\/cryptoKeys\/[A-Za-z0-9_-]{1,63}\/cryptoKeyVersions\/[1-9][0-9]*$/;

export const kmsCaConfigSchema = z
  .object({
    type: z.literal('google-kms'),
    /**
     * The pinned CryptoKeyVersion that signs, full resource name
     * (`projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N`). Its purpose must be
     * ASYMMETRIC_SIGN with an EC (P-256, P-384) or RSA (PKCS#1 v1.5 or PSS) algorithm. Required.
     */
    keyVersion: z
      .string()
      .regex(
        KMS_KEY_VERSION_PATTERN,
        'a CryptoKeyVersion resource name: projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N',
      ),
    /**
     * The CA certificate the parent CA issued for this key version (PEM; relative to the config file). Checked at
     * start to hold exactly the key version's public key. Required.
     */
    caCertificateFile: z.string().min(1),
    /** The CA certificate's parents (PEM, the parent first), returned with every leaf for audit. Optional. */
    chainFile: z.string().min(1).optional(),
    /** How far `notBefore` is set back for device clock skew. Default 5m. */
    backdate: durationMs.prefault(KMS_DEFAULTS.backdate),
    /** Longest validity this CA grants, in days; profiles asking for more are rejected at load. Default 825. */
    maxValidityDays: z.number().int().positive().default(KMS_DEFAULTS.maxValidityDays),
    /** Publish a CRL for this connection, and point every leaf at it (docs/lifecycle.md). Default: no CRL. */
    crl: crlSettingsSchema.optional(),
    /** Deadline of one KMS call. Default 30s. */
    requestTimeout: durationMs.prefault(KMS_DEFAULTS.requestTimeout),
    /**
     * Cloud KMS endpoint origin. Default Google's (`https://cloudkms.googleapis.com`); set it for Private Service
     * Connect or a regional endpoint. Plain `http://` only on a loopback address (tests).
     */
    endpoint: googleEndpointSchema.optional(),
  })
  .strict();

export type KmsCaConfig = z.infer<typeof kmsCaConfigSchema>;
