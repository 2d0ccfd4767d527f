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
    /** How often a replica looks whether the CRL is due (one store read). Default 1m. */
    checkInterval: durationMs.prefault(CRL_DEFAULTS.checkInterval),
  })
  .strict();

export type CrlSettings = z.infer<typeof crlSettingsSchema>;

/** What the connection's leaves carry, from its `crl` settings (nothing without them). */
export function revocationInfoOf(crl: CrlSettings | undefined): { crlUrl?: string; caIssuersUrl?: string } {
  if (crl === undefined) return {};
  return { crlUrl: crl.url, ...(crl.caIssuersUrl === undefined ? {} : { caIssuersUrl: crl.caIssuersUrl }) };
}
