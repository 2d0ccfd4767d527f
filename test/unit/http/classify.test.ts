import { describe, expect, it } from 'vitest';
import { DeploymentFaultError, RetryableError, UnclearResultError } from '../../../src/errors.ts';
import { classifyTransportFailure, isNothingApplied, transportErrorCode } from '../../../src/http/classify.ts';

/** The shape undici gives a failed fetch: `TypeError('fetch failed')` whose cause carries the socket error code. */
function fetchFailed(code: string, message = `connect ${code}`): TypeError {
  return new TypeError('fetch failed', { cause: Object.assign(new Error(message), { code }) });
}

const context = {
  api: 'test',
  operation: 'sign',
  component: 'digicert',
  timeoutMs: 1_000,
  timedOut: false,
} as const;

describe('classifyTransportFailure', () => {
  it.each([
    ['connection refused', fetchFailed('ECONNREFUSED')],
    ['DNS name not found', fetchFailed('ENOTFOUND', 'getaddrinfo ENOTFOUND api.example')],
    ['DNS temporarily failing', fetchFailed('EAI_AGAIN', 'getaddrinfo EAI_AGAIN api.example')],
    ['connect timeout', fetchFailed('UND_ERR_CONNECT_TIMEOUT')],
    [
      'every address refused (happy eyeballs)',
      new TypeError('fetch failed', {
        cause: new AggregateError([
          Object.assign(new Error('a'), { code: 'ECONNREFUSED' }),
          Object.assign(new Error('b'), { code: 'ECONNREFUSED' }),
        ]),
      }),
    ],
  ])('%s on an unsafe call: retryable, nothing applied (may be resent)', (_name, error) => {
    const failure = classifyTransportFailure(error, { ...context, safeToRepeat: false });
    expect(failure.statusClass).toBe('network');
    expect(failure.error).toBeInstanceOf(RetryableError);
    expect(failure.error).not.toBeInstanceOf(UnclearResultError);
    expect(isNothingApplied(failure.error)).toBe(true);
  });

  it.each([
    ['a reset', fetchFailed('ECONNRESET', 'read ECONNRESET')],
    ['the other side closing', fetchFailed('UND_ERR_SOCKET', 'other side closed')],
    [
      'addresses failing differently',
      new TypeError('fetch failed', {
        cause: new AggregateError([
          Object.assign(new Error('a'), { code: 'ECONNREFUSED' }),
          Object.assign(new Error('b'), { code: 'ECONNRESET' }),
        ]),
      }),
    ],
    ['an error without a code', new TypeError('terminated', { cause: new Error('body stream broke') })],
  ])('%s on an unsafe call: unclear (may have been applied)', (_name, error) => {
    const failure = classifyTransportFailure(error, { ...context, safeToRepeat: false });
    expect(failure.error).toBeInstanceOf(UnclearResultError);
    expect(isNothingApplied(failure.error)).toBe(false);
  });

  it('a reset on a safe call is plainly retryable', () => {
    const failure = classifyTransportFailure(fetchFailed('ECONNRESET'), { ...context, safeToRepeat: true });
    expect(failure.error.constructor).toBe(RetryableError);
  });

  it('an untrusted server certificate is a deployment fault of the component', () => {
    const failure = classifyTransportFailure(
      fetchFailed('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'),
      {
        ...context,
        safeToRepeat: true,
      },
    );
    expect(failure.error).toBeInstanceOf(DeploymentFaultError);
    expect((failure.error as DeploymentFaultError).component).toBe('digicert');
  });

  it.each([
    [true, RetryableError],
    [false, UnclearResultError],
  ])('a timeout (safe to repeat: %s) is %o, counted as timeout', (safeToRepeat, expected) => {
    const failure = classifyTransportFailure(new DOMException('timed out', 'TimeoutError'), {
      ...context,
      timedOut: true,
      safeToRepeat,
    });
    expect(failure.statusClass).toBe('timeout');
    expect(failure.error.constructor).toBe(expected);
  });

  it('puts the innermost message and the code into the error message', () => {
    const failure = classifyTransportFailure(fetchFailed('ECONNRESET', 'read ECONNRESET'), {
      ...context,
      safeToRepeat: true,
    });
    expect(failure.error.message).toBe('test sign → network failure (ECONNRESET: read ECONNRESET)');
  });
});

describe('transportErrorCode', () => {
  it('finds the code on the cause chain', () => {
    expect(transportErrorCode(fetchFailed('EHOSTUNREACH'))).toBe('EHOSTUNREACH');
    expect(transportErrorCode(new Error('plain'))).toBeUndefined();
  });
});
