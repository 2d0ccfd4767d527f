/**
 * A start-up check that Google credentials exist before any Google client library is built. Without it a missing
 * Application Default Credentials (or an unbound Workload Identity) surfaces from deep inside the Pub/Sub client as
 * an unhandled promise rejection with a stack (the client's stub promise rejects with nobody listening) — the
 * operator must instead read one line saying what failed and what to do.
 */
import { DeploymentFaultError, type FaultComponent } from '../errors.ts';
import { clipServerMessage } from '../http/classify.ts';

/** No Application Default Credentials were found at all. */
export const NO_GOOGLE_CREDENTIALS_HINT =
  'on GKE bind the Kubernetes service account to a Google service account with Workload Identity ' +
  '(iam.gke.io/gcp-service-account annotation); elsewhere set GOOGLE_APPLICATION_CREDENTIALS to a key file or run ' +
  '`gcloud auth application-default login`';

/** The metadata server answered but handed out no token: the GKE service account is not bound. */
export const UNBOUND_WORKLOAD_IDENTITY_HINT =
  'the GKE metadata server gave no token: annotate the Kubernetes service account with ' +
  'iam.gke.io/gcp-service-account and grant it roles/iam.workloadIdentityUser on that Google service account';

/** GOOGLE_APPLICATION_CREDENTIALS names a file that gave no token. */
const KEY_FILE_HINT = 'check the key file GOOGLE_APPLICATION_CREDENTIALS names (readable, a service account key)';

const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

/**
 * Obtains one access token through Application Default Credentials; rejects with a {@link DeploymentFaultError}
 * whose message says what failed (`purpose`) and whose hint says what to do. The token itself is dropped.
 */
export async function requireGoogleCredentials(
  purpose: string,
  component: FaultComponent,
  timeoutMs = 15_000,
): Promise<void> {
  // Loaded here, not at the top: `certprov --help` must not pay for google-auth-library.
  const { GoogleAuth } = await import('google-auth-library');
  const auth = new GoogleAuth({ scopes: [CLOUD_PLATFORM_SCOPE] });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      auth.getAccessToken(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
      }),
    ]);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const noCredentials = /could not load the default credentials/i.test(message);
    // No `cause`: a GaxiosError carries its request config, which for user credentials holds secrets.
    throw new DeploymentFaultError(
      `no Google credentials for ${purpose}: ${noCredentials ? 'Application Default Credentials not found' : clipServerMessage(message)}`,
      {
        component,
        hint: noCredentials
          ? NO_GOOGLE_CREDENTIALS_HINT
          : process.env.GOOGLE_APPLICATION_CREDENTIALS
            ? KEY_FILE_HINT
            : UNBOUND_WORKLOAD_IDENTITY_HINT,
      },
    );
  } finally {
    clearTimeout(timer);
  }
}
