/**
 * Credentials for the Chrome Management API. `google-default` is Application Default Credentials through
 * google-auth-library: GOOGLE_APPLICATION_CREDENTIALS, then gcloud's well-known file, then the metadata server —
 * which is how GKE Workload Identity hands out tokens. `none` sends no credentials; the config layer accepts it for
 * loopback endpoints only (the sandbox and tests).
 *
 * Tokens live in google-auth-library's cache and in request headers only: never in a log line or an error.
 */
import { GoogleAuth } from 'google-auth-library';
import { DeploymentFaultError } from '../errors.ts';
import { clipServerMessage } from '../http/classify.ts';
import type { AuthHeaders } from '../http/http-client.ts';
import { CERTPROV_SCOPE } from './types.ts';

/** What the operator should do when no token can be obtained. */
export const CHROME_CREDENTIALS_HINT =
  'no Application Default Credentials: on GKE bind the Kubernetes service account to a Google service account ' +
  'with Workload Identity; locally run gcloud auth application-default login';

export interface ChromeAuthConfig {
  /** `google-default` (ADC, the default) or `none` (loopback endpoints only). */
  readonly credentials: 'google-default' | 'none';
}

export interface ChromeAuthOptions {
  /** A preconfigured GoogleAuth (tests, or a caller sharing one). Default: ADC with {@link CERTPROV_SCOPE}. */
  readonly googleAuth?: GoogleAuth;
}

/**
 * Returns the header provider for ChromeClient. With `google-default`, a token that cannot be obtained is a
 * {@link DeploymentFaultError} of component `chrome` (an operator's fix, never a process failure).
 */
export function createChromeAuth(config: ChromeAuthConfig, options: ChromeAuthOptions = {}): AuthHeaders {
  if (config.credentials === 'none') return () => Promise.resolve({});
  const auth = options.googleAuth ?? new GoogleAuth({ scopes: [CERTPROV_SCOPE] });
  return async () => {
    let headers: Headers;
    try {
      headers = await auth.getRequestHeaders();
    } catch (error) {
      // Deliberately no `cause`: a GaxiosError carries its request config, which for user credentials holds the
      // refresh token and client secret, and a logger serialising causes would print them.
      const message = error instanceof Error ? error.message : String(error);
      throw new DeploymentFaultError(`chrome: could not obtain a Google access token: ${clipServerMessage(message)}`, {
        component: 'chrome',
        hint: CHROME_CREDENTIALS_HINT,
      });
    }
    const result: Record<string, string> = {};
    headers.forEach((value, name) => {
      result[name] = value;
    });
    return result;
  };
}
