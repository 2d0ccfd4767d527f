/**
 * Key Vault SDK failures → the outcome classes of src/errors.ts (DESIGN.md §5), in one place for this backend.
 *
 * The official SDKs throw `RestError` (from @azure/core-rest-pipeline, a transitive dependency: recognised by
 * shape, not imported) for HTTP and transport failures, and @azure/identity's errors when no token can be had.
 *
 * - 401/403 and credential failures are deployment faults of component `keyvault`; a 403 names the permission the
 *   operation needs (`keys/sign`, `certificates/get`, …) and the RBAC role that grants it.
 * - 429 is retried after `Retry-After` (or the backoff schedule when the header is absent); it was certainly not
 *   applied, so even an unsafe call may be repeated.
 * - 408, 5xx, timeouts and network failures are retried for safe operations (get, sign); for unsafe ones (create,
 *   merge) they are an {@link UnclearResultError}: read the pending object back.
 * - Any other 4xx on the adapter's own calls means the configuration does not fit the vault (wrong name, key type,
 *   algorithm): a deployment fault, never a failed device — it would fail every device alike.
 */
import {
  AggregateAuthenticationError,
  AuthenticationError,
  AuthenticationRequiredError,
  CredentialUnavailableError,
} from '@azure/identity';
import { DeploymentFaultError, RetryableError, UnclearResultError, type CertprovError } from '../../errors.ts';
import { NOT_SENT_CODES, TLS_TRUST_CODES, clipServerMessage, markNothingApplied } from '../../http/classify.ts';
import { parseRetryAfter } from '../../http/retry-after.ts';
import type { KeyVaultOperation } from './operations.ts';

/** The fields of `@azure/core-rest-pipeline`'s RestError this module reads. */
export interface RestErrorLike extends Error {
  readonly name: 'RestError';
  /** The service's error code (`Forbidden`, `PendingCertificateNotFound`, …) or a socket code (`ECONNREFUSED`). */
  readonly code?: string;
  readonly statusCode?: number;
  readonly response?: { readonly headers: { get(name: string): string | undefined } };
}

export function isRestError(error: unknown): error is RestErrorLike {
  return error instanceof Error && error.name === 'RestError';
}

/** The HTTP status of a RestError, or undefined for anything else (transport failures included). */
export function statusOf(error: unknown): number | undefined {
  return isRestError(error) ? error.statusCode : undefined;
}

/**
 * The delay a throttled response asks for: `Retry-After` (seconds or HTTP-date), else `retry-after-ms` /
 * `x-ms-retry-after-ms` (Azure's millisecond variants, which the SDK's own throttling policy also reads).
 */
export function retryAfterOf(error: RestErrorLike): number | undefined {
  const headers = error.response?.headers;
  if (headers === undefined) return undefined;
  const seconds = parseRetryAfter(headers.get('retry-after'));
  if (seconds !== undefined) return seconds;
  for (const name of ['retry-after-ms', 'x-ms-retry-after-ms']) {
    const value = headers.get(name)?.trim();
    if (value !== undefined && /^\d+$/.test(value)) return Number(value);
  }
  return undefined;
}

export interface ClassifyContext {
  readonly operation: KeyVaultOperation;
  /** The vault, for messages. */
  readonly vaultUrl: string;
  /** The object the call was about (`certificate issuing-ca version 3f…`), for messages. */
  readonly subject: string;
  /** This attempt's own timeout fired. */
  readonly timedOut?: boolean;
  readonly timeoutMs?: number;
}

function permissionHint(operation: KeyVaultOperation): string {
  return (
    `grant the adapter's identity ${operation.permission} on the vault: the "${operation.role}" role (Azure RBAC) ` +
    `or an access policy with ${operation.permission}`
  );
}

function credentialFault(error: Error, context: ClassifyContext): CertprovError {
  // Deliberately no `cause`: identity errors may carry request details; the message is enough and is clipped.
  const status = (error as { statusCode?: number }).statusCode;
  const message = `keyvault ${context.operation.name}: could not obtain a Microsoft Entra token: ${clipServerMessage(error.message)}`;
  if (status !== undefined && (status === 429 || status >= 500)) return new RetryableError(message);
  return new DeploymentFaultError(message, {
    component: 'keyvault',
    hint:
      'check credential (tenantId, clientId, the client secret file, or the Entra federated credential: issuer ' +
      "https://accounts.google.com, subject = the Google service account's numeric id, audience api://AzureADTokenExchange)",
  });
}

/** Classifies anything a Key Vault SDK call threw. The caller has ruled out its own abort. */
export function classifyKeyVaultError(error: unknown, context: ClassifyContext): CertprovError {
  const { operation } = context;
  const what = `keyvault ${operation.name} (${context.subject})`;
  if (
    error instanceof AuthenticationError ||
    error instanceof AggregateAuthenticationError ||
    error instanceof CredentialUnavailableError ||
    // What @azure/identity makes of an MSAL server error (invalid_client, AADSTS…): msal/utils.js handleMsalError.
    error instanceof AuthenticationRequiredError
  ) {
    return credentialFault(error, context);
  }
  if (context.timedOut === true) {
    const message = `${what} → no response within ${context.timeoutMs ?? 0} ms`;
    return operation.safeToRepeat
      ? new RetryableError(message)
      : new UnclearResultError(`${message} (the request may have been applied)`);
  }
  if (!isRestError(error)) {
    // The SDK's own checks before sending (key disabled or expired, operation not in key_ops) and anything else:
    // configuration that does not fit the vault.
    const message = error instanceof Error ? error.message : String(error);
    return new DeploymentFaultError(`${what}: ${clipServerMessage(message)}`, { component: 'keyvault', cause: error });
  }
  const status = error.statusCode;
  const server = `${error.code === undefined ? '' : `${error.code}: `}${clipServerMessage(error.message)}`;
  if (status === undefined) {
    const code = error.code ?? '';
    const message = `${what} → network failure (${server})`;
    if (TLS_TRUST_CODES.has(code)) {
      return new DeploymentFaultError(message, {
        component: 'keyvault',
        hint: "the vault's TLS certificate is not trusted: check vaultUrl and the CA bundle (NODE_EXTRA_CA_CERTS)",
      });
    }
    if (NOT_SENT_CODES.has(code)) return markNothingApplied(new RetryableError(message));
    return operation.safeToRepeat
      ? new RetryableError(message)
      : new UnclearResultError(`${message} (the request may have been applied)`);
  }
  const summary = `${what} → ${status} ${server}`;
  if (status === 401) {
    return new DeploymentFaultError(`${summary} (the vault did not accept the adapter's Entra token)`, {
      component: 'keyvault',
      hint: "check credential.tenantId (it must be the vault's tenant) and that the identity still exists",
    });
  }
  if (status === 403) {
    return new DeploymentFaultError(`${summary} (missing permission ${operation.permission} on ${context.vaultUrl}?)`, {
      component: 'keyvault',
      hint: `${permissionHint(operation)}; if the message mentions a firewall, allow the cluster's egress addresses`,
    });
  }
  if (status === 429) {
    return markNothingApplied(new RetryableError(`${summary} (throttled)`, { retryAfterMs: retryAfterOf(error) }));
  }
  if (status === 408 || status >= 500) {
    const retryAfterMs = retryAfterOf(error);
    return operation.safeToRepeat
      ? new RetryableError(summary, { retryAfterMs })
      : new UnclearResultError(`${summary} (the request may have been applied)`, { retryAfterMs });
  }
  if (status === 404) {
    return new DeploymentFaultError(`${summary} (not found)`, {
      component: 'keyvault',
      hint: 'check vaultUrl and the configured names and versions (`certprov kv-ca status` shows the certificate)',
    });
  }
  return new DeploymentFaultError(summary, {
    component: 'keyvault',
    hint: 'the configuration does not fit the vault object (key type, algorithm, api version)',
  });
}

/** The permission a 403 on `operation` points to, as one sentence for CLI output. */
export function missingPermissionAdvice(operation: KeyVaultOperation): string {
  return permissionHint(operation);
}
