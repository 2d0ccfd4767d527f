/**
 * Integration project only (vitest.config.ts): after each test file, report (or fail) the file when it left open
 * what it opened — a server, a socket, a child process, a ref'd timer (test/support/leak-check.ts). Setup files run
 * before the test file is imported, so the baseline is taken before anything of the file exists; the `afterAll` here
 * is registered first and so runs last (hooks run as a stack), after the file's own cleanup.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import {
  activeResources,
  describeResources,
  LEAK_GRACE_MS,
  leakedSince,
  lowerOf,
  traceResources,
} from './leak-check.ts';

// Node opens process.stdin's handle the first time anything reads the getter — an `import process from
// 'node:process'` does, through its ESM facade — so it would count as the first such file's. Opened here, before
// the baseline, it belongs to the worker.
void process.stdin;
let baseline = activeResources();
const traced = process.env.CERTPROV_LEAK_TRACE === '1' ? traceResources() : undefined;

// The runner's own timers (one per RPC in flight) come and go: the lower count of two looks is the truer baseline,
// since a leak only adds. A count per type can still miss a leak that coincides with such a timer going away.
beforeAll(() => {
  baseline = lowerOf(baseline, activeResources());
});

/** `fail` (a leak fails the file, the default) or `report` (a leak is printed, the file passes): CERTPROV_LEAK_CHECK. */
const MODE = process.env.CERTPROV_LEAK_CHECK ?? 'fail';

afterAll(async () => {
  const leaked = await leakedSince(baseline);
  if (leaked.size > 0) {
    const file = expect.getState().testPath ?? 'this test file';
    const problem = new Error(
      `${file} left open what it opened, ${LEAK_GRACE_MS} ms after its last hook: ${describeResources(leaked)}. ` +
        'Close the servers, clients, child processes and timers it started in afterAll/afterEach.' +
        (traced === undefined
          ? ' CERTPROV_LEAK_TRACE=1 shows where each was created.'
          : `\n\n${traced().join('\n\n')}`),
    );
    if (MODE === 'fail') throw problem;
    console.warn(`leak check (report only): ${problem.message}`);
  }
}, LEAK_GRACE_MS + 5_000);
