/**
 * Step `await_signature`: wait (without holding anything) until the device has signed, then verify the proof of
 * possession and assemble the PKCS#10 CSR from the exact bytes the device signed (DESIGN.md §1).
 */
import { TerminalError } from '../../errors.ts';
import { assembleCertificationRequest, parseCertificationRequestInfo } from '../../pki/certification-request.ts';
import { parseDeviceKey } from '../../pki/device-key.ts';
import { decodeBase64, encodeBase64 } from '../../pki/pem.ts';
import { verifyProofOfPossession } from '../../pki/proof-of-possession.ts';
import { signaturePollDelay } from '../../backoff.ts';
import type { Config } from '../../config/load.ts';
import type { ProcessRecord } from '../../store/types.ts';
import type { ProcessRun, SignatureRead, StepResult } from '../step.ts';

/**
 * Reads the signed process: from the operation when we know it (it also reports a device refusal), else the resource.
 * `not-asked`: the resource carries no `signData` at all — the device was never asked (an unclear signData that did
 * not reach the service).
 */
export async function signedProcess(run: Pick<ProcessRun, 'deps' | 'record' | 'ref' | 'ctx'>): Promise<SignatureRead> {
  const { chrome } = run.deps;
  const name = run.record.signDataOperation;
  if (name !== undefined) {
    const operation = await chrome.getOperation(name, run.ctx);
    if (operation.done !== true) return 'waiting';
    if (operation.error !== undefined) {
      run.ctx.log.warn({ code: operation.error.code, detail: operation.error.message }, 'the device refused to sign');
      return 'refused';
    }
    const fromOperation = operation.response?.certificateProvisioningProcess;
    if (fromOperation?.signature !== undefined && fromOperation.signData !== undefined) return fromOperation;
  }
  const process = await chrome.get(run.ref, run.ctx);
  if (process.issuedCertificate !== undefined) return process;
  if (process.failureMessage !== undefined) return 'refused';
  if (process.signData === undefined) return 'not-asked';
  return process.signature !== undefined ? process : 'waiting';
}

/** When the last signData was sent: recorded, or (records of older versions) derived from the deadline. */
export function signDataSentAt(record: ProcessRecord, config: Config, now: number): number {
  if (record.signDataAt !== undefined) return record.signDataAt;
  return (record.signatureDeadline ?? now) - config.chrome.signatureTimeoutMs;
}

/** The wait before the next check of a device that has not signed yet: the poll backoff, never past the deadline. */
export function nextSignatureCheckMs(record: ProcessRecord, config: Config, now: number): number {
  const delay = signaturePollDelay(
    { initialMs: config.scheduler.signaturePollInitialMs, maxMs: config.scheduler.signaturePollMaxMs },
    now - signDataSentAt(record, config, now),
  );
  return Math.min(delay, Math.max(0, (record.signatureDeadline ?? now) - now));
}

/** The read of this check: made ahead without the lease (its error rethrown here), or now. */
async function readSignature(run: ProcessRun): Promise<SignatureRead> {
  const ahead = run.readAhead;
  if (ahead === undefined) return signedProcess(run);
  if ('error' in ahead) throw ahead.error;
  return ahead.read;
}

export async function awaitSignatureStep(run: ProcessRun): Promise<StepResult> {
  const { config } = run.deps;
  const { record } = run;
  const result = await readSignature(run);
  const sentAt = signDataSentAt(record, config, run.now());
  const waited = run.now() - sentAt;

  if (result === 'refused') {
    // The process already carries the device's failure; setFailure would change nothing.
    return { kind: 'done', outcome: 'failed', reason: 'device_refused' };
  }
  if (result === 'not-asked') {
    // signData's result was unclear (a 5xx, a reset, a timeout) and the process shows no signData: the request has
    // not taken effect. Once it can no longer be in flight (twice the request timeout), asking again is safe and is
    // what DESIGN.md §5 prescribes ("read the process back, then decide"); before that, keep looking. The device was
    // never asked, so no signature deadline runs: the next signData starts a full one.
    const inFlightFor = 2 * config.chrome.requestTimeoutMs;
    if (waited >= inFlightFor) {
      if (record.attempts >= config.scheduler.maxAttempts) {
        throw new TerminalError('signData never took effect after scheduler.maxAttempts unclear attempts', {
          reason: 'retries_exhausted',
        });
      }
      run.ctx.log.warn(
        { waitedMs: waited },
        'the unclear signData request never reached the process; asking the device again',
      );
      return { kind: 'next', step: 'start' };
    }
    const delay = signaturePollDelay(
      { initialMs: config.scheduler.signaturePollInitialMs, maxMs: config.scheduler.signaturePollMaxMs },
      waited,
    );
    return {
      kind: 'wait',
      step: 'await_signature',
      delayMs: Math.min(delay, Math.max(0, sentAt + inFlightFor - run.now())),
    };
  }
  if (result === 'waiting') {
    const deadline = record.signatureDeadline ?? run.now();
    if (run.now() >= deadline) {
      throw new TerminalError('the device did not sign within chrome.signatureTimeout', {
        reason: 'signature_timeout',
      });
    }
    return { kind: 'wait', step: 'await_signature', delayMs: nextSignatureCheckMs(record, config, run.now()) };
  }
  if (result.issuedCertificate !== undefined) {
    return { kind: 'done', outcome: 'skipped', reason: 'already_finished' };
  }

  const spkiDer = decodeBase64(record.spki ?? result.subjectPublicKeyInfo ?? '');
  const deviceKey = parseDeviceKey(spkiDer);
  // The exact bytes the device signed — taken from the resource, never re-rendered or re-encoded.
  const info = decodeBase64(result.signData ?? '');
  const signedSpki = parseCertificationRequestInfo(info).spkiDer;
  if (!Buffer.from(signedSpki).equals(spkiDer)) {
    throw new TerminalError('the signed CertificationRequestInfo carries a different public key than the process', {
      reason: 'bad_signature',
    });
  }
  const signatureDer = verifyProofOfPossession({
    spkiDer,
    data: info,
    signature: decodeBase64(result.signature ?? ''),
    keyType: deviceKey.type,
  });
  const csr = assembleCertificationRequest(info, deviceKey.type, signatureDer);
  if (waited >= 0) run.deps.metrics.signatureWait.observe(waited / 1000);
  run.ctx.log.info('proof of possession verified; CSR assembled');
  return { kind: 'next', step: 'issue', patch: { csr: encodeBase64(csr), attempts: 0 } };
}
