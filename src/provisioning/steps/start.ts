/**
 * Step `start`: get → finished already? → ours? → claim (once) → profile and key policy → build the
 * CertificationRequestInfo → signData exactly once. Resumes from the process resource: when `signData` is already
 * set (an earlier run, this replica before a crash, or another replica), it never asks again (DESIGN.md §1: signData
 * is one-shot).
 */
import { performance } from 'node:perf_hooks';
import { profileReferenceOf, type CertificateProvisioningProcess, type ClaimResult } from '../../chrome/types.ts';
import { ProcessNotFoundError } from '../../chrome/errors.ts';
import { TerminalError, UnclearResultError, describeError } from '../../errors.ts';
import { buildCertificationRequestInfo } from '../../pki/certification-request.ts';
import { parseDeviceKey } from '../../pki/device-key.ts';
import { chromeSignatureAlgorithm } from '../../chrome/signature-algorithm.ts';
import { decodeBase64, encodeBase64 } from '../../pki/pem.ts';
import { hashPersonal } from '../../observability/logger.ts';
import { underFirstLease } from '../../store/lease.ts';
import { ownershipOf } from '../ownership.ts';
import { holderOf } from '../inventory.ts';
import { renderProfile, templateVariables } from '../render-profile.ts';
import type { ProcessRun, StepResult } from '../step.ts';

/**
 * A `get` younger than this is the read right before signData. The read exists to catch another replica that asked
 * the device since: none can hold the lease while ours is held (checked on the monotonic clock right before
 * signData), so only a replica that lost its lease and still acts once could — and a fresh read leaves it no wider
 * window than a second read would. After a slow claim or a slow write of the claim, the resource is read again — but
 * only when such a replica can exist: a record under the first lease ever taken on it ({@link underFirstLease}) has
 * had no other holder, so nobody but this replica can have asked the device.
 */
const FRESH_READ_MS = 1_000;

/** Everything after claim that can make a process of ours impossible, checked before any device or CA is involved. */
function resolveWork(run: ProcessRun, process: CertificateProvisioningProcess, caName: string) {
  const { config } = run.deps;
  const profileName = profileReferenceOf(process);
  const profile = profileName === undefined ? undefined : config.profiles.get(profileName);
  if (profileName === undefined || profile === undefined) {
    throw new TerminalError(`unknown profile reference "${profileName ?? '(none)'}"`, {
      reason: 'unknown_profile',
      details: { profile: profileName ?? '(none)' },
    });
  }
  if (!profile.caConnections.includes(caName)) {
    throw new TerminalError(
      `profile "${profileName}" is not enabled for CA connection "${caName}" (profiles.${profileName}.caConnections)`,
      {
        reason: 'unknown_profile',
        details: { profile: profileName, connection: caName },
      },
    );
  }
  if (process.subjectPublicKeyInfo === undefined || process.subjectPublicKeyInfo === '') {
    throw new TerminalError('process carries no subjectPublicKeyInfo', {
      reason: 'unsupported_process',
    });
  }
  const spkiDer = decodeBase64(process.subjectPublicKeyInfo);
  const deviceKey = parseDeviceKey(spkiDer);
  return { profile, spkiDer, deviceKey };
}

/**
 * Claims the process unless this replica set's record says it did already. False when the claim was refused (not
 * ours to touch, let alone fail).
 */
async function claimOnce(run: ProcessRun, process: CertificateProvisioningProcess): Promise<StepResult | undefined> {
  const { chrome, config, metrics } = run.deps;
  const { ctx, ref } = run;
  if (run.record.claimedAt !== undefined) {
    ctx.log.debug({ claimedAt: run.record.claimedAt }, 'claimed before; not claiming again');
    return undefined;
  }
  let claim: ClaimResult;
  try {
    claim = await chrome.claim(ref, config.instanceId, ctx);
  } catch (error) {
    if (!(error instanceof TerminalError) || error instanceof ProcessNotFoundError) throw error;
    // Only the claimant may fail a process. A claim refused for a reason the API does not spell as "claimed by
    // another instance" is still not ours: acknowledge without setFailure, and say so loudly for the operator.
    metrics.claims.inc({ outcome: 'refused' });
    ctx.log.error({ error: describeError(error) }, 'claim refused; acknowledging the process without setFailure');
    return { kind: 'done', outcome: 'skipped', reason: 'claim_refused' };
  }
  if (!claim.claimed) {
    metrics.claims.inc({ outcome: 'refused' });
    ctx.log.info({ detail: claim.detail }, 'process is claimed by another adapter instance; acknowledging it');
    return { kind: 'done', outcome: 'skipped', reason: 'claimed_elsewhere' };
  }
  if (process.signData !== undefined) {
    // Someone claimed this process before and asked the device; Google accepted our claim again, so it was this
    // callerInstanceId (a record lost with the memory store, or a crash before the claim was recorded). Google
    // documents no such repeat; README "Failure model" names the assumption, and this counter makes it visible.
    metrics.claims.inc({ outcome: 'repeated' });
    ctx.log.warn(
      { instanceId: config.instanceId },
      'claim accepted again for a process this instance id claimed before',
    );
  } else {
    metrics.claims.inc({ outcome: 'won' });
  }
  // Recorded at once, before anything else can fail or the replica die: a resumed process must not claim again.
  await run.persist({ claimedAt: run.now() });
  return undefined;
}

export async function startStep(run: ProcessRun): Promise<StepResult> {
  const { chrome, config } = run.deps;
  const { ctx, ref } = run;

  // A missing process (ProcessNotFoundError) is skipped by the engine, in every step.
  const process = await chrome.get(ref, ctx);
  const readAt = performance.now();
  if (process.issuedCertificate !== undefined || process.failureMessage !== undefined) {
    return { kind: 'done', outcome: 'skipped', reason: 'already_finished' };
  }

  const owner = ownershipOf(process, config, run.deps.cas);
  if (!owner.ours) {
    // Another adapter's process (or a SCEP connector's): never claimed, never failed, acknowledged.
    run.deps.metrics.countNotOurs(owner.reference, owner.why);
    ctx.log.info(
      { reference: owner.reference, why: owner.why },
      'process belongs to another adapter (CA connection reference not configured here, or SCEP); acknowledging it untouched',
    );
    return { kind: 'done', outcome: 'skipped', reason: 'not_ours' };
  }
  const caName = owner.caConnection;

  const refused = await claimOnce(run, process);
  if (refused !== undefined) return refused;

  const { profile, spkiDer, deviceKey } = resolveWork(run, process, caName);
  const vars = templateVariables(process, ref);
  const rendered = renderProfile(profile, vars, deviceKey.type);
  const base = {
    caConnection: caName,
    profile: profile.name,
    spki: encodeBase64(spkiDer),
    rendered,
    holder: holderOf(process),
  };
  // The signature deadline counts from this signData (a full chrome.signatureTimeout each time the device is asked).
  const sentAt = run.now();
  const waitForSignature = (operation?: string, unclear = false): StepResult => ({
    kind: 'wait',
    step: 'await_signature',
    delayMs: config.scheduler.signaturePollInitialMs,
    patch: {
      ...base,
      ...(operation === undefined ? {} : { signDataOperation: operation }),
      signDataAt: sentAt,
      signatureDeadline: sentAt + config.chrome.signatureTimeoutMs,
      // Unclear results count against scheduler.maxAttempts: a device is not asked again without end.
      attempts: unclear ? run.record.attempts + 1 : 0,
    },
  });

  // Resume: the device was already asked. Its bytes, not a re-rendering, will go into the CSR.
  if (process.signData !== undefined) {
    ctx.log.info(
      { resumed: true, hasSignature: process.signature !== undefined },
      'signData already requested; resuming',
    );
    // Keep the deadline of the signData that took effect when the record knows it; else count from now.
    const deadline = run.record.signatureDeadline ?? sentAt + config.chrome.signatureTimeoutMs;
    return process.signature === undefined
      ? {
          ...waitForSignature(),
          patch: { ...base, signDataAt: run.record.signDataAt ?? sentAt, signatureDeadline: deadline, attempts: 0 },
        }
      : { kind: 'next', step: 'await_signature', patch: { ...base, signatureDeadline: deadline } };
  }

  const info = buildCertificationRequestInfo({
    subject: rendered.subject,
    subjectAltNames: rendered.subjectAltNames,
    spkiDer,
  });

  // Right before the one-shot call: are we still the lease holder, and has nobody asked the device meanwhile?
  // (Google accepts no fencing token; this narrows the window a paused replica could act in. docs/failure-model.md.)
  run.lease.assertHeld(ref.processId, run.deps.replicaId);
  if (!underFirstLease(run.record) && performance.now() - readAt > FRESH_READ_MS) {
    const fresh = await chrome.get(ref, ctx);
    if (fresh.signData !== undefined || fresh.issuedCertificate !== undefined || fresh.failureMessage !== undefined) {
      ctx.log.warn('process changed between claim and signData (another replica?); resuming from the resource');
      return { kind: 'next', step: 'start' };
    }
    run.lease.assertHeld(ref.processId, run.deps.replicaId);
  }

  try {
    const operation = await chrome.signData(ref, info, chromeSignatureAlgorithm(deviceKey), ctx);
    ctx.log.info(
      {
        operation: operation.name,
        keyType: deviceKey.type,
        profile: profile.name,
        caConnection: caName,
        user: hashPersonal(process.chromeOsUserSession?.userPrimaryEmail),
      },
      'asked the device for its proof-of-possession signature',
    );
    return waitForSignature(operation.name);
  } catch (error) {
    if (!(error instanceof UnclearResultError)) throw error;
    // The request may have reached Google. Resending could make the device fail the process, so never resend:
    // follow the process resource instead. If it shows no signData once the request can no longer be in flight,
    // the device is asked again with a full deadline (await-signature.ts).
    ctx.log.warn({ error: error.message }, 'signData result unclear; not resending, following the process resource');
    return waitForSignature(undefined, true);
  }
}
