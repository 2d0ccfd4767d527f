import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DeploymentFaultError,
  RetryableError,
  TerminalError,
  UnclearResultError,
  type CertprovError,
} from '../../../src/errors.ts';
import { HttpClient, type HttpClientOptions } from '../../../src/http/http-client.ts';
import type { HttpErrorResponse } from '../../../src/http/classify.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { ScriptedServer, type ScriptEntry } from './scripted-server.ts';

const TOKEN = 'ya29.secret-test-token-0123456789';
const SECRET_BODY_VALUE = 'c2lnbi1tZS1wbGVhc2U=';

let server: ScriptedServer;
let metrics: Metrics;
let logLines: string[];
let sleeps: number[];
let classified: HttpErrorResponse[];

beforeEach(async () => {
  server = await ScriptedServer.start();
  metrics = new Metrics({ defaultMetrics: false });
  logLines = [];
  sleeps = [];
  classified = [];
});

afterEach(async () => {
  await server.close();
});

/** Resolves once the scripted server has received `n` requests (the test fails by its own timeout otherwise). */
async function requestsReceived(n: number): Promise<void> {
  while (server.requests.length < n) await new Promise((resolve) => setTimeout(resolve, 2));
}

function client(overrides: Partial<HttpClientOptions> = {}): HttpClient {
  return new HttpClient({
    api: 'test',
    component: 'digicert',
    baseUrl: server.url,
    timeoutMs: 2_000,
    metrics,
    log: createLogger({ level: 'trace', destination: { write: (line: string) => void logLines.push(line) } }),
    authHeaders: () => Promise.resolve({ authorization: `Bearer ${TOKEN}` }),
    authFaultHint: 'grant the test role',
    parseErrorBody: (text) => {
      const body = JSON.parse(text) as { status?: string; message?: string };
      return { code: body.status, message: body.message };
    },
    classify: (response) => {
      classified.push(response);
      return new TerminalError(response.summary, { reason: 'ca_rejected', userMessage: 'rejected' });
    },
    // Tiny backoff so tests run fast; server-requested delays go through the recording sleep.
    retry: { attempts: 3, initialDelayMs: 1, maxDelayMs: 5 },
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
    ...overrides,
  });
}

async function counter(name: 'remoteRequests' | 'retries', labels: Record<string, string>): Promise<number> {
  const { values } = await metrics[name].get();
  const match = values.find((v) =>
    Object.entries(labels).every(([k, value]) => (v.labels as Record<string, unknown>)[k] === value),
  );
  return match?.value ?? 0;
}

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the request to fail');
}

const get = { method: 'GET', path: '/v1/things/1', operation: 'get', safeToRepeat: true } as const;
const post = {
  method: 'POST',
  path: '/v1/things/1:sign',
  operation: 'sign',
  safeToRepeat: false,
  json: { signData: SECRET_BODY_VALUE },
} as const;

const unavailable: ScriptEntry = { status: 503, json: { status: 'UNAVAILABLE', message: 'back end is down' } };
const ok: ScriptEntry = { status: 200, json: { done: true } };

describe('HttpClient: outcome of one logical request', () => {
  type Case = {
    name: string;
    steps: ScriptEntry[];
    request: typeof get | typeof post;
    /** The exact error class, or 'ok'. */
    outcome: 'ok' | (abstract new (...args: never[]) => CertprovError);
    requests: number;
  };
  const cases: Case[] = [
    {
      name: 'safe GET 503 then 200 is retried and succeeds',
      steps: [unavailable, ok],
      request: get,
      outcome: 'ok',
      requests: 2,
    },
    {
      name: 'safe GET 503 on every attempt ends retryable (not unclear) after 3 attempts',
      steps: [unavailable, unavailable, unavailable],
      request: get,
      outcome: RetryableError,
      requests: 3,
    },
    {
      name: 'unsafe POST 503 is unclear and not resent',
      steps: [unavailable],
      request: post,
      outcome: UnclearResultError,
      requests: 1,
    },
    {
      name: 'unsafe POST 500 is unclear and not resent',
      steps: [{ status: 500, text: '' }],
      request: post,
      outcome: UnclearResultError,
      requests: 1,
    },
    {
      name: 'unsafe POST 408 is unclear and not resent',
      steps: [{ status: 408, text: '' }],
      request: post,
      outcome: UnclearResultError,
      requests: 1,
    },
    {
      name: 'unsafe POST 429 (nothing applied) is resent and succeeds',
      steps: [{ status: 429, text: '' }, ok],
      request: post,
      outcome: 'ok',
      requests: 2,
    },
    {
      name: 'unsafe POST whose connection is destroyed after receipt is unclear and sent once',
      steps: [{ action: 'destroy' }],
      request: post,
      outcome: UnclearResultError,
      requests: 1,
    },
    {
      name: 'safe GET whose connection is destroyed is retried and succeeds',
      steps: [{ action: 'destroy' }, ok],
      request: get,
      outcome: 'ok',
      requests: 2,
    },
    {
      name: 'unsafe POST whose 200 body is cut short is unclear',
      steps: [{ action: 'truncate', status: 200 }],
      request: post,
      outcome: UnclearResultError,
      requests: 1,
    },
    {
      name: 'unsafe POST answered 200 with a non-JSON body is unclear',
      steps: [{ status: 200, text: '<html>ok</html>' }],
      request: post,
      outcome: UnclearResultError,
      requests: 1,
    },
    {
      name: 'safe GET 401 is a deployment fault, not retried',
      steps: [{ status: 401, text: '' }],
      request: get,
      outcome: DeploymentFaultError,
      requests: 1,
    },
    {
      name: 'safe GET 403 is a deployment fault, not retried',
      steps: [{ status: 403, text: '' }],
      request: get,
      outcome: DeploymentFaultError,
      requests: 1,
    },
    {
      name: 'unsafe POST 403 is a deployment fault',
      steps: [{ status: 403, text: '' }],
      request: post,
      outcome: DeploymentFaultError,
      requests: 1,
    },
    {
      name: 'a redirect is not followed and is a deployment fault',
      steps: [{ status: 302, text: '', headers: { location: '/elsewhere' } }],
      request: post,
      outcome: DeploymentFaultError,
      requests: 1,
    },
    {
      name: 'other 4xx is decided by the API classifier, not retried',
      steps: [{ status: 404, json: { status: 'NOT_FOUND', message: 'no such thing' } }],
      request: get,
      outcome: TerminalError,
      requests: 1,
    },
  ];

  it.each(cases)('$name', async ({ steps, request, outcome, requests }) => {
    server.script(...steps);
    const promise = client().request(request);
    if (outcome === 'ok') {
      await expect(promise).resolves.toMatchObject({ status: 200, body: { done: true } });
    } else {
      const error = await failureOf(promise);
      expect(error).toBeInstanceOf(outcome);
      expect((error as Error).constructor).toBe(outcome);
    }
    expect(server.requests).toHaveLength(requests);
  });

  it('hands the API classifier the parsed body and a log-safe summary', async () => {
    const longMessage = `line one\nline two ${'x'.repeat(400)}`;
    server.script({ status: 400, json: { status: 'FAILED_PRECONDITION', message: longMessage } });
    const error = await failureOf(client().request(post));
    expect(classified).toHaveLength(1);
    const [response] = classified;
    expect(response).toMatchObject({ api: 'test', operation: 'sign', status: 400, safeToRepeat: false });
    expect(response?.detail.code).toBe('FAILED_PRECONDITION');
    expect((error as Error).message).toMatch(/^test sign → 400 FAILED_PRECONDITION: line one line two x+…$/);
    // The server message is clipped to ~300 characters and kept on one line.
    expect((error as Error).message.length).toBeLessThan(360);
  });

  it('surfaces a request fetch itself refuses (a GET with a body) as the bug it is, without sending or retrying', async () => {
    const error = await failureOf(client().request({ ...get, json: { a: 1 } }));
    expect(error).toBeInstanceOf(TypeError);
    expect(server.requests).toHaveLength(0);
    expect(await counter('retries', { where: 'test' })).toBe(0);
  });

  it('names the component and the operator hint on 401/403', async () => {
    server.script({ status: 403, json: { status: 'PERMISSION_DENIED', message: 'caller lacks permission' } });
    const error = (await failureOf(client().request(get))) as DeploymentFaultError;
    expect(error.component).toBe('digicert');
    expect(error.hint).toBe('grant the test role');
    expect(error.message).toBe('test get → 403 PERMISSION_DENIED: caller lacks permission');
  });
});

describe('HttpClient: Retry-After', () => {
  it('waits at least the Retry-After seconds before the next attempt (429, Retry-After: 1)', async () => {
    server.script({ status: 429, text: '', headers: { 'retry-after': '1' } }, ok);
    await client().request(post);
    expect(server.requests).toHaveLength(2);
    // p-retry's own backoff (≤ 5 ms here) plus the extra sleep make up the server's 1000 ms.
    expect(sleeps).toHaveLength(1);
    expect(sleeps[0]).toBeGreaterThanOrEqual(995);
    expect(sleeps[0]).toBeLessThanOrEqual(1000);
  });

  it('reads Retry-After as an HTTP-date', async () => {
    const at = new Date(Date.now() + 3_000).toUTCString();
    server.script({ status: 503, text: '', headers: { 'retry-after': at } }, ok);
    await client().request(get);
    expect(sleeps).toHaveLength(1);
    // HTTP-dates have one-second precision.
    expect(sleeps[0]).toBeGreaterThan(1_500);
    expect(sleeps[0]).toBeLessThanOrEqual(3_000);
  });

  it('really waits with the default sleep (elapsed ≥ 1 s)', async () => {
    server.script({ status: 429, text: '', headers: { 'retry-after': '1' } }, ok);
    const started = performance.now();
    await client({ sleep: undefined }).request(get);
    const elapsed = performance.now() - started;
    expect(server.requests).toHaveLength(2);
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(5_000);
  });

  it('does not wait in-call for a Retry-After beyond maxRetryAfterMs: the caller gets it', async () => {
    server.script({ status: 503, text: '', headers: { 'retry-after': '120' } }, ok);
    const error = (await failureOf(client().request(get))) as RetryableError;
    expect(error).toBeInstanceOf(RetryableError);
    expect(error.retryAfterMs).toBe(120_000);
    expect(server.requests).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });
});

describe('HttpClient: transport failures', () => {
  it('retries a refused connection even for an unsafe call (nothing was sent), then reports it retryable', async () => {
    const port = await closedPort();
    const error = await failureOf(client({ baseUrl: `http://127.0.0.1:${port}` }).request(post));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error).not.toBeInstanceOf(UnclearResultError);
    expect((error as Error).message).toMatch(/^test sign → network failure \(ECONNREFUSED/);
    expect(await counter('remoteRequests', { api: 'test', method: 'sign', status_class: 'network' })).toBe(3);
    expect(await counter('retries', { where: 'test', error_class: 'retry' })).toBe(2);
  });

  it('classifies a timeout of a safe call as retryable, counted as timeout', async () => {
    server.otherwise({ action: 'hang' });
    const error = await failureOf(
      client({ timeoutMs: 100, retry: { attempts: 2, initialDelayMs: 1, maxDelayMs: 1 } }).request(get),
    );
    expect(error).toBeInstanceOf(RetryableError);
    expect(error).not.toBeInstanceOf(UnclearResultError);
    expect((error as Error).message).toBe('test get → no response within 100 ms');
    expect(server.requests).toHaveLength(2);
    expect(await counter('remoteRequests', { api: 'test', method: 'get', status_class: 'timeout' })).toBe(2);
  });

  it('classifies a timeout of an unsafe call as unclear and does not resend it', async () => {
    server.otherwise({ action: 'hang' });
    const error = await failureOf(client({ timeoutMs: 100 }).request(post));
    expect(error).toBeInstanceOf(UnclearResultError);
    expect(server.requests).toHaveLength(1);
  });
});

describe('HttpClient: caller cancellation', () => {
  it('rejects with the caller’s abort reason mid-request, unclassified and not retried', async () => {
    server.otherwise({ action: 'hang' });
    const controller = new AbortController();
    const reason = new Error('shutting down');
    const pending = failureOf(client().request({ ...get, signal: controller.signal }));
    // Abort once the request has reached the server, not after a fixed delay: on a busy machine 50 ms could pass
    // before the request was even sent, and the test would check a different case.
    await requestsReceived(1);
    controller.abort(reason);
    const error = await pending;
    expect(error).toBe(reason);
    expect(server.requests).toHaveLength(1);
    expect(await counter('remoteRequests', { api: 'test', method: 'get', status_class: 'timeout' })).toBe(0);
    expect(await counter('remoteRequests', { api: 'test', method: 'get', status_class: 'network' })).toBe(0);
  });

  it('rejects with the abort reason while waiting for Retry-After', async () => {
    server.script({ status: 503, text: '', headers: { 'retry-after': '20' } }, ok);
    const controller = new AbortController();
    const started = performance.now();
    const pending = failureOf(client({ sleep: undefined }).request({ ...get, signal: controller.signal }));
    // Abort during the Retry-After wait: after the 503 was answered, not after a guessed delay.
    await requestsReceived(1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort();
    const error = await pending;
    expect((error as Error).name).toBe('AbortError');
    expect(error).not.toBeInstanceOf(RetryableError);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(server.requests).toHaveLength(1);
  });

  it('sends nothing when the signal is already aborted', async () => {
    const error = await failureOf(client().request({ ...post, signal: AbortSignal.abort() }));
    expect((error as Error).name).toBe('AbortError');
    expect(server.requests).toHaveLength(0);
  });
});

describe('HttpClient: credentials, metrics and logs', () => {
  it('sends the credential headers, JSON and the query string', async () => {
    server.script(ok);
    await client().request({ ...post, query: { a: 'x y', b: 2, c: undefined } });
    const [request] = server.requests;
    expect(request?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(request?.headers['content-type']).toMatch(/^application\/json/);
    expect(request?.url).toBe('/v1/things/1:sign?a=x+y&b=2');
    expect(JSON.parse(request?.body ?? '')).toEqual({ signData: SECRET_BODY_VALUE });
  });

  it('turns a failing credential provider into a deployment fault and sends nothing', async () => {
    const error = (await failureOf(
      client({ authHeaders: () => Promise.reject(new Error('metadata server said no')) }).request(get),
    )) as DeploymentFaultError;
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect(error.component).toBe('digicert');
    expect(error.message).toContain('metadata server said no');
    expect(server.requests).toHaveLength(0);
  });

  it('counts every attempt by api, operation and status class, and the retry', async () => {
    server.script(unavailable, ok);
    await client().request(get);
    expect(await counter('remoteRequests', { api: 'test', method: 'get', status_class: '5xx' })).toBe(1);
    expect(await counter('remoteRequests', { api: 'test', method: 'get', status_class: '2xx' })).toBe(1);
    expect(await counter('retries', { where: 'test', error_class: 'retry' })).toBe(1);
    const text = await metrics.registry.getSingleMetricAsString('certprov_remote_request_duration_seconds');
    expect(text).toMatch(/certprov_remote_request_duration_seconds_count\{api="test",method="get"\} 2/);
  });

  it('logs each attempt with api, operation, status and duration, never headers or bodies', async () => {
    server.script(
      { status: 503, json: { status: 'UNAVAILABLE', message: 'down' } },
      { status: 200, json: { echo: SECRET_BODY_VALUE } },
    );
    await client().request({ ...post, safeToRepeat: true });
    const entries = logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const attempts = entries.filter((e) => e.operation === 'sign' && 'durationMs' in e);
    expect(attempts.map((e) => e.status)).toEqual([503, 200]);
    for (const entry of attempts) {
      expect(entry).toMatchObject({ api: 'test', operation: 'sign' });
      expect(typeof entry.durationMs).toBe('number');
    }
    const all = logLines.join('\n');
    expect(all).not.toContain(TOKEN);
    expect(all).not.toContain(SECRET_BODY_VALUE);
  });
});

async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
