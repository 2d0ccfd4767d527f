/**
 * The `crl` block of a self-run CA connection (local, azure-key-vault, google-kms): where relying parties fetch the
 * connection's CRL, and how long each CRL is valid. Without it the leaves carry no revocation information and no CRL
 * is signed (DESIGN.md §9). RADIUS servers (Microsoft NPS by default) reject EAP-TLS certificates without it.
 */
import { z } from 'zod';
import { durationMs } from '../config/zod-helpers.ts';

export const CRL_DEFAULTS = {
  validity: '7d',
  checkInterval: '1m',
} as const;

const httpUrl = z
  .url({ protocol: /^https?$/ })
  .describe('an http:// or https:// URL (relying parties fetch CRLs over plain http as a rule)');

/**
 * A Cloud Storage bucket name as GCS accepts it (cloud.google.com/storage/docs/buckets#naming): lowercase letters,
 * digits, `-`, `_` and `.`; starting and ending with a letter or digit; 3–63 characters (up to 222 with dots, each
 * dot-separated part at most 63); not an IP address; not starting with `goog` nor containing `google`.
 */
const bucketName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._-]*[a-z0-9]$/,
    'lowercase letters, digits, "-", "_" and ".", starting and ending with a letter or digit',
  )
  .refine(
    (name) => name.length <= (name.includes('.') ? 222 : 63) && name.length >= 3,
    'a bucket name has 3 to 63 characters (222 with dots)',
  )
  .refine(
    (name) => name.split('.').every((part) => part.length > 0 && part.length <= 63),
    'each dot-separated part has 1 to 63 characters',
  )
  .refine((name) => !/^\d+\.\d+\.\d+\.\d+$/.test(name), 'a bucket name cannot be an IP address')
  .refine(
    (name) => !name.startsWith('goog') && !name.includes('google'),
    'a bucket name cannot start with "goog" or contain "google"',
  )
  .describe('a Cloud Storage bucket name (without gs://)');

/** A Cloud Storage object name: 1–1024 bytes of UTF-8, no CR or LF, not `.` or `..`. */
const objectName = z
  .string()
  .min(1)
  .refine((name) => Buffer.byteLength(name, 'utf8') <= 1024, 'an object name has at most 1024 bytes')
  .refine(
    (name) => !/[\r\n]/.test(name) && name !== '.' && name !== '..',
    'an object name has no CR/LF and is not "." or ".."',
  )
  .describe('a Cloud Storage object name');

export const crlSettingsSchema = z
  .object({
    /**
     * The URL every leaf carries in cRLDistributionPoints. The adapter serves the CRL at `/crl/<connection>.crl` on
     * its HTTP port; expose that path (deploy/components/crl) or point this at the Cloud Storage copy. Required.
     */
    url: httpUrl,
    /** The URL every leaf carries as authorityInfoAccess caIssuers (where the CA certificate is). Default none. */
    caIssuersUrl: httpUrl.optional(),
    /**
     * nextUpdate − thisUpdate of each CRL. A new CRL is signed after each revocation and once half of this has
     * passed, so relying parties never hold an expired one. Default 7d.
     */
    validity: durationMs.prefault(CRL_DEFAULTS.validity),
    /**
     * How often a replica looks whether the CRL is due (the stored CRL and the revocation count: two store reads), and
     * so how late at most a revocation whose own CRL could not be signed reaches one. Default 1m.
     */
    checkInterval: durationMs.prefault(CRL_DEFAULTS.checkInterval),
    /**
     * A Cloud Storage bucket each new CRL is also uploaded to (by the replica that signed it, with Application
     * Default Credentials; the service account needs roles/storage.objectCreator or objectUser on the bucket).
     * Default none: the CRL is only served by the replicas.
     */
    bucket: bucketName.optional(),
    /** The object name in `bucket`. Default `<connection>.crl`. */
    object: objectName.optional(),
  })
  .strict()
  .refine((crl) => crl.object === undefined || crl.bucket !== undefined, {
    message: '`object` names the CRL in `bucket`: set `bucket` too',
    path: ['object'],
  });

export type CrlSettings = z.infer<typeof crlSettingsSchema>;

/** What the connection's leaves carry, from its `crl` settings (nothing without them). */
export function revocationInfoOf(crl: CrlSettings | undefined): { crlUrl?: string; caIssuersUrl?: string } {
  if (crl === undefined) return {};
  return { crlUrl: crl.url, ...(crl.caIssuersUrl === undefined ? {} : { caIssuersUrl: crl.caIssuersUrl }) };
}
