/**
 * The open-handle check the integration project runs after each file (test/support/leak-check-setup.ts): it must
 * catch what a file forgot to close and must not flag what was closed, even when closing takes a few ticks.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect, type Server } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { activeResources, describeResources, excessOver, leakedSince, lowerOf } from '../support/leak-check.ts';

const opened: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of opened.splice(0).reverse()) await close();
});

async function listening(): Promise<Server> {
  const server = createServer((socket) => socket.on('error', () => undefined));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  opened.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return server;
}

/**
 * The resources once the previous test's residue (a child's handle closing after its exit, the runner's hook timer)
 * has gone: counts alike over three polls. A baseline taken mid-close would hide a leak of the same type.
 */
async function quietResources(): Promise<ReadonlyMap<string, number>> {
  let previous = activeResources();
  for (let alike = 0; alike < 3;) {
    await sleep(20);
    const now = activeResources();
    alike = excessOver(previous, now).size === 0 && excessOver(now, previous).size === 0 ? alike + 1 : 0;
    previous = now;
  }
  return previous;
}

describe('the leak check', () => {
  it('counts by type what is open beyond the baseline', () => {
    const baseline = new Map([
      ['Timeout', 2],
      ['PipeWrap', 1],
    ]);
    const now = new Map([
      ['Timeout', 3],
      ['PipeWrap', 1],
      ['TCPServerWrap', 1],
    ]);
    const excess = excessOver(baseline, now);
    expect(describeResources(excess)).toBe('1 TCPServerWrap, 1 Timeout');
    expect(excessOver(now, baseline).size).toBe(0);
    // Of two looks at the start, the lower count per type (a runner's timer that came and went is not a baseline).
    expect([...lowerOf(now, new Map([['Timeout', 1]]))]).toEqual([['Timeout', 1]]);
  });

  it('catches a server left listening', async () => {
    const baseline = await quietResources();
    await listening();
    expect(describeResources(await leakedSince(baseline, 200))).toBe('1 TCPServerWrap');
  });

  it('lets a file leave only the type it was allowed to, and still catches every other type', async () => {
    const baseline = await quietResources();
    await listening();
    const timer = setTimeout(() => undefined, 60_000);
    try {
      const allowed = new Map([['Timeout', "a client's own retry timers"]]);
      expect(describeResources(await leakedSince(baseline, 200, allowed))).toBe('1 TCPServerWrap');
    } finally {
      clearTimeout(timer);
    }
  });

  it('catches a child process left running, with its pipes', async () => {
    const baseline = await quietResources();
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: ['ignore', 'pipe', 'pipe'] });
    opened.push(async () => {
      child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    });
    const leaked = await leakedSince(baseline, 200);
    expect(leaked.get('ProcessWrap')).toBe(1);
    expect(leaked.get('PipeWrap')).toBe(2);
  });

  it("counts a ref'd timer, not an unref'd one", () => {
    // Measured without an await in between: the runner's own RPC timers come and go across awaits.
    const baseline = activeResources();
    const refd = setTimeout(() => undefined, 60_000);
    const unrefd = setTimeout(() => undefined, 60_000).unref();
    const now = activeResources();
    clearTimeout(refd);
    clearTimeout(unrefd);
    expect(describeResources(excessOver(baseline, now))).toBe('1 Timeout');
    expect(describeResources(excessOver(baseline, activeResources()))).toBe('');
  });

  it('waits for what is closing to go, so a file that closed everything passes', async () => {
    const baseline = await quietResources();
    const server = await listening();
    const address = server.address() as { port: number };
    const client = connect(address.port, '127.0.0.1');
    await once(client, 'connect');
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 50)'], { stdio: 'pipe' });
    // Closed without waiting: the socket, the server and the child go away over the next ticks.
    client.destroy();
    server.close();
    opened.splice(0);
    expect(describeResources(await leakedSince(baseline, 5_000))).toBe('');
    expect(child.exitCode ?? child.signalCode).not.toBeNull();
  });
});
