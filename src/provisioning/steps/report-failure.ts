/**
 * Step `report_failure`: setFailure with the short user message (correlation id included). Safe to repeat, but never
 * repeated on a process that finished: resumed under a new lease, it reads the process first.
 */
import { TerminalError } from '../../errors.ts';
import { finishedProcess, type ProcessRun, type StepResult } from '../step.ts';

export async function reportFailureStep(run: ProcessRun): Promise<StepResult> {
  const failure = run.record.failure;
  if (failure === undefined)
    throw new Error(`process ${run.record.processId} reached report_failure without a failure`);
  if (run.freshLease && (await finishedProcess(run)) !== undefined) {
    run.ctx.log.info('resumed failure report: the process has finished already; setFailure not needed');
    return { kind: 'done', outcome: 'failed', reason: failure.reason };
  }
  try {
    await run.deps.chrome.setFailure(run.ref, failure.userMessage, run.ctx);
  } catch (error) {
    if (!(error instanceof TerminalError)) throw error;
    const process = await run.deps.chrome.get(run.ref, run.ctx);
    if (process.failureMessage === undefined && process.issuedCertificate === undefined) throw error;
    run.ctx.log.info('process already finished; setFailure not needed');
  }
  return { kind: 'done', outcome: 'failed', reason: failure.reason };
}
