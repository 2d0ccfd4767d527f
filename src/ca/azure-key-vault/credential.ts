/**
 * The Entra credential the Key Vault clients authenticate with (@azure/identity; the Key Vault SDK's challenge
 * policy asks it for a token scoped to the resource named in the vault's 401 challenge).
 *
 * - `default`: DefaultAzureCredential — environment variables, AKS workload identity, managed identity, then
 *   developer tools.
 * - `client-secret`: ClientSecretCredential; the secret is read once from a file or an environment variable
 *   (src/config/secrets.ts) and exists nowhere else — not in config, logs or error messages.
 * - `gke-federation`: ClientAssertionCredential whose assertion is a Google-signed ID token for
 *   `api://AzureADTokenExchange`, fetched through Application Default Credentials — on GKE with Workload Identity
 *   that is the metadata server (`…/service-accounts/default/identity?audience=…&format=full`). No secret exists
 *   anywhere: Entra trusts the token because the app registration carries a federated credential (issuer
 *   https://accounts.google.com, subject = the Google service account's numeric unique id).
 * - `static-token`: a fixed token for loopback test fakes (config refuses it for real vaults).
 *
 * MSAL caches the access token (about an hour) and asks for a new assertion only when it needs a new token.
 */
import {
  ClientAssertionCredential,
  ClientSecretCredential,
  CredentialUnavailableError,
  DefaultAzureCredential,
  type TokenCredential,
} from '@azure/identity';
import { GoogleAuth } from 'google-auth-library';
import { readSecret } from '../../config/secrets.ts';
import { clipServerMessage } from '../../http/classify.ts';
import type { KeyVaultCredentialConfig } from './config.ts';

export interface KeyVaultCredentialOptions {
  /** Secret file paths resolve against this directory (the config file's). */
  readonly baseDir: string;
  /** `gke-federation`: the Google credentials to get ID tokens with. Default: Application Default Credentials. */
  readonly googleAuth?: GoogleAuth;
}

/** Lifetime the static test token claims. */
const STATIC_TOKEN_LIFETIME_MS = 3_600_000;

/**
 * A function returning a fresh Google ID token for `audience`, for ClientAssertionCredential. Failures become
 * CredentialUnavailableError with what to check (the Key Vault error classifier turns that into a deployment fault).
 */
export function googleIdTokenAssertion(
  audience: string,
  googleAuth: GoogleAuth = new GoogleAuth(),
): () => Promise<string> {
  return async () => {
    try {
      const client = await googleAuth.getIdTokenClient(audience);
      return await client.idTokenProvider.fetchIdToken(audience);
    } catch (error) {
      // No `cause`: a GaxiosError carries its request configuration.
      const message = error instanceof Error ? error.message : String(error);
      throw new CredentialUnavailableError(
        `gke-federation: could not get a Google ID token for audience ${audience}: ${clipServerMessage(message)} ` +
          "(on GKE, bind the pod's Kubernetes service account to a Google service account with Workload Identity)",
      );
    }
  };
}

/** `authorityHost` only when configured: the SDK's own default honours AZURE_AUTHORITY_HOST. */
function authority(config: { authorityHost?: string | undefined; disableInstanceDiscovery: boolean }) {
  return {
    disableInstanceDiscovery: config.disableInstanceDiscovery,
    ...(config.authorityHost === undefined ? {} : { authorityHost: config.authorityHost }),
  };
}

/** Builds the credential named by configuration. Reads the client secret or static token file once. */
export async function createKeyVaultCredential(
  config: KeyVaultCredentialConfig,
  options: KeyVaultCredentialOptions,
): Promise<TokenCredential> {
  switch (config.type) {
    case 'default':
      return new DefaultAzureCredential({
        ...authority(config),
        ...(config.tenantId === undefined ? {} : { tenantId: config.tenantId }),
        ...(config.managedIdentityClientId === undefined
          ? {}
          : { managedIdentityClientId: config.managedIdentityClientId }),
      });
    case 'client-secret': {
      const secret = await readSecret(config.clientSecret, options.baseDir, 'keyvault');
      return new ClientSecretCredential(config.tenantId, config.clientId, secret, authority(config));
    }
    case 'gke-federation':
      return new ClientAssertionCredential(
        config.tenantId,
        config.clientId,
        googleIdTokenAssertion(config.audience, options.googleAuth),
        authority(config),
      );
    case 'static-token': {
      const token = await readSecret(config.token, options.baseDir, 'keyvault');
      return {
        getToken: () => Promise.resolve({ token, expiresOnTimestamp: Date.now() + STATIC_TOKEN_LIFETIME_MS }),
      };
    }
  }
}
