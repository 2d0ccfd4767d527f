/**
 * What an operator sees of undecodable notifications: one warn line per message with a base64 preview of its first
 * bytes (so what Google really sent can be read back), within a rate limit; the rest at debug; every one counted.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MALFORMED_LOG_BUDGET, MALFORMED_PREVIEW_BYTES } from '../../../src/pubsub/intake.ts';
import { AdapterRig } from '../../support/adapter-rig.ts';

let rig: AdapterRig;
beforeAll(async () => {
  rig = await AdapterRig.start();
});
afterAll(() => rig?.stop());

const MESSAGE = 'undecodable provisioning notification; nacked for the dead-letter policy';

it('logs a rate-limited base64 preview of the first bytes, attribute keys without values, and counts all', async () => {
  const count = MALFORMED_LOG_BUDGET.perWindow + 3;
  const payloads = Array.from({ length: count }, (_, i) =>
    Buffer.concat([Buffer.from([0xff, 0xfe, i]), Buffer.alloc(100, 0x07)]),
  );
  for (const data of payloads) await rig.publishRaw(data, { origin: 'secret-attribute-value' });
  await expect
    .poll(() => rig.counter('certprov_messages_malformed_total'), { timeout: 10_000 })
    .toBeGreaterThanOrEqual(count);

  const lines = rig.logs.entries().filter((e) => e.message === MESSAGE);
  const warnings = lines.filter((e) => e.level === 'warn');
  expect(warnings).toHaveLength(MALFORMED_LOG_BUDGET.perWindow);
  expect(lines.filter((e) => e.level === 'debug')).toHaveLength(count - MALFORMED_LOG_BUDGET.perWindow);
  const expected = new Set(payloads.map((d) => d.subarray(0, MALFORMED_PREVIEW_BYTES).toString('base64')));
  for (const w of warnings) {
    expect(expected.has(w.previewBase64 as string)).toBe(true);
    expect(Buffer.from(w.previewBase64 as string, 'base64')).toHaveLength(MALFORMED_PREVIEW_BYTES);
    expect(w).toMatchObject({ bytes: 103, attributeKeys: ['origin'] });
    expect(typeof w.messageId).toBe('string');
  }
  expect(rig.logs.text()).not.toContain('secret-attribute-value');
  // Redeliveries of the same messages are counted but not logged again.
  const before = await rig.counter('certprov_messages_malformed_total');
  await expect
    .poll(() => rig.counter('certprov_messages_malformed_total'), { timeout: 10_000 })
    .toBeGreaterThan(before);
  expect(rig.logs.entries().filter((e) => e.message === MESSAGE)).toHaveLength(count);
});
