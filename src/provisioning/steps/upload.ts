/**
 * Step `upload`: uploadCertificate with the leaf only. After an unclear result or a refusal, read
 * `issuedCertificate` back instead of guessing (DESIGN.md §5).
 */
import { TerminalError, UnclearResultError } from '../../errors.ts';
import type { ProcessRun, StepResult } from '../step.ts';

export async function uploadStep(run: ProcessRun): Promise<StepResult> {
  const { chrome } = run.deps;
  const pem = run.record.certificatePem;
  if (pem === undefined) throw new Error(`process ${run.record.processId} reached upload without a certificate`);
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
