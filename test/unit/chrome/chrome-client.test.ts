import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StepContext } from '../../../src/ca/types.ts';
import { ChromeClient, chromeRateLimiter } from '../../../src/chrome/client.ts';
import { MemoryProcessStore } from '../../../src/store/memory.ts';
import { ProcessNotFoundError } from '../../../src/chrome/errors.ts';
import {
  CERTPROV_SCOPE,
  caConnectionReferenceOf,
  profileReferenceOf,
  type ProcessRef,
} from '../../../src/chrome/types.ts';
import { DeploymentFaultError, RetryableError, TerminalError, UnclearResultError } from '../../../src/errors.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { googleError, ScriptedServer, type ScriptEntry } from '../http/scripted-server.ts';

const TOKEN = 'ya29.chrome-test-token-abcdef';
const REF: ProcessRef = { customer: 'my_customer', processId: 'proc-1' };
const PROCESS_PATH = '/v1/customers/my_customer/certificateProvisioningProcesses/proc-1';
const OPERATION_NAME = 'customers/my_customer/certificateProvisioningProcesses/proc-1/operations/op-7';
const SIGN_BYTES = new Uint8Array([0x30, 0x82, 0x01, 0x0a, 0xde, 0xad, 0xbe, 0xef, 0x42]);
const SIGN_BASE64 = Buffer.from(SIGN_BYTES).toString('base64');
const PEM =
  '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUZmFrZS1jZXJ0LWZvci10ZXN0cw==\n-----END CERTIFICATE-----\n';

let server: ScriptedServer;
let metrics: Metrics;
let logLines: string[];
let sleeps: number[];
let ctx: StepContext;

beforeEach(async () => {
  server = await ScriptedServer.start();
  metrics = new Metrics({ defaultMetrics: false });
  logLines = [];
  sleeps = [];
  const log = createLogger({ level: 'trace', destination: { write: (line: string) => void logLines.push(line) } });
  ctx = { signal: new AbortController().signal, log };
});

afterEach(async () => {
  await server.close();
});

function chrome(): ChromeClient {
  return new ChromeClient({
    endpoint: server.url,
    requestTimeoutMs: 2_000,
    metrics,
    log: ctx.log,
    authHeaders: () => Promise.resolve({ authorization: `Bearer ${TOKEN}` }),
    retry: { attempts: 3, initialDelayMs: 1, maxDelayMs: 5 },
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
  });
}

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to fail');
}

function sentJson(index = 0): unknown {
  return JSON.parse(server.requests[index]?.body ?? 'null');
}

describe('ChromeClient: the six calls on the wire', () => {
  it.each([
    [
      'nested (current)',
      {
        genericCaConnection: { caConnectionAdapterConfigReference: 'ca1' },
        genericProfile: { profileAdapterConfigReference: 'p1' },
      },
    ],
    ['flat (older revision)', { caConnectionAdapterConfigReference: 'ca1', profileAdapterConfigReference: 'p1' }],
  ])('get returns the resource in the %s shape', async (_shape, references) => {
    server.script({
      status: 200,
      json: {
        name: PROCESS_PATH.slice(4),
        subjectPublicKeyInfo: 'MFkw',
        chromeOsDevice: { deviceDirectoryApiId: 'd1' },
        ...references,
      },
    });
    const process = await chrome().get(REF, ctx);
    expect(server.requests[0]).toMatchObject({ method: 'GET', url: PROCESS_PATH });
    expect(server.requests[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(caConnectionReferenceOf(process)).toBe('ca1');
    expect(profileReferenceOf(process)).toBe('p1');
    expect(process.chromeOsDevice?.deviceDirectoryApiId).toBe('d1');
  });

  it('claim posts the caller instance id and reports success', async () => {
    server.script({ status: 200, json: {} });
    await expect(chrome().claim(REF, 'certprov-prod', ctx)).resolves.toEqual({ claimed: true });
    expect(server.requests[0]).toMatchObject({ method: 'POST', url: `${PROCESS_PATH}:claim` });
    expect(sentJson()).toEqual({ callerInstanceId: 'certprov-prod' });
  });

  it('signData posts base64 bytes and the algorithm, and returns the operation', async () => {
    const operation = {
      name: OPERATION_NAME,
      metadata: { '@type': 'type.googleapis.com/google.chrome.management.versions.v1.SignDataMetadata' },
    };
    server.script({ status: 200, json: operation });
    const result = await chrome().signData(REF, SIGN_BYTES, 'SIGNATURE_ALGORITHM_ECDSA_SHA256', ctx);
    expect(result).toEqual(operation);
    expect(server.requests[0]).toMatchObject({ method: 'POST', url: `${PROCESS_PATH}:signData` });
    expect(sentJson()).toEqual({ signData: SIGN_BASE64, signatureAlgorithm: 'SIGNATURE_ALGORITHM_ECDSA_SHA256' });
  });

  it.each([
    ['still running', { name: OPERATION_NAME, metadata: {} }],
    [
      'done with the signed process',
      {
        name: OPERATION_NAME,
        done: true,
        response: { certificateProvisioningProcess: { signature: 'c2ln', signData: SIGN_BASE64 } },
      },
    ],
    ['done with an error', { name: OPERATION_NAME, done: true, error: { code: 3, message: 'invalid signature' } }],
  ])('getOperation reads the operation by name (%s)', async (_state, operation) => {
    server.script({ status: 200, json: operation });
    await expect(chrome().getOperation(OPERATION_NAME, ctx)).resolves.toEqual(operation);
    expect(server.requests[0]).toMatchObject({ method: 'GET', url: `/v1/${OPERATION_NAME}` });
  });

  it('uploadCertificate posts the PEM', async () => {
    server.script({ status: 200, json: {} });
    await chrome().uploadCertificate(REF, PEM, ctx);
    expect(server.requests[0]).toMatchObject({ method: 'POST', url: `${PROCESS_PATH}:uploadCertificate` });
    expect(sentJson()).toEqual({ certificatePem: PEM });
  });

  it('setFailure posts the error message', async () => {
    server.script({ status: 200, json: {} });
    await chrome().setFailure(REF, 'The CA could not issue the certificate. (ref 1a2b)', ctx);
    expect(server.requests[0]).toMatchObject({ method: 'POST', url: `${PROCESS_PATH}:setFailure` });
    expect(sentJson()).toEqual({ errorMessage: 'The CA could not issue the certificate. (ref 1a2b)' });
  });

  it('encodes ids as single path segments', async () => {
    server.script({ status: 200, json: {} });
    await chrome().get({ customer: 'C0 1', processId: 'a/b?c' }, ctx);
    expect(server.requests[0]?.url).toBe('/v1/customers/C0%201/certificateProvisioningProcesses/a%2Fb%3Fc');
  });

  it.each([
    ['a process id of ".."', () => chrome().get({ customer: 'my_customer', processId: '..' }, ctx)],
    ['an empty customer', () => chrome().get({ customer: '', processId: 'p' }, ctx)],
    ['an operation name climbing out', () => chrome().getOperation('customers/x/../../admin', ctx)],
    ['an absolute operation name', () => chrome().getOperation('/customers/x/operations/1', ctx)],
  ])('refuses %s without sending anything', async (_name, call) => {
    const error = await failureOf(call());
    expect(error).toBeInstanceOf(TerminalError);
    expect(server.requests).toHaveLength(0);
  });
});

describe('ChromeClient: claim refused by another adapter instance', () => {
  it.each([
    [
      'the message says it',
      googleError(400, 'FAILED_PRECONDITION', 'The process is already claimed by another adapter instance.'),
    ],
    [
      'an ErrorInfo reason says it',
      googleError(400, 'FAILED_PRECONDITION', 'Precondition check failed.', [
        {
          '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
          reason: 'ALREADY_CLAIMED',
          domain: 'chromemanagement.googleapis.com',
        },
      ]),
    ],
  ])('is {claimed: false} when %s', async (_how, body) => {
    server.script({ status: 400, json: body });
    const result = await chrome().claim(REF, 'certprov-prod', ctx);
    expect(result.claimed).toBe(false);
    expect(result.claimed === false && result.detail).toMatch(/^chrome claim → 400 FAILED_PRECONDITION/);
    expect(server.requests).toHaveLength(1);
  });

  it.each([
    [
      'an INVALID_ARGUMENT',
      { status: 400, json: googleError(400, 'INVALID_ARGUMENT', 'callerInstanceId must be set.') },
    ],
    ['a bare 400', { status: 400, text: '' }],
  ] satisfies [string, ScriptEntry][])('is a TerminalError (chrome_rejected) for %s', async (_what, step) => {
    server.script(step);
    const error = await failureOf(chrome().claim(REF, 'certprov-prod', ctx));
    expect(error).toBeInstanceOf(TerminalError);
    expect((error as TerminalError).reason).toBe('chrome_rejected');
    expect(server.requests).toHaveLength(1);
  });

  it('does not read "already claimed" into other calls', async () => {
    server.script({
      status: 400,
      json: googleError(400, 'FAILED_PRECONDITION', 'The process is already claimed by another adapter instance.'),
    });
    const error = await failureOf(chrome().setFailure(REF, 'x', ctx));
    expect(error).toBeInstanceOf(TerminalError);
  });
});

describe('ChromeClient: error classification', () => {
  it('a missing process (404 NOT_FOUND) is ProcessNotFoundError, not retried', async () => {
    server.script({ status: 404, json: googleError(404, 'NOT_FOUND', 'Requested entity was not found.') });
    const error = await failureOf(chrome().get(REF, ctx));
    expect(error).toBeInstanceOf(ProcessNotFoundError);
    expect((error as ProcessNotFoundError).errorClass).toBe('terminal');
    expect(server.requests).toHaveLength(1);
  });

  it('a 404 that is not Google’s NOT_FOUND (wrong endpoint) is a deployment fault, not a skipped process', async () => {
    server.script({ status: 404, text: '<!DOCTYPE html><title>Error 404 (Not Found)</title>' });
    const error = await failureOf(chrome().get(REF, ctx));
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect(error).not.toBeInstanceOf(ProcessNotFoundError);
  });

  it.each([
    [401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.'],
    [403, 'PERMISSION_DENIED', 'The caller does not have permission'],
  ])('%i is a chrome deployment fault whose hint names the scope', async (status, code, message) => {
    server.script({ status, json: googleError(status, code, message) });
    const error = (await failureOf(chrome().claim(REF, 'certprov-prod', ctx))) as DeploymentFaultError;
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect(error.component).toBe('chrome');
    expect(error.hint).toContain(CERTPROV_SCOPE);
    expect(error.message).toBe(`chrome claim → ${status} ${code}: ${message}`);
    expect(server.requests).toHaveLength(1);
  });

  it.each([
    ['400 INVALID_ARGUMENT', 400, 'INVALID_ARGUMENT'],
    ['400 FAILED_PRECONDITION', 400, 'FAILED_PRECONDITION'],
    ['409 ALREADY_EXISTS', 409, 'ALREADY_EXISTS'],
  ])('%s on uploadCertificate is terminal (chrome_rejected)', async (_name, status, code) => {
    server.script({ status, json: googleError(status, code, 'Rejected.') });
    const error = await failureOf(chrome().uploadCertificate(REF, PEM, ctx));
    expect(error).toBeInstanceOf(TerminalError);
    expect((error as TerminalError).reason).toBe('chrome_rejected');
  });

  it('409 ABORTED on a safe call is retried and succeeds', async () => {
    server.script(
      { status: 409, json: googleError(409, 'ABORTED', 'Concurrent modification.') },
      { status: 200, json: {} },
    );
    await chrome().setFailure(REF, 'x', ctx);
    expect(server.requests).toHaveLength(2);
  });

  it('409 ABORTED on signData is retryable but not resent in-call', async () => {
    server.script({ status: 409, json: googleError(409, 'ABORTED', 'Concurrent modification.') });
    const error = await failureOf(chrome().signData(REF, SIGN_BYTES, 'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256', ctx));
    expect(error).toBeInstanceOf(RetryableError);
    expect(server.requests).toHaveLength(1);
  });

  it('429 RESOURCE_EXHAUSTED waits for the RetryInfo delay of the body when no Retry-After header is sent', async () => {
    server.script(
      {
        status: 429,
        json: googleError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded.', [
          { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '2s' },
        ]),
      },
      { status: 200, json: {} },
    );
    await chrome().get(REF, ctx);
    expect(server.requests).toHaveLength(2);
    expect(sleeps).toHaveLength(1);
    expect(sleeps[0]).toBeGreaterThanOrEqual(1_995);
  });

  it('503 then 200 on get is retried and succeeds', async () => {
    server.script(
      { status: 503, json: googleError(503, 'UNAVAILABLE', 'The service is currently unavailable.') },
      { status: 200, json: { name: 'x' } },
    );
    await expect(chrome().get(REF, ctx)).resolves.toEqual({ name: 'x' });
    expect(server.requests).toHaveLength(2);
  });
});

describe('ChromeClient: signData and uploadCertificate are never resent after they may have arrived', () => {
  const sign = (): Promise<unknown> =>
    chrome().signData(REF, SIGN_BYTES, 'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256', ctx);
  const upload = (): Promise<unknown> => chrome().uploadCertificate(REF, PEM, ctx);

  it.each([
    ['signData', 'the connection is destroyed after the server received it', sign, { action: 'destroy' }],
    ['signData', '503 UNAVAILABLE', sign, { status: 503, json: googleError(503, 'UNAVAILABLE', 'Backend error.') }],
    ['signData', '200 without an operation', sign, { status: 200, json: {} }],
    ['uploadCertificate', 'the connection is destroyed after the server received it', upload, { action: 'destroy' }],
    [
      'uploadCertificate',
      '500 INTERNAL',
      upload,
      { status: 500, json: googleError(500, 'INTERNAL', 'Internal error.') },
    ],
  ] satisfies [string, string, () => Promise<unknown>, ScriptEntry][])(
    '%s: %s → UnclearResultError, exactly one request',
    async (_call, _what, call, step) => {
      server.script(step).otherwise({ status: 200, json: { name: OPERATION_NAME } });
      const error = await failureOf(call());
      expect(error).toBeInstanceOf(UnclearResultError);
      expect(server.requests).toHaveLength(1);
    },
  );

  it('signData 429 (nothing applied) is resent and succeeds', async () => {
    server.script(
      { status: 429, json: googleError(429, 'RESOURCE_EXHAUSTED', 'Slow down.') },
      { status: 200, json: { name: OPERATION_NAME } },
    );
    await expect(sign()).resolves.toEqual({ name: OPERATION_NAME });
    expect(server.requests).toHaveLength(2);
  });
});

describe('ChromeClient: observability and cancellation', () => {
  it('counts requests as api=chrome with the operation as method', async () => {
    server.script({
      status: 400,
      json: googleError(400, 'FAILED_PRECONDITION', 'already claimed by another adapter instance'),
    });
    await chrome().claim(REF, 'certprov-prod', ctx);
    const { values } = await metrics.remoteRequests.get();
    expect(values).toEqual([{ labels: { api: 'chrome', method: 'claim', status_class: '4xx' }, value: 1 }]);
  });

  it('never logs the token, the signData bytes, the certificate or the failure message', async () => {
    server
      .script({ status: 503, json: googleError(503, 'UNAVAILABLE', 'x') })
      .otherwise({ status: 200, json: { name: OPERATION_NAME } });
    const client = chrome();
    await client.setFailure(REF, 'Secret-ish failure text 9f8e', ctx);
    await client.signData(REF, SIGN_BYTES, 'SIGNATURE_ALGORITHM_RSA_PKCS1_V1_5_SHA256', ctx);
    await client.uploadCertificate(REF, PEM, ctx);
    expect(logLines.length).toBeGreaterThanOrEqual(4);
    const all = logLines.join('\n');
    for (const secret of [TOKEN, SIGN_BASE64, 'MIIBszCCAVmgAwIBAgIU', 'Secret-ish failure text']) {
      expect(all).not.toContain(secret);
    }
  });

  it('a cancelled step context aborts the call with its reason', async () => {
    server.otherwise({ action: 'hang' });
    const controller = new AbortController();
    const reason = new Error('lease lost');
    setTimeout(() => controller.abort(reason), 50);
    const error = await failureOf(chrome().get(REF, { ...ctx, signal: controller.signal }));
    expect(error).toBe(reason);
  });
});

describe('ChromeClient: one request budget for the replica set', () => {
  /** A clock the limiter's waits advance, so minutes of budget pass in milliseconds. */
  function sharedBudget(requestsPerMinute: number) {
    const clock = { t: Date.UTC(2030, 0, 1) };
    const now = () => clock.t;
    const sleep = (ms: number) => {
      clock.t += ms;
      return Promise.resolve();
    };
    const store = new MemoryProcessStore({ now });
    const replica = () => {
      const limiter = chromeRateLimiter({ requestsPerMinute, maxConcurrent: 4, maxWaitMs: 600_000 }, metrics, {
        now,
        sleep,
      });
      limiter.useStore(store);
      return new ChromeClient({
        endpoint: server.url,
        requestTimeoutMs: 2_000,
        metrics,
        log: ctx.log,
        retry: { attempts: 1 },
        limiter,
      });
    };
    return { clock, replica };
  }

  it('two replicas together never exceed the budget: at most a twelfth of the minute in any 5 s, the minute in any 60 s', async () => {
    const { clock, replica } = sharedBudget(120);
    const sentAt: number[] = [];
    server.script(...Array.from({ length: 60 }, () => () => (sentAt.push(clock.t), { status: 200, json: {} })));
    const [a, b] = [replica(), replica()];
    for (let i = 0; i < 30; i += 1) {
      await a.get(REF, ctx);
      await b.get(REF, ctx);
    }
    expect(sentAt).toHaveLength(60);
    const inWindow = (start: number, ms: number) => sentAt.filter((t) => t >= start && t < start + ms).length;
    expect(Math.max(...sentAt.map((t) => inWindow(t, 5_000)))).toBeLessThanOrEqual(10);
    expect(Math.max(...sentAt.map((t) => inWindow(t, 60_000)))).toBeLessThanOrEqual(120);
    // Tokens keep flowing: 60 requests at 10 per 5 s take about 30 s of clock, not minutes.
    expect((sentAt.at(-1) ?? 0) - (sentAt[0] ?? 0)).toBeLessThan(40_000);
  });

  it("a 429 holds this replica's next request back for Google's Retry-After", async () => {
    const { clock, replica } = sharedBudget(6_000);
    const sentAt: number[] = [];
    server.script(
      () => (
        sentAt.push(clock.t),
        {
          status: 429,
          headers: { 'retry-after': '7' },
          json: googleError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded.'),
        }
      ),
      () => (sentAt.push(clock.t), { status: 200, json: {} }),
    );
    const client = replica();
    await expect(client.get(REF, ctx)).rejects.toBeInstanceOf(RetryableError);
    await client.get(REF, ctx);
    expect((sentAt[1] ?? 0) - (sentAt[0] ?? 0)).toBeGreaterThanOrEqual(7_000);
  });
});
