import { afterEach, describe, expect, it } from 'vitest';
import { InProcessMessageSource } from '../../../src/pubsub/in-process-source.ts';
import type { IncomingMessage } from '../../../src/pubsub/source.ts';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(5);
  }
}

const sources: InProcessMessageSource[] = [];
function source(options?: ConstructorParameters<typeof InProcessMessageSource>[0]): InProcessMessageSource {
  const s = new InProcessMessageSource(options);
  sources.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.close()));
});

describe('InProcessMessageSource', () => {
  it('delivers published messages asynchronously with their id, data, attributes and first attempt', async () => {
    const s = source();
    const received: IncomingMessage[] = [];
    await s.start((m) => received.push(m));
    const id = s.publish('{"processId":"p1"}', { origin: 'test' });
    expect(received).toHaveLength(0); // not inside publish()
    await waitFor(() => received.length === 1);
    const [m] = received;
    expect(m?.id).toBe(id);
    expect(m?.data.toString()).toBe('{"processId":"p1"}');
    expect(m?.attributes).toEqual({ origin: 'test' });
    expect(m?.deliveryAttempt).toBe(1);
    expect(m?.publishTime).toBeInstanceOf(Date);
    expect(s.pending).toBe(1);
  });

  it('gives every message its own id', () => {
    const s = source();
    const ids = new Set([s.publish('a'), s.publish('b'), s.publish(Buffer.from('c'))]);
    expect(ids.size).toBe(3);
  });

  it('counts acks, and drained() resolves once nothing is unacked', async () => {
    const s = source();
    await s.start((m) => void m.ack());
    s.publish('a');
    s.publish('b');
    await s.drained();
    expect(s.acked).toBe(2);
    expect(s.nacked).toBe(0);
    expect(s.pending).toBe(0);
  });

  it('redelivers a nacked message after the redelivery delay with the attempt incremented', async () => {
    const s = source({ redeliveryDelayMs: 80 });
    const deliveries: { attempt: number | undefined; at: number }[] = [];
    await s.start((m) => {
      deliveries.push({ attempt: m.deliveryAttempt, at: Date.now() });
      if (deliveries.length === 1) m.nack();
      else void m.ack();
    });
    s.publish('x');
    await s.drained();
    expect(deliveries.map((d) => d.attempt)).toEqual([1, 2]);
    const [first, second] = deliveries;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(75);
    expect(s.nacked).toBe(1);
    expect(s.acked).toBe(1);
  });

  it('moves a message to deadLetters when nacked on its last allowed attempt', async () => {
    const s = source({ redeliveryDelayMs: 5, maxDeliveryAttempts: 3 });
    const attempts: (number | undefined)[] = [];
    await s.start((m) => {
      attempts.push(m.deliveryAttempt);
      m.nack();
    });
    const id = s.publish('poison', { k: 'v' });
    await s.drained();
    expect(attempts).toEqual([1, 2, 3]);
    expect(s.deadLetters).toHaveLength(1);
    expect(s.deadLetters[0]).toMatchObject({ id, deliveryAttempts: 3, attributes: { k: 'v' } });
    expect(s.deadLetters[0]?.data.toString()).toBe('poison');
    await sleep(30);
    expect(attempts).toHaveLength(3); // not redelivered after parking
  });

  it('never holds more than maxInFlight unacked messages, and delivers more as they are acked', async () => {
    const s = source({ maxInFlight: 3 });
    const held: IncomingMessage[] = [];
    await s.start((m) => held.push(m));
    for (let i = 0; i < 10; i += 1) s.publish(`m${i}`);
    await waitFor(() => held.length === 3);
    await sleep(30);
    expect(held).toHaveLength(3);
    expect(s.inFlight).toBe(3);
    await held[0]?.ack();
    await waitFor(() => held.length === 4);
    await sleep(30);
    expect(held).toHaveLength(4);
    expect(s.inFlight).toBe(3);
  });

  it('close() nacks held messages; a later start() delivers them again and their old ack is refused', async () => {
    const s = source({ redeliveryDelayMs: 10_000 });
    const first: IncomingMessage[] = [];
    await s.start((m) => first.push(m));
    s.publish('a');
    s.publish('b');
    await waitFor(() => first.length === 2);
    await s.close();
    expect(s.nacked).toBe(2);
    expect(s.pending).toBe(2);
    await expect(first[0]?.ack()).rejects.toThrow(/handed back/);

    const second: IncomingMessage[] = [];
    await s.start((m) => second.push(m));
    // Redelivered at once on restart although the redelivery delay is 10 s.
    await waitFor(() => second.length === 2, 1_000);
    expect(second.map((m) => m.data.toString()).sort()).toEqual(['a', 'b']);
    expect(second.map((m) => m.deliveryAttempt)).toEqual([2, 2]);
  });

  it('does not deliver after close()', async () => {
    const s = source();
    const received: IncomingMessage[] = [];
    await s.start((m) => received.push(m));
    await s.close();
    s.publish('late');
    await sleep(30);
    expect(received).toHaveLength(0);
    expect(s.pending).toBe(1);
  });

  it('treats a second ack as a no-op and ignores a nack after an ack', async () => {
    const s = source({ redeliveryDelayMs: 5 });
    let deliveries = 0;
    await s.start((m) => {
      deliveries += 1;
      void m.ack().then(async () => {
        await m.ack();
        m.nack();
      });
    });
    s.publish('once');
    await s.drained();
    await sleep(30);
    expect(deliveries).toBe(1);
    expect(s.acked).toBe(1);
    expect(s.nacked).toBe(0);
  });

  it('nacks a message whose handler throws, so it is delivered again', async () => {
    const s = source({ redeliveryDelayMs: 5 });
    let calls = 0;
    await s.start((m) => {
      calls += 1;
      if (calls === 1) throw new Error('handler bug');
      void m.ack();
    });
    s.publish('x');
    await s.drained();
    expect(calls).toBe(2);
    expect(s.nacked).toBe(1);
  });

  it('passes emitted errors to onError listeners', () => {
    const s = source();
    const errors: Error[] = [];
    s.onError((e) => errors.push(e));
    s.emitError(new Error('subscription gone'));
    expect(errors.map((e) => e.message)).toEqual(['subscription gone']);
  });

  it('refuses to start twice and rejects invalid bounds', async () => {
    const s = source();
    await s.start(() => undefined);
    await expect(s.start(() => undefined)).rejects.toThrow(/already started/);
    expect(() => new InProcessMessageSource({ maxInFlight: 0 })).toThrow(RangeError);
    expect(() => new InProcessMessageSource({ maxDeliveryAttempts: 0 })).toThrow(RangeError);
  });
});
