/**
 * `type: azure-key-vault` — an issuing CA whose private key never leaves Azure Key Vault or a Managed HSM
 * (DESIGN.md §3; reference/azure-keyvault.md). Every field is documented with its default here and in
 * config/azure-key-vault.example.yaml.
 *
 * Two ways to name the CA:
 * - **certificate mode** (a vault): `certificateName` + `certificateVersion` pin one version of a Key Vault
 *   certificate object; the signing key is that version's `kid`, and the CA certificate is that version's `cer`.
 *   Never "latest": a rotation (`kv-ca create` + `kv-ca merge`) makes a new version that running adapters ignore
 *   until `certificateVersion` is rolled out through configuration.
 * - **signing-only mode** (a Managed HSM, which holds keys but no certificate objects, or a vault where the adapter
 *   may not read certificates): `signingKey {name, version}` + `caCertificateFile`.
 */
import type { CertificateClientOptions } from '@azure/keyvault-certificates';
import { z } from 'zod';
import { crlSettingsSchema } from '../crl-settings.ts';
import { durationMs, secretReference } from '../../config/zod-helpers.ts';
import { isLoopbackUrl } from '../../http/url-safety.ts';

/** The api-versions the installed SDK knows (its typed `serviceVersion`). */
type SdkApiVersion = NonNullable<CertificateClientOptions['serviceVersion']>;

/**
 * The Key Vault api-versions `apiVersion` accepts: exactly the ones the installed `@azure/keyvault-certificates`
 * declares. A version the SDK does not know would be sent with request and response shapes the SDK was not
 * generated for. The two checks below fail the typecheck when an SDK upgrade adds or drops a version, so this list
 * follows the SDK, not the other way round.
 */
export const KEY_VAULT_API_VERSIONS = [
  '7.0',
  '7.1',
  '7.2',
  '7.3',
  '7.4',
  '7.5',
  '7.6',
  '2025-07-01',
] as const satisfies readonly SdkApiVersion[];
/** Every version the SDK declares is listed (compile-time; `never` when complete). */
type UnlistedSdkVersion = Exclude<SdkApiVersion, (typeof KEY_VAULT_API_VERSIONS)[number]>;
const everySdkVersionListed: [UnlistedSdkVersion] extends [never] ? true : UnlistedSdkVersion = true;
void everySdkVersionListed;

/** Defaults as typed constants (STYLE.md); documented in config/azure-key-vault.example.yaml. */
export const KEY_VAULT_DEFAULTS = {
  /**
   * Key Vault REST API version. 7.5 is GA on vaults and Managed HSMs alike; the SDK's own default (2025-07-01) may
   * be newer than a sovereign cloud accepts.
   */
  apiVersion: '7.5' as const,
  rsaSignatureAlgorithm: 'RS256',
  requestTimeout: '30s',
  /** 1 + 5 retries waiting ~1, 2, 4, 8, 16 s: Microsoft's advice for 429 (reference/azure-keyvault.md). */
  retryAttempts: 6,
  retryInitialDelay: '1s',
  retryMaxDelay: '16s',
  maxRetryAfter: '60s',
  backdate: '5m',
  maxValidityDays: 825,
  federationAudience: 'api://AzureADTokenExchange',
} as const;

/** `*.managedhsm.azure.net` (and sovereign-cloud equivalents): holds keys only, no certificate objects. */
export function isManagedHsmUrl(url: string): boolean {
  try {
    return /\.managedhsm\./i.test(new URL(url).hostname);
  } catch {
    return false;
  }
}

const authorityFields = {
  /**
   * Microsoft Entra authority (sovereign clouds: their own host). Default: AZURE_AUTHORITY_HOST, else
   * https://login.microsoftonline.com.
   */
  authorityHost: z.url().optional(),
  /**
   * Skip MSAL's instance-discovery request (needed for private/sovereign authorities and test fakes that MSAL does
   * not know). Default false.
   */
  disableInstanceDiscovery: z.boolean().default(false),
};

const tenantId = z.string().regex(/^[0-9A-Za-z.-]{1,100}$/, 'a tenant id (GUID) or domain');
const clientId = z.string().regex(/^[0-9A-Za-z-]{1,100}$/, 'an application (client) id');

/** How the adapter gets its Entra token for Key Vault. */
export const keyVaultCredentialSchema = z.discriminatedUnion('type', [
  z
    .object({
      /**
       * `default`: the DefaultAzureCredential chain — environment (AZURE_CLIENT_ID/AZURE_TENANT_ID + a secret or
       * certificate), AKS workload identity, managed identity, then developer tools (az, azd, PowerShell).
       */
      type: z.literal('default'),
      /** Tenant to authenticate in. Default: the chain's own (AZURE_TENANT_ID). */
      tenantId: tenantId.optional(),
      /** Client id of a user-assigned managed identity. Default: the system-assigned one. */
      managedIdentityClientId: clientId.optional(),
      ...authorityFields,
    })
    .strict(),
  z
    .object({
      /** `client-secret`: an Entra app registration and its client secret, read from a file or variable. */
      type: z.literal('client-secret'),
      tenantId,
      clientId,
      /** `{file: /secrets/azure/client-secret}` or `{env: AZURE_CLIENT_SECRET}`; never the secret itself. */
      clientSecret: secretReference,
      ...authorityFields,
    })
    .strict(),
  z
    .object({
      /**
       * `gke-federation`: no secret at all. The pod's Google service account (GKE Workload Identity) gets a Google
       * ID token for `audience` from the metadata server and presents it to Entra as a client assertion; the
       * Entra app has a federated credential with issuer https://accounts.google.com and subject = the Google
       * service account's numeric unique id.
       */
      type: z.literal('gke-federation'),
      tenantId,
      clientId,
      /** Audience of the Google ID token; must match the federated credential. Default api://AzureADTokenExchange. */
      audience: z.string().min(1).default(KEY_VAULT_DEFAULTS.federationAudience),
      ...authorityFields,
    })
    .strict(),
  z
    .object({
      /** `static-token`: a fixed bearer token. Test fakes and the benchmark only: loopback vault URLs only. */
      type: z.literal('static-token'),
      token: secretReference,
    })
    .strict(),
]);

export type KeyVaultCredentialConfig = z.infer<typeof keyVaultCredentialSchema>;

const objectName = z
  .string()
  .regex(/^[0-9A-Za-z-]{1,127}$/, 'Key Vault object names are 1–127 letters, digits and dashes');
const objectVersion = z.string().regex(/^[0-9A-Fa-f]{32}$/, 'a Key Vault object version is 32 hex digits');

const baseSchema = z
  .object({
    type: z.literal('azure-key-vault'),
    /** `https://NAME.vault.azure.net` or `https://NAME.managedhsm.azure.net` (scheme and host only). */
    vaultUrl: z.url(),
    /** Certificate mode: name of the Key Vault certificate object of the issuing CA. */
    certificateName: objectName.optional(),
    /**
     * Certificate mode: the pinned version (32 hex digits; `certprov kv-ca merge` prints it). Required by the
     * adapter; optional for `kv-ca` commands, which work on the pending request rather than on a version.
     */
    certificateVersion: objectVersion.optional(),
    /** Signing-only mode (Managed HSM): the CA key, by name and pinned version. */
    signingKey: z.object({ name: objectName, version: objectVersion }).strict().optional(),
    /** Signing-only mode: the CA certificate (PEM) whose public key is `signingKey`'s; relative to the config file. */
    caCertificateFile: z.string().min(1).optional(),
    /**
     * Optional PEM file with the CA certificate's parents (intermediates, then root), relative to the config file.
     * Only for the issued-chain audit log (`chainPem`); devices receive the leaf alone. Default none.
     */
    chainFile: z.string().min(1).optional(),
    /** Signature scheme for an RSA CA key: RS256 (PKCS#1 v1.5) or PS256 (PSS). EC keys sign ES256/384/512 by curve. Default RS256. */
    rsaSignatureAlgorithm: z.enum(['RS256', 'PS256']).default(KEY_VAULT_DEFAULTS.rsaSignatureAlgorithm),
    /** Key Vault REST `api-version` (7.5, 7.6, 2025-07-01, …). Default 7.5. */
    apiVersion: z
      .enum(KEY_VAULT_API_VERSIONS, {
        message: `must be an api-version the installed Key Vault SDK knows: ${KEY_VAULT_API_VERSIONS.join(', ')}`,
      })
      .default(KEY_VAULT_DEFAULTS.apiVersion),
    /** How to authenticate to Entra. Default `{type: default}` (DefaultAzureCredential). */
    credential: keyVaultCredentialSchema.prefault({ type: 'default' }),
    /** Timeout of one Key Vault request. Default 30s. */
    requestTimeout: durationMs.prefault(KEY_VAULT_DEFAULTS.requestTimeout),
    retry: z
      .object({
        /** Attempts per call, the first included (429, 5xx, network). Default 6 (waits ~1, 2, 4, 8, 16 s). */
        attempts: z.number().int().min(1).max(12).default(KEY_VAULT_DEFAULTS.retryAttempts),
        /** First backoff; doubles per retry, ±20 % jitter. Default 1s. */
        initialDelay: durationMs.prefault(KEY_VAULT_DEFAULTS.retryInitialDelay),
        /** Longest backoff. Default 16s. */
        maxDelay: durationMs.prefault(KEY_VAULT_DEFAULTS.retryMaxDelay),
        /** A longer Retry-After is not waited out in-call: the workflow reschedules the step instead. Default 60s. */
        maxRetryAfter: durationMs.prefault(KEY_VAULT_DEFAULTS.maxRetryAfter),
      })
      .strict()
      .prefault({}),
    /** How far `notBefore` is set back for device clock skew. Default 5m. */
    backdate: durationMs.prefault(KEY_VAULT_DEFAULTS.backdate),
    /** Longest validity this CA grants, in days (leaves never outlive the CA anyway). Default 825. */
    maxValidityDays: z.number().int().positive().default(KEY_VAULT_DEFAULTS.maxValidityDays),
    /** Publish a CRL for this connection, and point every leaf at it (docs/lifecycle.md). Default: no CRL. */
    crl: crlSettingsSchema.optional(),
    /** Test fakes only: allow an `http://` vault URL. Loopback vault URLs only. Default false. */
    allowInsecureConnection: z.boolean().default(false),
    /**
     * Test fakes only: accept a 401 challenge whose resource is not the vault's domain. Loopback vault URLs only.
     * Default false.
     */
    disableChallengeResourceVerification: z.boolean().default(false),
  })
  .strict();

type BaseConfig = z.infer<typeof baseSchema>;
type Issue = { message: string; path: (string | number)[] };

/** Checks shared by the adapter's and the `kv-ca` commands' view of a connection. */
function commonIssues(config: BaseConfig): Issue[] {
  const issues: Issue[] = [];
  const url = new URL(config.vaultUrl);
  const loopback = isLoopbackUrl(config.vaultUrl);
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    issues.push({ path: ['vaultUrl'], message: 'give scheme and host only, e.g. https://my-vault.vault.azure.net' });
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && config.allowInsecureConnection)) {
    issues.push({ path: ['vaultUrl'], message: 'Key Vault is reached over https only' });
  }
  for (const flag of ['allowInsecureConnection', 'disableChallengeResourceVerification'] as const) {
    if (config[flag] && !loopback) {
      issues.push({ path: [flag], message: 'is a test-only setting, accepted for loopback vault URLs only' });
    }
  }
  if (config.credential.type === 'static-token' && !loopback) {
    issues.push({ path: ['credential', 'type'], message: 'static-token is accepted for loopback vault URLs only' });
  }
  if (config.credential.type !== 'static-token' && config.credential.authorityHost?.startsWith('https://') === false) {
    issues.push({
      path: ['credential', 'authorityHost'],
      message: 'Entra authorities are https only (MSAL refuses others)',
    });
  }
  if (config.retry.initialDelay > config.retry.maxDelay) {
    issues.push({ path: ['retry', 'initialDelay'], message: 'must not exceed retry.maxDelay' });
  }
  const signingOnly = config.signingKey !== undefined || config.caCertificateFile !== undefined;
  if (signingOnly && (config.certificateName !== undefined || config.certificateVersion !== undefined)) {
    issues.push({
      path: ['signingKey'],
      message:
        'give either certificateName + certificateVersion (certificate mode) or signingKey + caCertificateFile (signing-only mode), not both',
    });
  }
  if (isManagedHsmUrl(config.vaultUrl) && config.certificateName !== undefined) {
    issues.push({
      path: ['certificateName'],
      message: 'a Managed HSM holds keys, not certificate objects: use signingKey + caCertificateFile',
    });
  }
  return issues;
}

/** What the adapter needs to sign: a pinned certificate version, or a pinned key plus a certificate file. */
function issuingIssues(config: BaseConfig): Issue[] {
  const issues = commonIssues(config);
  const signingOnly = config.signingKey !== undefined || config.caCertificateFile !== undefined;
  if (signingOnly) {
    if (config.signingKey === undefined)
      issues.push({ path: ['signingKey'], message: 'required with caCertificateFile' });
    if (config.caCertificateFile === undefined) {
      issues.push({
        path: ['caCertificateFile'],
        message: 'required with signingKey (the CA certificate of that key)',
      });
    }
  } else {
    if (config.certificateName === undefined) {
      issues.push({
        path: ['certificateName'],
        message: 'required (or signingKey + caCertificateFile for a Managed HSM)',
      });
    }
    if (config.certificateVersion === undefined) {
      issues.push({
        path: ['certificateVersion'],
        message: 'required: pin the CA certificate version (`certprov kv-ca merge` prints it); "latest" is never used',
      });
    }
  }
  return issues;
}

/** The connection as the adapter uses it: everything to sign with a pinned key. */
export const keyVaultCaConfigSchema = baseSchema.superRefine((config, ctx) => {
  for (const issue of issuingIssues(config)) ctx.addIssue({ code: 'custom', ...issue });
});

/**
 * The connection as `certprov kv-ca` uses it: a vault, a credential and a certificate name; the version is what
 * the lifecycle produces, so it may be missing.
 */
export const keyVaultLifecycleConfigSchema = baseSchema.superRefine((config, ctx) => {
  for (const issue of commonIssues(config)) ctx.addIssue({ code: 'custom', ...issue });
});

export type KeyVaultCaConfig = z.infer<typeof keyVaultCaConfigSchema>;
