/**
 * One remote call's abort signal: it aborts when the caller's signal does, or after `timeoutMs` with a
 * `TimeoutError`. One controller and one timer that `dispose` clears as soon as the attempt ends. AbortSignal.timeout's
 * timer cannot be cleared (it outlives the response by the whole timeout), and AbortSignal.any adds weak references
 * and finalization cells: with thousands of requests a minute both stayed on the heap by the tens of thousands.
 */
export interface AttemptDeadline {
  readonly signal: AbortSignal;
  /** True once the timeout (not the caller) aborted the attempt. */
  readonly timedOut: boolean;
  /** Clears the timer and stops listening to the caller's signal; call it when the attempt ends, however it ends. */
  dispose(): void;
}

export function attemptDeadline(timeoutMs: number, caller?: AbortSignal): AttemptDeadline {
  const attempt = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    attempt.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError'));
  }, timeoutMs);
  const callerAborted = (): void => attempt.abort(caller?.reason);
  if (caller?.aborted === true) callerAborted();
  else caller?.addEventListener('abort', callerAborted, { once: true });
  return {
    signal: attempt.signal,
    get timedOut() {
      return timedOut;
    },
    dispose() {
      clearTimeout(timer);
      caller?.removeEventListener('abort', callerAborted);
    },
  };
}
