/**
 * Steps `issue` and `await_ca`: hand the verified CSR to the CA connection, follow a pending request, and check
 * the leaf before it goes anywhere (DESIGN.md §1: exactly one certificate whose SPKI equals the device key).
 *
 * Never two CA orders for one process (DESIGN.md §5): the intent (`issueAttempts + 1`) is written durably before
 * `issue`, the result right after; `priorAttempts` tells a non-idempotent backend to reconcile before ordering.
 */
import type { CaConnection } from '../../ca/connection.ts';
import type { IssueRequest, IssueResult, RenewedCertificate } from '../../ca/types.ts';
import { TerminalError } from '../../errors.ts';
import { certificateMatchesSpki } from '../../pki/certificate-builder.ts';
import { parseDeviceKey } from '../../pki/device-key.ts';
import { decodeBase64 } from '../../pki/pem.ts';
import { holderKeyOf } from '../../store/inventory.ts';
import type { ProcessRecord } from '../../store/types.ts';
import { finishedProcess, type ProcessRun, type StepResult } from '../step.ts';

function connectionOf(run: ProcessRun): CaConnection {
  const name = run.record.caConnection ?? '';
  const ca = run.deps.cas.get(name);
  if (ca === undefined) {
    throw new TerminalError(
      `CA connection "${name}" disappeared from the configuration while the process was in progress`,
      {
        reason: 'unknown_ca_connection',
        details: { connection: name },
      },
    );
  }
  return ca;
}

function issueRequest(record: ProcessRecord): IssueRequest {
  if (record.csr === undefined || record.spki === undefined || record.rendered === undefined) {
    throw new Error(`process record ${record.processId} reached step ${record.step} without csr/spki/profile`);
  }
  const spkiDer = decodeBase64(record.spki);
  return {
    processId: record.processId,
    correlationId: record.correlationId,
    caConnection: record.caConnection ?? '',
    csrDer: decodeBase64(record.csr),
    spkiDer,
    deviceKey: parseDeviceKey(spkiDer),
    profile: record.rendered,
    priorAttempts: Math.max(0, record.issueAttempts - record.issueResults),
    processCreatedAt: record.createdAt,
  };
}

/**
 * The certificate this process renews, for a CA that links renewals: the holder's active certificate of the same
 * profile from this connection that has not expired yet (the latest, if out-of-order writes left several). One
 * inventory query (the one recording the certificate makes too); undefined for a first issuance or a record without
 * a holder.
 */
async function renewedCertificate(run: ProcessRun, ca: CaConnection): Promise<RenewedCertificate | undefined> {
  const { record } = run;
  const profile = record.profile ?? record.rendered?.name;
  if (ca.ca.linksRenewals !== true || record.holder === undefined || profile === undefined) return undefined;
  const holder = holderKeyOf(record.holder);
  if (holder === 'unknown:') return undefined;
  // The query recordCertificate makes (one composite index: holderKey, profile, status); the rest is filtered here.
  const active = await run.deps.store.findCertificates({ holder, profile, status: 'active' });
  const now = run.now();
  const latest = active.filter((c) => c.caConnection === ca.name && c.notAfter > now).at(-1);
  if (latest === undefined) return undefined;
  return {
    serial: latest.serial,
    notAfter: latest.notAfter,
    ...(latest.caRef === undefined ? {} : { caRef: latest.caRef }),
  };
}

function onResult(run: ProcessRun, ca: CaConnection, request: IssueRequest, result: IssueResult): StepResult {
  const { record } = run;
  switch (result.status) {
    case 'issued': {
      if (!certificateMatchesSpki(result.certificatePem, request.spkiDer)) {
        run.ctx.log.error(
          { caConnection: ca.name, backend: ca.type },
          'CA returned a certificate for a different public key',
        );
        throw new TerminalError(
          `CA connection "${ca.name}" returned a certificate whose public key is not the device's`,
          {
            reason: 'ca_misbehaved',
          },
        );
      }
      run.deps.metrics.certificatesIssued.inc({ ca_connection: ca.name, backend: ca.type });
      return {
        kind: 'next',
        step: 'upload',
        // The CA's reference goes to the inventory with the certificate (revocation, renewal linkage).
        patch: {
          certificatePem: result.certificatePem,
          attempts: 0,
          ...(result.ref === undefined ? {} : { pendingRef: result.ref }),
        },
      };
    }
    case 'pending': {
      run.ctx.log.info(
        { caConnection: ca.name, ref: result.ref, retryAfterMs: result.retryAfterMs },
        'CA request pending',
      );
      const caDeadline = record.caDeadline ?? run.now() + run.deps.config.scheduler.caMaxWaitMs;
      return {
        kind: 'wait',
        step: 'await_ca',
        // Never sleep past the deadline: the order must be cancelled on time, not at the backend's next poll.
        delayMs: Math.max(0, Math.min(result.retryAfterMs, caDeadline - run.now())),
        patch: {
          pendingRef: result.ref,
          ...(result.lookupKey === undefined ? {} : { lookupKey: result.lookupKey }),
          caDeadline,
          attempts: 0,
        },
      };
    }
    case 'failed':
      run.ctx.log.warn({ caConnection: ca.name, detail: result.detail }, 'CA refused the request');
      throw new TerminalError(`CA connection "${ca.name}" refused: ${result.detail}`, {
        reason: 'ca_rejected',
        userMessage: result.userMessage,
      });
  }
}

export async function issueStep(run: ProcessRun): Promise<StepResult> {
  const ca = connectionOf(run);
  const base = issueRequest(run.record);
  if (run.freshLease) {
    // Resumed (a retry, or after a lost lease): a process that finished meanwhile needs no certificate at all.
    const finished = await finishedProcess(run);
    if (finished?.failed === true) return { kind: 'done', outcome: 'failed', reason: 'device_refused' };
    if (finished?.issued === true) return { kind: 'done', outcome: 'skipped', reason: 'already_finished' };
  }
  const renews = await renewedCertificate(run, ca);
  const request: IssueRequest = renews === undefined ? base : { ...base, renews };
  // Intent first: if we crash after the CA accepted the order, the next run sees priorAttempts > 0.
  const withIntent = await run.persist({ issueAttempts: run.record.issueAttempts + 1 });
  run.lease.assertHeld(run.ref.processId, run.deps.replicaId);
  const result = await ca.ca.issue(request, run.ctx);
  const step = onResult(run, ca, request, result);
  // The result is recorded with the step's own patch; issueResults catching up with issueAttempts clears the intent.
  const recorded = { issueResults: withIntent.issueAttempts, issueAttempts: withIntent.issueAttempts };
  return step.kind === 'done' ? step : { ...step, patch: { ...step.patch, ...recorded } };
}

export async function awaitCaStep(run: ProcessRun): Promise<StepResult> {
  const ca = connectionOf(run);
  const request = issueRequest(run.record);
  const ref = run.record.pendingRef;
  const pending = ca.abilities.pending;
  if (ref === undefined || pending === undefined) {
    throw new Error(`process ${run.record.processId} waits on CA connection "${ca.name}" without a pending reference`);
  }
  const deadline = run.record.caDeadline;
  const chromeProcess = await run.deps.chrome.get(run.ref, run.ctx);
  const giveUp =
    chromeProcess.failureMessage !== undefined
      ? 'the Chrome process failed while the CA request was pending'
      : deadline !== undefined && run.now() >= deadline
        ? 'the CA request stayed pending longer than scheduler.caMaxWait'
        : undefined;
  if (giveUp !== undefined) {
    // Nobody will install this certificate: withdraw the order so nobody pays for it.
    await pending.cancel(ref, giveUp, run.ctx);
    run.ctx.log.warn({ caConnection: ca.name, ref }, `cancelled the pending CA request: ${giveUp}`);
    if (chromeProcess.failureMessage !== undefined)
      return { kind: 'done', outcome: 'failed', reason: 'device_refused' };
    throw new TerminalError(giveUp, {
      reason: 'ca_timeout',
    });
  }
  return onResult(run, ca, request, await pending.poll(ref, request, run.ctx));
}
