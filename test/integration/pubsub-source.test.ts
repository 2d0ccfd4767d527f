/**
 * PubSubMessageSource against Google's Pub/Sub emulator (started by the global setup). Each test makes its own
 * topic and subscription.
 */
import type { Message } from '@google-cloud/pubsub';
import { afterEach, describe, expect, it } from 'vitest';
import { DeploymentFaultError } from '../../src/errors.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { PubSubMessageSource, type PubSubMessageSourceOptions } from '../../src/pubsub/pubsub-source.ts';
import type { IncomingMessage } from '../../src/pubsub/source.ts';
import {
  emulatorClientOptions,
  freshSubscription,
  sleep,
  TEST_PROJECT,
  waitFor,
  type FreshSubscription,
} from '../support/pubsub.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  // Sources first (they hold streams on the subscriptions), then the resources.
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fresh(label: string, options?: Parameters<typeof freshSubscription>[1]): Promise<FreshSubscription> {
  const f = await freshSubscription(label, options);
  cleanups.push(() => f.cleanup());
  return f;
}

function source(f: FreshSubscription, overrides: Partial<PubSubMessageSourceOptions> = {}): PubSubMessageSource {
  const s = new PubSubMessageSource({
    subscription: f.subscriptionName,
    maxInFlight: 10,
    maxExtensionMs: 60_000,
    closeTimeoutMs: 3_000,
    log: silentLogger(),
    clientOptions: f.clientOptions,
    reopenInitialDelayMs: 200,
    reopenMaxDelayMs: 1_000,
    ...overrides,
  });
  cleanups.push(() => s.close());
  return s;
}

/** Starts a source that records every delivery and holds it until the test acks or nacks. */
async function recording(s: PubSubMessageSource): Promise<IncomingMessage[]> {
  const received: IncomingMessage[] = [];
  await s.start((m) => received.push(m));
  return received;
}

describe('PubSubMessageSource (Pub/Sub emulator)', () => {
  it('delivers published messages with data, attributes and publish time; acked ones do not come back', async () => {
    const f = await fresh('deliver');
    const s = source(f);
    const received = await recording(s);
    const before = Date.now();
    const ids = await Promise.all([
      f.publish('{"processId":"p1"}', { customerId: 'C1' }),
      f.publish('{"processId":"p2"}'),
      f.publish(Buffer.from([0x0a, 0x02, 0x70, 0x33])),
    ]);
    await waitFor(() => received.length === 3, 10_000, 'three deliveries');
    expect(received.map((m) => m.id).sort()).toEqual([...ids].sort());
    const p1 = received.find((m) => m.data.toString() === '{"processId":"p1"}');
    expect(p1?.attributes).toEqual({ customerId: 'C1' });
    expect(p1?.deliveryAttempt).toBeUndefined(); // no dead-letter policy → the server sends no count
    expect(Math.abs((p1?.publishTime.getTime() ?? 0) - before)).toBeLessThan(10_000);
    expect(received.some((m) => m.data.equals(Buffer.from([0x0a, 0x02, 0x70, 0x33])))).toBe(true);
    expect(s.exactlyOnceDelivery).toBe(false);

    await Promise.all(received.map((m) => m.ack()));
    expect(s.held).toBe(0);
    await s.close();

    // A new subscriber on the same subscription gets nothing: the acks reached the server.
    const again = await recording(source(f));
    await sleep(1_500);
    expect(again).toHaveLength(0);
  });

  it('holds at most maxInFlight unacked messages at once, and acking releases more', async () => {
    const f = await fresh('flow');
    const s = source(f, { maxInFlight: 5 });
    const held = new Set<IncomingMessage>();
    const seen = new Set<string>();
    let maxHeld = 0;
    await s.start((m) => {
      held.add(m);
      seen.add(m.id);
      maxHeld = Math.max(maxHeld, held.size);
    });
    await Promise.all(Array.from({ length: 20 }, (_, i) => f.publish(`m${i}`)));

    // None acked for ~2 s: exactly the bound is reached, never more.
    await waitFor(() => held.size === 5, 10_000, 'five held messages');
    await sleep(2_000);
    expect(maxHeld).toBe(5);
    expect(held.size).toBe(5);
    expect(seen.size).toBe(5);

    // Ack as they come: all 20 arrive, and the bound holds throughout.
    const ackAll = async () => {
      for (const m of [...held]) {
        held.delete(m);
        await m.ack();
      }
    };
    const deadline = Date.now() + 20_000;
    while (seen.size < 20 && Date.now() < deadline) {
      await ackAll();
      await sleep(50);
    }
    await ackAll();
    expect(seen.size).toBe(20);
    expect(maxHeld).toBe(5);
  });

  it('redelivers a nacked message', async () => {
    const f = await fresh('nack');
    const s = source(f);
    const deliveries: IncomingMessage[] = [];
    await s.start((m) => {
      deliveries.push(m);
      if (deliveries.length === 1) m.nack();
      else void m.ack();
    });
    const id = await f.publish('again');
    await waitFor(() => deliveries.length >= 2, 10_000, 'the redelivery');
    expect(deliveries[0]?.id).toBe(id);
    expect(deliveries[1]?.id).toBe(id);
    // An ack of the nacked delivery is refused rather than silently lost.
    await expect(deliveries[0]?.ack()).rejects.toThrow(/handed back/);
  });

  it('reports delivery attempts when the subscription has a dead-letter policy', async () => {
    const f = await fresh('attempts', { deadLetterMaxDeliveryAttempts: 10 });
    const s = source(f);
    const attempts: (number | undefined)[] = [];
    await s.start((m) => {
      attempts.push(m.deliveryAttempt);
      if (attempts.length < 3) m.nack();
      else void m.ack();
    });
    await f.publish('count me');
    await waitFor(() => attempts.length === 3, 15_000, 'three deliveries');
    expect(attempts).toEqual([1, 2, 3]);
  });

  it('close() resolves within closeTimeout with messages held, and a new source receives them at once', async () => {
    // A long ack deadline: a redelivery within seconds proves close() nacked them, not that they expired.
    const f = await fresh('close', { ackDeadlineSeconds: 120 });
    const metrics = new Metrics({ defaultMetrics: false });
    const s = source(f, { closeTimeoutMs: 2_000, metrics });
    const held = await recording(s);
    const ids = await Promise.all([f.publish('a'), f.publish('b'), f.publish('c')]);
    await waitFor(() => held.length === 3, 10_000, 'three held messages');

    const started = Date.now();
    await s.close();
    expect(Date.now() - started).toBeLessThanOrEqual(2_000 + 250);
    expect(await metrics.registry.getSingleMetricAsString('certprov_messages_nacked_total')).toMatch(
      /reason="shutdown"} 3$/m,
    );
    await expect(held[0]?.ack()).rejects.toThrow(/handed back/);

    const next = await recording(source(f));
    await waitFor(() => next.length === 3, 8_000, 'redelivery to the new source');
    expect(next.map((m) => m.id).sort()).toEqual([...ids].sort());
  });

  it('close() is bounded by closeTimeout even when Pub/Sub stops answering', async () => {
    const proxy: TcpProxy = await startTcpProxy(emulatorClientOptions().apiEndpoint ?? '');
    cleanups.push(() => proxy.close());
    const f = await fresh('hung');
    const closeTimeoutMs = 1_500;
    const s = source(f, { closeTimeoutMs, clientOptions: emulatorClientOptions(proxy.host) });
    const held = await recording(s);
    await Promise.all([f.publish('x'), f.publish('y')]);
    await waitFor(() => held.length === 2, 10_000, 'two held messages');

    // From here on nothing reaches the emulator and nothing comes back: the nacks close() sends hang. Without the
    // bound the client waited 60 s here (its close timeout defaults to maxExtensionTime).
    proxy.freeze();
    const started = Date.now();
    await s.close();
    expect(Date.now() - started).toBeLessThanOrEqual(closeTimeoutMs + 500);
    expect(s.held).toBe(0);
    await expect(held[0]?.ack()).rejects.toThrow(/handed back/);
    // Not asserted: the redelivery after the ack deadline. Real Pub/Sub redelivers then, but the installed emulator
    // fails on stream cancellation (java.lang.NoSuchMethodError in NettyServerHandler.onRstStreamRead, in its log)
    // and keeps routing redeliveries to the dead connection's streams about half the time. Redelivery after a
    // normal close() is covered by the test above.
  });

  it('start() rejects with a helpful deployment fault when the subscription does not exist', async () => {
    const name = `projects/${TEST_PROJECT}/subscriptions/does-not-exist-${Date.now()}`;
    const s = new PubSubMessageSource({
      subscription: name,
      maxInFlight: 1,
      maxExtensionMs: 60_000,
      closeTimeoutMs: 1_000,
      log: silentLogger(),
      clientOptions: emulatorClientOptions(),
    });
    const error = await s
      .start(() => undefined)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(DeploymentFaultError);
    expect((error as DeploymentFaultError).component).toBe('pubsub');
    expect((error as Error).message).toContain(name);
    expect((error as Error).message).toMatch(/does not exist.*setup-pubsub/);
    await s.close(); // harmless after a failed start
  });

  it('reports a subscription deleted under it to onError, and resumes once it exists again', async () => {
    const f = await fresh('deleted');
    const s = source(f);
    const errors: Error[] = [];
    s.onError((e) => errors.push(e));
    const received = await recording(s);
    await f.publish('before');
    await waitFor(() => received.length === 1, 10_000, 'first delivery');
    const [held] = received;

    await f.subscription.delete();
    await waitFor(() => errors.length > 0, 15_000, 'an onError report');
    const fault = errors.find((e) => e instanceof DeploymentFaultError);
    expect(fault?.message).toMatch(/does not exist/);
    expect(fault?.message).toContain(f.subscriptionName);
    // The delivery held when the subscriber stopped is over: acking it must not pretend to succeed. The stream's
    // error and its close arrive separately; wait for the close, which ends the deliveries it carried.
    await waitFor(() => s.held === 0, 15_000, 'the subscriber to stop');
    await expect(held?.ack()).rejects.toThrow();

    await f.topic.createSubscription(f.subscriptionName.split('/').pop() ?? '');
    await f.publish('after');
    await waitFor(() => received.length === 2, 20_000, 'delivery after the subscription came back');
    expect(received[1]?.data.toString()).toBe('after');
  });

  it('after maxDeliveryAttempts (5) nacks, the message lands in the dead-letter subscription', async () => {
    const f = await fresh('deadletter', { deadLetterMaxDeliveryAttempts: 5 });
    const s = source(f);
    const attempts: (number | undefined)[] = [];
    await s.start((m) => {
      attempts.push(m.deliveryAttempt);
      m.nack();
    });
    const parked: Message[] = [];
    f.deadLetter?.subscription.on('message', (m: Message) => {
      parked.push(m);
      m.ack();
    });
    await f.publish('poison', { reason: 'test' });
    await waitFor(() => parked.length === 1, 40_000, 'the dead-lettered message');
    expect(attempts).toEqual([1, 2, 3, 4, 5]);
    expect(parked[0]?.data.toString()).toBe('poison');
    expect(parked[0]?.attributes).toMatchObject({ reason: 'test', CloudPubSubDeadLetterSourceDeliveryCount: '5' });
  });

  it('with exactly-once delivery, ack() resolves once Pub/Sub confirmed it', async () => {
    const f = await fresh('exactly-once', { exactlyOnce: true });
    const s = source(f);
    const received = await recording(s);
    await f.publish('once');
    await waitFor(() => received.length === 1, 10_000, 'delivery');
    expect(s.exactlyOnceDelivery).toBe(true);
    await expect(received[0]?.ack()).resolves.toBeUndefined();
    await expect(received[0]?.ack()).resolves.toBeUndefined(); // a repeated ack is the same confirmation
    await s.close();
    const again = await recording(source(f));
    await sleep(1_500);
    expect(again).toHaveLength(0);
  });
});
