/**
 * Options for the official Key Vault SDK clients (`@azure/keyvault-keys`, `@azure/keyvault-certificates`), shared
 * by the adapter and the `kv-ca` commands so both talk to the vault the same way.
 */
import type { TokenCredential } from '@azure/identity';
import { CertificateClient, type CertificateClientOptions } from '@azure/keyvault-certificates';
import { KeyClient, type KeyClientOptions } from '@azure/keyvault-keys';
import { VERSION } from '../../version.ts';
import type { KEY_VAULT_API_VERSIONS, KeyVaultCaConfig } from './config.ts';

export interface KeyVaultClientSettings {
  readonly vaultUrl: string;
  /** One of {@link KEY_VAULT_API_VERSIONS} (config.ts): the versions the installed SDK knows. */
  readonly apiVersion: (typeof KEY_VAULT_API_VERSIONS)[number];
  /** Test fakes on loopback only (config enforces it). */
  readonly allowInsecureConnection: boolean;
  /** Test fakes on loopback only (config enforces it). */
  readonly disableChallengeResourceVerification: boolean;
}

/** The client settings of a connection (the adapter's and the `kv-ca` commands' configurations share these fields). */
export function clientSettingsOf(
  config: Pick<
    KeyVaultCaConfig,
    'vaultUrl' | 'apiVersion' | 'allowInsecureConnection' | 'disableChallengeResourceVerification'
  >,
): KeyVaultClientSettings {
  return {
    vaultUrl: config.vaultUrl.replace(/\/+$/, ''),
    apiVersion: config.apiVersion,
    allowInsecureConnection: config.allowInsecureConnection,
    disableChallengeResourceVerification: config.disableChallengeResourceVerification,
  };
}

/** SDK client options: our api version, no SDK retries (key-vault-call.ts retries), test-only flags passed through. */
export function keyVaultClientOptions(settings: KeyVaultClientSettings): KeyClientOptions {
  return {
    serviceVersion: settings.apiVersion,
    // Retries, backoff and classification are ours (key-vault-call.ts): the SDK's policy retries 429 only when
    // Retry-After is present, and would multiply with ours.
    retryOptions: { maxRetries: 0 },
    allowInsecureConnection: settings.allowInsecureConnection,
    disableChallengeResourceVerification: settings.disableChallengeResourceVerification,
    userAgentOptions: { userAgentPrefix: `certprov-adapter/${VERSION}` },
  };
}

export function createKeyClient(settings: KeyVaultClientSettings, credential: TokenCredential): KeyClient {
  return new KeyClient(settings.vaultUrl, credential, keyVaultClientOptions(settings));
}

export function createCertificateClient(
  settings: KeyVaultClientSettings,
  credential: TokenCredential,
): CertificateClient {
  const options: CertificateClientOptions = { ...keyVaultClientOptions(settings), serviceVersion: settings.apiVersion };
  return new CertificateClient(settings.vaultUrl, credential, options);
}

/** `https://v.vault.azure.net/keys/NAME/VERSION` → `{name, version}`; undefined for anything else. */
export function parseKeyId(kid: string): { name: string; version: string } | undefined {
  try {
    const match = /^\/keys\/([^/]+)\/([^/]+)\/?$/.exec(new URL(kid).pathname);
    return match === null ? undefined : { name: decodeURIComponent(match[1]!), version: decodeURIComponent(match[2]!) };
  } catch {
    return undefined;
  }
}
