/**
 * `type: google-cas` — Google Cloud Certificate Authority Service: a managed private CA (HSM-backed keys, its own
 * CRLs, certificate templates). Every field is documented with its default here and in
 * config/google-cas.example.yaml.
 */
import { z } from 'zod';
import { durationMs } from '../../config/zod-helpers.ts';
import { googleEndpointSchema } from '../google-cloud.ts';

/** Defaults as typed constants (STYLE.md); documented in config/google-cas.example.yaml. */
export const CAS_DEFAULTS = {
  /**
   * CAS's own CreateCertificate quota is per CA pool and tier (Enterprise pools allow fewer requests per second than
   * DevOps pools); 5 per second stays inside both unless the project's quota was lowered.
   */
  requestsPerSecond: 5,
  requestsPerMinute: 250,
  maxWait: '10s',
  maxValidityDays: 825,
  requestTimeout: '60s',
} as const;

export const CA_POOL_PATTERN = /^projects\/[^/]+\/locations\/[^/]+\/caPools\/[A-Za-z0-9_-]{1,63}$/;
export const CERTIFICATE_TEMPLATE_PATTERN =
  /^projects\/[^/]+\/locations\/[^/]+\/certificateTemplates\/[A-Za-z0-9_-]{1,63}$/;

export const casCaConfigSchema = z
  .object({
    type: z.literal('google-cas'),
    /** The CA pool that issues, full resource name `projects/P/locations/L/caPools/POOL`. Required. */
    caPool: z.string().regex(CA_POOL_PATTERN, 'a CA pool resource name: projects/P/locations/L/caPools/POOL'),
    /**
     * The id of one CA in the pool to issue from (`issuingCertificateAuthorityId`). Default: CAS picks an enabled
     * CA of the pool (the way to rotate CAs without touching the adapter).
     */
    issuingCertificateAuthorityId: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,63}$/, 'a CA id (letters, digits, _ and -)')
      .optional(),
    /**
     * A certificate template (`projects/P/locations/L/certificateTemplates/T`) applied to every request. Its
     * predefined values and identity constraints apply on top of the pool's issuance policy. Default: none.
     */
    certificateTemplate: z
      .string()
      .regex(CERTIFICATE_TEMPLATE_PATTERN, 'a template resource name: projects/P/locations/L/certificateTemplates/T')
      .optional(),
    /**
     * Longest lifetime requested, in days: the profile's validity is capped at it. Set it to the pool's
     * `maximumLifetime` (CAS would shorten longer requests itself; check-config --probe compares the two).
     * Default 825.
     */
    maxValidityDays: z.number().int().positive().default(CAS_DEFAULTS.maxValidityDays),
    /**
     * Client-side budget of CAS requests for this pool, shared by all replicas through the store (like the DigiCert
     * budget): requests per second and per minute, and how long a request may wait for room before the process is
     * rescheduled instead.
     */
    rateLimit: z
      .object({
        requestsPerSecond: z.number().int().positive().default(CAS_DEFAULTS.requestsPerSecond),
        requestsPerMinute: z.number().int().positive().default(CAS_DEFAULTS.requestsPerMinute),
        maxWait: durationMs.prefault(CAS_DEFAULTS.maxWait),
      })
      .strict()
      .prefault({}),
    /** Deadline of one CAS call. Default 60s. */
    requestTimeout: durationMs.prefault(CAS_DEFAULTS.requestTimeout),
    /**
     * CAS endpoint origin. Default Google's (`https://privateca.googleapis.com`); set it for Private Service
     * Connect. Plain `http://` only on a loopback address (tests).
     */
    endpoint: googleEndpointSchema.optional(),
  })
  .strict();

export type CasCaConfig = z.infer<typeof casCaConfigSchema>;
