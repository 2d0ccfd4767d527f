/**
 * Plain-fetch helpers for driving the sandbox tenant in tests (no adapter code involved), and a throwaway CA that
 * issues leaf certificates for device keys with @peculiar/x509.
 */
import * as x509 from '@peculiar/x509';
import type { CertificateProvisioningProcess, Operation, SignatureAlgorithm } from '../../../src/chrome/types.ts';
import type { DeviceKey } from '../../../src/sandbox/key-pool.ts';
import type { SandboxTenant } from '../../../src/sandbox/tenant.ts';

x509.cryptoProvider.set(globalThis.crypto);

export interface ApiResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
}

export interface ApiErrorBody {
  error: { code: number; message: string; status: string };
}

export function processPath(
  tenant: SandboxTenant,
  id: string,
  customer = tenant.process(id).name?.split('/')[1] ?? '',
): string {
  return `${tenant.endpoint}/v1/customers/${customer}/certificateProvisioningProcesses/${id}`;
}

export async function call(
  url: string,
  init: { method?: 'GET' | 'POST'; body?: unknown; token?: string } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = {};
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`;
  const response = await fetch(url, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers,
    ...(init.body === undefined ? {} : { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === '' ? undefined : JSON.parse(text) };
}

export const getProcess = (tenant: SandboxTenant, id: string) => call(processPath(tenant, id));
export const claim = (tenant: SandboxTenant, id: string, callerInstanceId = 'adapter-1') =>
  call(`${processPath(tenant, id)}:claim`, { body: { callerInstanceId } });
export const signData = (tenant: SandboxTenant, id: string, data: Uint8Array | string, signatureAlgorithm: string) =>
  call(`${processPath(tenant, id)}:signData`, {
    body: { signData: typeof data === 'string' ? data : Buffer.from(data).toString('base64'), signatureAlgorithm },
  });
export const uploadCertificate = (tenant: SandboxTenant, id: string, certificatePem: string) =>
  call(`${processPath(tenant, id)}:uploadCertificate`, { body: { certificatePem } });
export const setFailure = (tenant: SandboxTenant, id: string, errorMessage: string) =>
  call(`${processPath(tenant, id)}:setFailure`, { body: { errorMessage } });
export const getOperation = (tenant: SandboxTenant, name: string) => call(`${tenant.endpoint}/v1/${name}`);

export function algorithmOf(key: DeviceKey): SignatureAlgorithm {
  return key.type === 'ec-p256' ? 'SIGNATURE_ALGORITHM_ECDSA_SHA256' : 'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256';
}

export function errorOf(response: ApiResponse): ApiErrorBody['error'] {
  return (response.body as ApiErrorBody).error;
}

/** Polls operations.get until `done`, failing the test after `timeoutMs`. */
export async function pollOperation(tenant: SandboxTenant, name: string, timeoutMs = 5_000): Promise<Operation> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await getOperation(tenant, name);
    if (response.status !== 200) throw new Error(`operations.get answered ${response.status}`);
    const operation = response.body as Operation;
    if (operation.done === true) return operation;
    if (Date.now() > deadline) throw new Error(`operation ${name} not done after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Claims, asks for a signature over `data` and waits until the device answered; returns the finished resource. */
export async function claimAndSign(
  tenant: SandboxTenant,
  id: string,
  key: DeviceKey,
  data: Uint8Array = Buffer.from('certification request info'),
): Promise<CertificateProvisioningProcess> {
  const claimed = await claim(tenant, id);
  if (claimed.status !== 200) throw new Error(`claim answered ${claimed.status}`);
  const started = await signData(tenant, id, data, algorithmOf(key));
  if (started.status !== 200) throw new Error(`signData answered ${started.status}`);
  const operation = await pollOperation(tenant, (started.body as Operation).name);
  const process = operation.response?.certificateProvisioningProcess;
  if (process === undefined) throw new Error(`signData operation failed: ${JSON.stringify(operation.error)}`);
  return process;
}

export interface TestCa {
  readonly certificatePem: string;
  /** A leaf for `spkiDer` (embedded byte for byte), signed by this CA. */
  issueLeaf(spkiDer: Uint8Array, commonName?: string): Promise<string>;
}

/** A throwaway EC P-256 CA (cheap to generate, unlike RSA). */
export async function createTestCa(): Promise<TestCa> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await globalThis.crypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const caCertificate = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=Sandbox Test CA',
    keys,
    signingAlgorithm: algorithm,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  return {
    certificatePem: caCertificate.toString('pem'),
    async issueLeaf(spkiDer, commonName = 'sandbox device') {
      const leaf = await x509.X509CertificateGenerator.create({
        subject: `CN=${commonName}`,
        issuer: caCertificate.subject,
        publicKey: new Uint8Array(spkiDer),
        signingKey: keys.privateKey,
        signingAlgorithm: algorithm,
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 86_400_000),
      });
      return leaf.toString('pem');
    },
  };
}
