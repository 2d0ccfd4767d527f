/**
 * The cost floor: what any adapter must do for one certificate, and nothing else — the same Chrome API round trips
 * to the same sandbox (get, claim, signData, operations.get until the device signed, uploadCertificate), one
 * proof-of-possession verification, the CSR assembly, one CA signature (the same local CA backend). No store, no
 * scheduler, no retries, no metrics, no logs: the benchmark divides the adapter's figures by these.
 */
import type { CertificateAuthority } from '../../src/ca/types.ts';
import type { CertificateProvisioningProcess, Operation } from '../../src/chrome/types.ts';
import type { CompiledProfile } from '../../src/config/load.ts';
import type { Logger } from '../../src/observability/logger.ts';
import { assembleCertificationRequest, buildCertificationRequestInfo } from '../../src/pki/certification-request.ts';
import { chromeSignatureAlgorithm } from '../../src/chrome/signature-algorithm.ts';
import { parseDeviceKey } from '../../src/pki/device-key.ts';
import { decodeBase64, encodeBase64 } from '../../src/pki/pem.ts';
import { verifyProofOfPossession } from '../../src/pki/proof-of-possession.ts';
import { profileReferenceOf } from '../../src/chrome/types.ts';
import { renderProfile, templateVariables } from '../../src/provisioning/render-profile.ts';

export interface FloorOptions {
  readonly endpoint: string;
  readonly customer: string;
  readonly ca: CertificateAuthority;
  readonly profiles: ReadonlyMap<string, CompiledProfile>;
  /** Processes worked on at once (the adapter's scheduler.maxConcurrent). */
  readonly concurrency: number;
  /** Delay before the first signature check, then between checks (the adapter's first poll delay). */
  readonly pollMs: number;
  readonly log: Logger;
}

async function call<T>(url: string, body?: unknown): Promise<T> {
  const response = await fetch(url, {
    method: body === undefined ? 'GET' : 'POST',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!response.ok) throw new Error(`${url} → ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function provisionOne(options: FloorOptions, processId: string): Promise<void> {
  const ref = { customer: options.customer, processId };
  const base = `${options.endpoint}/v1/customers/${options.customer}/certificateProvisioningProcesses/${processId}`;
  const process = await call<CertificateProvisioningProcess>(base);
  await call(`${base}:claim`, { callerInstanceId: 'floor' });
  const spkiDer = decodeBase64(process.subjectPublicKeyInfo ?? '');
  const deviceKey = parseDeviceKey(spkiDer);
  const profile = options.profiles.get(profileReferenceOf(process) ?? '');
  if (profile === undefined) throw new Error(`floor: no profile for process ${processId}`);
  const rendered = renderProfile(profile, templateVariables(process, ref), deviceKey.type);
  const info = buildCertificationRequestInfo({
    subject: rendered.subject,
    subjectAltNames: rendered.subjectAltNames,
    spkiDer,
  });
  const operation = await call<Operation>(`${base}:signData`, {
    signData: encodeBase64(info),
    signatureAlgorithm: chromeSignatureAlgorithm(deviceKey),
  });
  let signed: CertificateProvisioningProcess | undefined;
  while (signed === undefined) {
    await sleep(options.pollMs);
    const current = await call<Operation>(`${options.endpoint}/v1/${operation.name}`);
    if (current.done === true) signed = current.response?.certificateProvisioningProcess;
  }
  const signatureDer = verifyProofOfPossession({
    spkiDer,
    data: info,
    signature: decodeBase64(signed.signature ?? ''),
    keyType: deviceKey.type,
  });
  const csrDer = assembleCertificationRequest(info, deviceKey.type, signatureDer);
  const result = await options.ca.issue(
    {
      processId,
      correlationId: processId,
      caConnection: options.ca.name,
      csrDer,
      spkiDer,
      deviceKey,
      profile: rendered,
      priorAttempts: 0,
    },
    { signal: AbortSignal.timeout(60_000), log: options.log },
  );
  if (result.status !== 'issued') throw new Error(`floor: CA answered ${result.status}`);
  await call(`${base}:uploadCertificate`, { certificatePem: result.certificatePem });
}

/** Provisions every process with `concurrency` workers; resolves when all are done. */
export async function runFloor(options: FloorOptions, ids: readonly string[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++] as string;
      await provisionOne(options, id);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, ids.length) }, worker));
}
