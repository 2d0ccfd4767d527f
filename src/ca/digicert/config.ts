/**
 * `type: digicert` — a DigiCert CertCentral connection (../shared/reference/digicert-certcentral.md). Every field
 * is documented with its default in config/digicert.example.yaml.
 *
 * The API key is never written here: `apiKey` names a file (a Kubernetes Secret volume) or an environment variable
 * (DESIGN.md §2), read by src/config/secrets.ts and never logged.
 */
import { z } from 'zod';
import { durationMs, secretReference } from '../../config/zod-helpers.ts';
import { CLEAR_TEXT_PROBLEM, sendsCredentialsInClear } from '../../http/url-safety.ts';
import { DIGICERT_PRODUCTS, DIGICERT_PRODUCT_IDS, VALIDITY_FIELDS, type ValidityField } from './products.ts';

/** CertCentral US; the EU platform is `https://certcentral.digicert.eu/services/v2`. */
export const DIGICERT_US_BASE_URL = 'https://www.digicert.com/services/v2';

/** Placeholders `commentsTemplate` may use. None of them is personal data (the comment is visible in CertCentral). */
export const COMMENT_PLACEHOLDERS = ['processId', 'correlationId', 'profile', 'caConnection'] as const;

/** status-changes accepts at most 7 days (`seconds` ≤ 604,800; reference notes). */
export const STATUS_CHANGES_MAX_WINDOW_MS = 604_800_000;

export const DIGICERT_DEFAULTS = {
  baseUrl: DIGICERT_US_BASE_URL,
  signatureHash: 'sha256',
  skipApproval: true,
  paymentMethod: 'balance',
  commentsTemplate: 'certprov: Chrome certificate provisioning process {{processId}} (reference {{correlationId}})',
  requestTimeout: '30s',
  statusPollInterval: '1m',
  statusPollInitialWindow: '24h',
  orderFallbackInterval: '6h',
  pendingRecheckInterval: '10m',
  reconcileLookback: '7d',
  rateLimit: {
    /** DigiCert's documented per-key limit today (Services API "Rate limits" page): 100 per 5 s, 1,000 per 3 min. */
    accountLimit: { requestsPer5Seconds: 100, requestsPer3Minutes: 1000 },
    /** The adapter's share of the account limit when none is configured: room for other tools using the key. */
    share: 0.9,
    pollingShare: 0.2,
    maxWait: '30s',
    maxConcurrent: 8,
  },
} as const;

/** Any `{{…}}`, so that an unknown one (e.g. `{{user.userPrimaryEmail}}`: personal data) is reported, not kept. */
const PLACEHOLDER = /\{\{\s*([^}]*?)\s*\}\}/g;

/**
 * DigiCert's limit for one API key. The defaults are the figures DigiCert documents today (100 requests per 5 s and
 * 1,000 per 3 minutes, rolling windows; older pages said 5 minutes). An account manager can negotiate more: set the
 * figures DigiCert confirmed, and the adapter's budget may grow with them.
 */
const accountLimitSchema = z
  .object({
    /** Requests per 5 seconds DigiCert allows this API key. Default 100. */
    requestsPer5Seconds: z.number().int().min(1).default(DIGICERT_DEFAULTS.rateLimit.accountLimit.requestsPer5Seconds),
    /** Requests per 3 minutes DigiCert allows this API key. Default 1,000. */
    requestsPer3Minutes: z.number().int().min(1).default(DIGICERT_DEFAULTS.rateLimit.accountLimit.requestsPer3Minutes),
  })
  .strict()
  .prefault({});

const rateLimitSchema = z
  .object({
    accountLimit: accountLimitSchema,
    /**
     * Requests per 5 seconds this adapter uses (all replicas together); at most `accountLimit.requestsPer5Seconds`.
     * Default 90 % of it (90), leaving room for other tools using the key.
     */
    requestsPer5Seconds: z.number().int().min(1).optional(),
    /**
     * Requests per 3 minutes this adapter uses (all replicas together); at most `accountLimit.requestsPer3Minutes`.
     * Default 90 % of it (900).
     */
    requestsPer3Minutes: z.number().int().min(1).optional(),
    /** Renamed: DigiCert's long window is 3 minutes today. Accepted only to say so. */
    requestsPer5Minutes: z.unknown().optional(),
    /**
     * Largest share of both budgets pending-order polling may use; the rest is kept for ordering and downloads, so
     * polling can never starve issuance. Default 0.2.
     */
    pollingShare: z.number().gt(0).max(1).default(DIGICERT_DEFAULTS.rateLimit.pollingShare),
    /** Longest in-step wait for budget; beyond it the step is rescheduled (nothing was sent). Default 30s. */
    maxWait: durationMs.prefault(DIGICERT_DEFAULTS.rateLimit.maxWait),
    /** Requests in flight at once from one replica (DigiCert asks clients not to burst). Default 8. */
    maxConcurrent: z.number().int().min(1).max(100).default(DIGICERT_DEFAULTS.rateLimit.maxConcurrent),
  })
  .strict()
  .prefault({})
  .superRefine((limit, ctx) => {
    if (limit.requestsPer5Minutes !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['requestsPer5Minutes'],
        message:
          'renamed requestsPer3Minutes: DigiCert counts its long window over 3 minutes today (1,000 per 3 minutes per key)',
      });
    }
    const { accountLimit } = limit;
    if (limit.requestsPer5Seconds !== undefined && limit.requestsPer5Seconds > accountLimit.requestsPer5Seconds) {
      ctx.addIssue({
        code: 'custom',
        path: ['requestsPer5Seconds'],
        message: `must not exceed accountLimit.requestsPer5Seconds (${accountLimit.requestsPer5Seconds}); raise that only to a limit DigiCert confirmed for this key`,
      });
    }
    if (limit.requestsPer3Minutes !== undefined && limit.requestsPer3Minutes > accountLimit.requestsPer3Minutes) {
      ctx.addIssue({
        code: 'custom',
        path: ['requestsPer3Minutes'],
        message: `must not exceed accountLimit.requestsPer3Minutes (${accountLimit.requestsPer3Minutes}); raise that only to a limit DigiCert confirmed for this key`,
      });
    }
  })
  .transform(({ requestsPer5Minutes: _renamed, ...limit }) => {
    const share = (n: number) => Math.max(1, Math.floor(n * DIGICERT_DEFAULTS.rateLimit.share));
    return {
      ...limit,
      requestsPer5Seconds: limit.requestsPer5Seconds ?? share(limit.accountLimit.requestsPer5Seconds),
      requestsPer3Minutes: limit.requestsPer3Minutes ?? share(limit.accountLimit.requestsPer3Minutes),
    };
  });

export const digicertConfigSchema = z
  .object({
    type: z.literal('digicert'),
    /** `{file: PATH}` (relative to the config file) or `{env: NAME}` holding the API key. Required. */
    apiKey: secretReference,
    /** Services API root. Default CertCentral US; EU: https://certcentral.digicert.eu/services/v2. */
    baseUrl: z
      .url()
      .refine((url) => !sendsCredentialsInClear(url), CLEAR_TEXT_PROBLEM)
      .default(DIGICERT_DEFAULTS.baseUrl),
    /** Product name id; decides EKUs and SAN type (src/ca/digicert/products.ts). Required. */
    product: z.enum(DIGICERT_PRODUCT_IDS as [string, ...string[]], {
      message: `product must be one of ${DIGICERT_PRODUCT_IDS.join(', ')} (see docs/backends/digicert.md for why public S/MIME products are not offered)`,
    }),
    /** Id of the pre-validated organization every order names. Required. */
    organizationId: z.number().int().positive(),
    /**
     * The validated organization's name exactly as DigiCert writes it into the certificate's O. Needed only when a
     * profile puts O in the subject: config load then checks the profile's O equals it.
     */
    organizationName: z.string().min(1).optional(),
    /** Container (division) the orders are placed in. Default: the API key's own container. */
    containerId: z.number().int().positive().optional(),
    /** `certificate.ca_cert_id` of the issuing CA; required by private products (private_ssl_plus). */
    caCertId: z.string().min(1).optional(),
    /** `certificate.signature_hash`. Default sha256. */
    signatureHash: z.enum(['sha256', 'sha384', 'sha512']).default(DIGICERT_DEFAULTS.signatureHash),
    /**
     * `skip_approval`: true sends orders straight to validation (the API key's user must be allowed to approve).
     * With a pre-validated organization the certificate is then usually issued in the order call itself. Default true.
     */
    skipApproval: z.boolean().default(DIGICERT_DEFAULTS.skipApproval),
    /** `payment_method`: balance, card or profile. Default balance. */
    paymentMethod: z.enum(['balance', 'card', 'profile']).default(DIGICERT_DEFAULTS.paymentMethod),
    /** `comments` on every order; placeholders {{processId}} {{correlationId}} {{profile}} {{caConnection}}. */
    commentsTemplate: z
      .string()
      .max(1000)
      .default(DIGICERT_DEFAULTS.commentsTemplate)
      .superRefine((text, ctx) => {
        for (const match of text.matchAll(PLACEHOLDER)) {
          if (!(COMMENT_PLACEHOLDERS as readonly string[]).includes(match[1] as string)) {
            ctx.addIssue({
              code: 'custom',
              message: `unknown placeholder ${match[0]}; known: ${COMMENT_PLACEHOLDERS.map((p) => `{{${p}}}`).join(' ')}`,
            });
          }
        }
      }),
    /**
     * Id (`metadata_id`) of the account's custom order field that receives the Chrome process id: the key that
     * finds an order again after a crash, since DigiCert has no idempotency key. Required.
     */
    processIdCustomFieldId: z.number().int().positive(),
    /**
     * How the profile's validity is sent: `validity_days` (counted from issuance), `custom_expiration_date` (a UTC
     * calendar date) or `validity_years` (whole years) — only a field the product's order page documents
     * (products.ts). Default: the product's first (validity_days for client_authentication_plus, validity_years
     * for private_ssl_plus).
     */
    validityField: z.enum(VALIDITY_FIELDS).optional(),
    /** Longest validity to order, in days. Default: the product's maximum (1095 client, 825 private SSL). */
    maxValidityDays: z.number().int().positive().optional(),
    /** Timeout of one HTTP request. Default 30s. */
    requestTimeout: durationMs.prefault(DIGICERT_DEFAULTS.requestTimeout),
    /** One status-changes call per interval for all pending orders of this API key. Default 1m. */
    statusPollInterval: durationMs.prefault(DIGICERT_DEFAULTS.statusPollInterval),
    /** Window of a replica's first status-changes call (covers a time nobody polled). At most 7d. Default 24h. */
    statusPollInitialWindow: durationMs.prefault(DIGICERT_DEFAULTS.statusPollInitialWindow),
    /** Safety net: each pending order is also read directly this often, in case every window missed it. Default 6h. */
    orderFallbackInterval: durationMs.prefault(DIGICERT_DEFAULTS.orderFallbackInterval),
    /**
     * How often a process waiting on a pending order is looked at without asking DigiCert: is its Chrome process
     * still waiting, is scheduler.caMaxWait over (then the order is canceled)? Costs one Chrome API read, no
     * DigiCert request. Default 10m.
     */
    pendingRecheckInterval: durationMs.prefault(DIGICERT_DEFAULTS.pendingRecheckInterval),
    /** How far back a crash-recovery lookup searches the order list. Default 7d. */
    reconcileLookback: durationMs.prefault(DIGICERT_DEFAULTS.reconcileLookback),
    rateLimit: rateLimitSchema,
  })
  .strict()
  .superRefine((config, ctx) => {
    const product = DIGICERT_PRODUCTS[config.product];
    if (product === undefined) return;
    if (product.needsCaCertId && config.caCertId === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['caCertId'],
        message: `product ${config.product} needs caCertId (the private issuing CA)`,
      });
    }
    if (!product.needsCaCertId && config.caCertId !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['caCertId'], message: `product ${config.product} takes no caCertId` });
    }
    if (config.validityField !== undefined && !product.validityFields.includes(config.validityField)) {
      ctx.addIssue({
        code: 'custom',
        path: ['validityField'],
        message: `DigiCert documents only ${product.validityFields.join(', ')} for ${config.product}`,
      });
    }
    if (config.maxValidityDays !== undefined && config.maxValidityDays > product.maxValidityDays) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxValidityDays'],
        message: `product ${config.product} is sold for at most ${product.maxValidityDays} days`,
      });
    }
    if (config.statusPollInitialWindow > STATUS_CHANGES_MAX_WINDOW_MS) {
      ctx.addIssue({ code: 'custom', path: ['statusPollInitialWindow'], message: 'status-changes covers at most 7d' });
    }
    if (config.statusPollInterval < 100) {
      ctx.addIssue({
        code: 'custom',
        path: ['statusPollInterval'],
        message: 'must be at least 100ms (30s or more in production)',
      });
    }
    if (config.pendingRecheckInterval > config.orderFallbackInterval) {
      ctx.addIssue({
        code: 'custom',
        path: ['pendingRecheckInterval'],
        message: 'must not be longer than orderFallbackInterval',
      });
    }
    if (config.orderFallbackInterval < config.statusPollInterval) {
      ctx.addIssue({
        code: 'custom',
        path: ['orderFallbackInterval'],
        message:
          'must not be shorter than statusPollInterval (it is the safety net of the bulk poll, not a replacement)',
      });
    }
  });

export type DigicertConfig = z.infer<typeof digicertConfigSchema>;

/** The validity field this connection's orders carry: the configured one, else the product's default. */
export function validityFieldOf(config: DigicertConfig): ValidityField {
  return config.validityField ?? DIGICERT_PRODUCTS[config.product]?.validityFields[0] ?? 'validity_days';
}

/** The longest validity this connection orders, in days. */
export function maxValidityDaysOf(config: DigicertConfig): number {
  return config.maxValidityDays ?? DIGICERT_PRODUCTS[config.product]?.maxValidityDays ?? 365;
}
