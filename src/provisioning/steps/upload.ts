/**
 * Step `upload`: uploadCertificate with the leaf only. After an unclear result or a refusal, read
 * `issuedCertificate` back instead of guessing (DESIGN.md §5). Resumed under a new lease (a replica killed after
 * Google accepted the upload but before the record said so), it reads the process first and uploads only to a
 * process that has not finished.
 */
import { TerminalError, UnclearResultError } from '../../errors.ts';
import { recordIssued } from '../inventory.ts';
import { finishedProcess, type ProcessRun, type StepResult } from '../step.ts';

export async function uploadStep(run: ProcessRun): Promise<StepResult> {
  const { chrome } = run.deps;
  const pem = run.record.certificatePem;
  if (pem === undefined) throw new Error(`process ${run.record.processId} reached upload without a certificate`);
  // Into the inventory before the upload: a certificate that exists is never missing from it (DESIGN.md §9).
  await recordIssued(run.deps.store, run.record, pem, run.now(), run.ctx.log);
  if (run.freshLease) {
    const finished = await finishedProcess(run);
    if (finished?.issued === true) {
      run.ctx.log.info('resumed upload: the certificate is on the process already; not uploading again');
      return { kind: 'done', outcome: 'issued' };
    }
    if (finished?.failed === true) return { kind: 'done', outcome: 'failed', reason: 'device_refused' };
  }
  try {
    await chrome.uploadCertificate(run.ref, pem, run.ctx);
  } catch (error) {
    if (!(error instanceof UnclearResultError || error instanceof TerminalError)) throw error;
    // Did the upload land after all, or did the process finish for another reason?
    const process = await chrome.get(run.ref, run.ctx);
    if (process.issuedCertificate !== undefined) {
      run.ctx.log.info('upload result was unclear; the certificate is on the process');
      return { kind: 'done', outcome: 'issued' };
    }
    if (process.failureMessage !== undefined) return { kind: 'done', outcome: 'failed', reason: 'device_refused' };
    throw error;
  }
  run.ctx.log.info({ caConnection: run.record.caConnection }, 'certificate uploaded');
  return { kind: 'done', outcome: 'issued' };
}
