import { describe, expect, it } from 'vitest';
import { decodeNotification, MAX_ID_LENGTH, UNEXPECTED_DECODER_ERROR } from '../../../src/pubsub/decode.ts';
import { encodeProcessCreatedEvent } from '../../../src/sandbox/notifications.ts';
import { seededRandom } from '../../../src/sandbox/seeded-random.ts';

// --- protobuf wire format, written by hand (https://protobuf.dev/programming-guides/encoding/) -----------------
function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  do {
    let byte = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) byte |= 0x80;
    out.push(byte);
  } while (v > 0);
  return out;
}
const tag = (field: number, wireType: number) => varint(field * 8 + wireType);
const str = (field: number, value: string | Uint8Array) => {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  return [...tag(field, 2), ...varint(bytes.length), ...bytes];
};
const proto = (...parts: number[][]) => Buffer.from(parts.flat());
const json = (value: unknown) => Buffer.from(JSON.stringify(value));

const FALLBACK = 'my_customer';
const hasControlChars = (s: string) => [...s].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);

describe('decodeNotification accepts every known encoding', () => {
  const long = 'p'.repeat(MAX_ID_LENGTH);
  const id123 = 'q'.repeat(123); // length byte 0x7b is '{': the payload then looks like JSON
  it.each<[string, Buffer, Record<string, string>, string, { processId: string; customer: string; encoding: string }]>([
    [
      'JSON camelCase',
      json({ certificateProvisioningProcessId: 'proc-1', customerId: 'C01abc2de' }),
      {},
      FALLBACK,
      { processId: 'proc-1', customer: 'C01abc2de', encoding: 'json' },
    ],
    [
      'JSON snake_case',
      json({ certificate_provisioning_process_id: 'proc-2', customer_id: 'C02' }),
      {},
      FALLBACK,
      { processId: 'proc-2', customer: 'C02', encoding: 'json' },
    ],
    [
      'JSON processId + customer',
      json({ processId: 'proc-3', customer: 'C03' }),
      {},
      FALLBACK,
      { processId: 'proc-3', customer: 'C03', encoding: 'json' },
    ],
    [
      'JSON process_id, no customer → fallback',
      json({ process_id: 'proc-4' }),
      {},
      FALLBACK,
      { processId: 'proc-4', customer: 'my_customer', encoding: 'json' },
    ],
    [
      'JSON without customer → configured fallback',
      json({ processId: 'proc-5' }),
      {},
      'C0fallback',
      { processId: 'proc-5', customer: 'C0fallback', encoding: 'json' },
    ],
    [
      'JSON name with a resource name',
      json({ name: 'customers/C77/certificateProvisioningProcesses/proc-6' }),
      {},
      FALLBACK,
      { processId: 'proc-6', customer: 'C77', encoding: 'json' },
    ],
    [
      'JSON id given as full resource name',
      json({
        certificateProvisioningProcessId:
          '//chromemanagement.googleapis.com/customers/C78/certificateProvisioningProcesses/proc-7',
      }),
      {},
      FALLBACK,
      { processId: 'proc-7', customer: 'C78', encoding: 'json' },
    ],
    [
      'JSON id with v1/ prefix',
      json({ processId: 'v1/customers/my_customer/certificateProvisioningProcesses/proc-8' }),
      {},
      'C1',
      { processId: 'proc-8', customer: 'my_customer', encoding: 'json' },
    ],
    [
      'JSON id with https full name',
      json({
        processId: 'https://chromemanagement.googleapis.com/v1/customers/C9/certificateProvisioningProcesses/proc-9',
      }),
      {},
      FALLBACK,
      { processId: 'proc-9', customer: 'C9', encoding: 'json' },
    ],
    [
      'JSON customer as customers/C',
      json({ processId: 'proc-10', customerId: 'customers/C10' }),
      {},
      FALLBACK,
      { processId: 'proc-10', customer: 'C10', encoding: 'json' },
    ],
    [
      'customer in the name wins over the customer field',
      json({ processId: 'customers/C11/certificateProvisioningProcesses/proc-11', customerId: 'my_customer' }),
      {},
      FALLBACK,
      { processId: 'proc-11', customer: 'C11', encoding: 'json' },
    ],
    [
      'JSON with surrounding whitespace',
      Buffer.from(`\n  ${JSON.stringify({ processId: 'proc-12' })}\r\n`),
      {},
      FALLBACK,
      { processId: 'proc-12', customer: 'my_customer', encoding: 'json' },
    ],
    [
      'JSON with a UTF-8 byte order mark',
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json({ processId: 'proc-13' })]),
      {},
      FALLBACK,
      { processId: 'proc-13', customer: 'my_customer', encoding: 'json' },
    ],
    [
      'JSON camelCase key preferred over alias',
      json({ processId: 'alias', certificateProvisioningProcessId: 'proc-14' }),
      {},
      FALLBACK,
      { processId: 'proc-14', customer: 'my_customer', encoding: 'json' },
    ],
    [
      'protobuf fields 1 and 2',
      proto(str(1, 'proc-20'), str(2, 'C20')),
      {},
      FALLBACK,
      { processId: 'proc-20', customer: 'C20', encoding: 'protobuf' },
    ],
    [
      'protobuf fields in reverse order',
      proto(str(2, 'C21'), str(1, 'proc-21')),
      {},
      FALLBACK,
      { processId: 'proc-21', customer: 'C21', encoding: 'protobuf' },
    ],
    [
      'protobuf field 1 only → fallback customer',
      proto(str(1, 'proc-22')),
      {},
      FALLBACK,
      { processId: 'proc-22', customer: 'my_customer', encoding: 'protobuf' },
    ],
    [
      'protobuf with unknown fields of every wire type',
      proto(
        tag(3, 0),
        varint(300), // varint
        tag(4, 1),
        [1, 2, 3, 4, 5, 6, 7, 8], // fixed64
        tag(5, 2),
        varint(3),
        [0xff, 0x00, 0x0a], // bytes (with a nested-looking 0x0a)
        tag(6, 3),
        tag(1, 0),
        varint(1),
        str(2, 'inner'),
        tag(7, 3),
        tag(7, 4),
        tag(6, 4), // group, nested group
        tag(8, 5),
        [9, 9, 9, 9], // fixed32
        str(1, 'proc-23'),
        tag(1000, 0),
        varint(2 ** 40), // large field number, large varint
        str(2, 'C23'),
      ),
      {},
      FALLBACK,
      { processId: 'proc-23', customer: 'C23', encoding: 'protobuf' },
    ],
    [
      'protobuf repeated field 1: last wins',
      proto(str(1, 'old'), str(1, 'proc-24')),
      {},
      FALLBACK,
      { processId: 'proc-24', customer: 'my_customer', encoding: 'protobuf' },
    ],
    [
      'protobuf field 1 as resource name',
      proto(str(1, 'customers/C25/certificateProvisioningProcesses/proc-25')),
      {},
      FALLBACK,
      { processId: 'proc-25', customer: 'C25', encoding: 'protobuf' },
    ],
    [
      'protobuf whose length byte is "{"',
      proto(str(1, id123), str(2, 'C26')),
      {},
      FALLBACK,
      { processId: id123, customer: 'C26', encoding: 'protobuf' },
    ],
    [
      'protobuf customer as customers/C',
      proto(str(1, 'proc-27'), str(2, 'customers/C27')),
      {},
      FALLBACK,
      { processId: 'proc-27', customer: 'C27', encoding: 'protobuf' },
    ],
    [
      'bare resource name as text',
      Buffer.from('customers/C30/certificateProvisioningProcesses/proc-30\n'),
      {},
      FALLBACK,
      { processId: 'proc-30', customer: 'C30', encoding: 'text' },
    ],
    [
      'attributes only (camelCase)',
      Buffer.alloc(0),
      { certificateProvisioningProcessId: 'proc-40', customerId: 'C40' },
      FALLBACK,
      { processId: 'proc-40', customer: 'C40', encoding: 'attributes' },
    ],
    [
      'attributes only (snake_case), fallback customer',
      Buffer.alloc(0),
      { certificate_provisioning_process_id: 'proc-41' },
      'C41',
      { processId: 'proc-41', customer: 'C41', encoding: 'attributes' },
    ],
    [
      'attributes with a resource name',
      Buffer.alloc(0),
      { name: 'customers/C42/certificateProvisioningProcesses/proc-42' },
      FALLBACK,
      { processId: 'proc-42', customer: 'C42', encoding: 'attributes' },
    ],
    [
      'undecodable data, id in attributes',
      Buffer.from([0xff, 0xfe, 0x07]),
      { processId: 'proc-43' },
      FALLBACK,
      { processId: 'proc-43', customer: 'my_customer', encoding: 'attributes' },
    ],
    [
      'id in data, customer in attributes',
      json({ processId: 'proc-44' }),
      { customerId: 'C44' },
      FALLBACK,
      { processId: 'proc-44', customer: 'C44', encoding: 'json' },
    ],
    [
      'wrapped JSON camelCase (first member is the event data)',
      json({
        certificateProvisioningProcessCreatedEventData: {
          certificateProvisioningProcessId: 'proc-50',
          customerId: 'C50',
        },
      }),
      {},
      FALLBACK,
      { processId: 'proc-50', customer: 'C50', encoding: 'json-wrapped' },
    ],
    [
      'wrapped JSON snake_case, any member name',
      json({ event_data: { certificate_provisioning_process_id: 'proc-51', customer_id: 'C51' }, publish_time: 'x' }),
      {},
      FALLBACK,
      { processId: 'proc-51', customer: 'C51', encoding: 'json-wrapped' },
    ],
    [
      'wrapped JSON, customer beside the event data',
      json({ eventData: { processId: 'proc-52' }, customerId: 'C52' }),
      {},
      FALLBACK,
      { processId: 'proc-52', customer: 'C52', encoding: 'json-wrapped' },
    ],
    [
      'wrapped JSON with a resource name, no customer',
      json({ data: { name: 'customers/C53/certificateProvisioningProcesses/proc-53' } }),
      {},
      FALLBACK,
      { processId: 'proc-53', customer: 'C53', encoding: 'json-wrapped' },
    ],
    [
      'wrapped JSON without customer → fallback',
      json({ data: { processId: 'proc-54' } }),
      {},
      'C54',
      { processId: 'proc-54', customer: 'C54', encoding: 'json-wrapped' },
    ],
    [
      'wrapped protobuf: field 1 is the embedded event data',
      proto(str(1, proto(str(1, 'proc-60'), str(2, 'C60')))),
      {},
      FALLBACK,
      { processId: 'proc-60', customer: 'C60', encoding: 'protobuf-wrapped' },
    ],
    [
      'wrapped protobuf with wrapper fields of other types (field 2 a varint, a timestamp message)',
      proto(
        tag(2, 0),
        varint(1_700_000_000),
        str(1, proto(str(2, 'C61'), str(1, 'proc-61'))),
        str(3, proto(tag(1, 0), varint(5))),
      ),
      {},
      FALLBACK,
      { processId: 'proc-61', customer: 'C61', encoding: 'protobuf-wrapped' },
    ],
    [
      'wrapped protobuf, no customer → fallback',
      proto(str(1, proto(str(1, 'proc-62')))),
      {},
      FALLBACK,
      { processId: 'proc-62', customer: 'my_customer', encoding: 'protobuf-wrapped' },
    ],
    [
      'wrapped protobuf with a resource name',
      proto(str(1, proto(str(1, 'customers/C63/certificateProvisioningProcesses/proc-63')))),
      {},
      FALLBACK,
      { processId: 'proc-63', customer: 'C63', encoding: 'protobuf-wrapped' },
    ],
    [
      'flat protobuf id that starts with a printable tag-like byte ("*")',
      proto(str(1, '*proc-64'), str(2, 'C64')),
      {},
      FALLBACK,
      { processId: '*proc-64', customer: 'C64', encoding: 'protobuf' },
    ],
    [
      'ids with dots that are not dot segments',
      json({ processId: '...' }),
      {},
      FALLBACK,
      { processId: '...', customer: 'my_customer', encoding: 'json' },
    ],
    [
      `process id of ${MAX_ID_LENGTH} characters`,
      json({ processId: long }),
      {},
      FALLBACK,
      { processId: long, customer: 'my_customer', encoding: 'json' },
    ],
  ])('%s', (_name, data, attributes, fallback, expected) => {
    const { processId, customer, encoding } = expected;
    // The decoder hands back the ProcessRef the Chrome client takes.
    expect(decodeNotification(data, attributes, fallback)).toEqual({
      ok: true,
      ref: { processId, customer },
      encoding,
    });
  });
});

describe('decodeNotification rejects what it cannot trust', () => {
  it.each<[string, Buffer, Record<string, string>, string, RegExp]>([
    ['empty data, no attributes', Buffer.alloc(0), {}, FALLBACK, /empty.*no process id attribute/],
    [
      'binary garbage',
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
      {},
      FALLBACK,
      /neither JSON.*varint/,
    ],
    ['plain text that is not a process name', Buffer.from('hello world'), {}, FALLBACK, /neither JSON/],
    ['truncated protobuf string', proto(tag(1, 2), varint(10), [0x61, 0x62, 0x63]), {}, FALLBACK, /truncated/],
    ['truncated protobuf varint', proto(tag(3, 0), [0x80]), {}, FALLBACK, /truncated protobuf varint/],
    ['truncated fixed64', proto(str(1, 'proc'), tag(4, 1), [1, 2, 3]), {}, FALLBACK, /truncated/],
    ['varint longer than 10 bytes', proto(tag(3, 0), Array<number>(11).fill(0xff), [0x01]), {}, FALLBACK, /varint/],
    ['varint above 64 bits', proto(tag(3, 0), Array<number>(9).fill(0xff), [0x7f]), {}, FALLBACK, /exceeds 64 bits/],
    ['length far beyond the data', proto(tag(1, 2), varint(2 ** 50), [0x61]), {}, FALLBACK, /truncated/],
    ['invalid wire type 7', proto(str(1, 'proc'), tag(9, 7)), {}, FALLBACK, /wire type 7/],
    ['invalid wire type 6', proto(tag(9, 6)), {}, FALLBACK, /wire type 6/],
    ['end-group without start', proto(str(1, 'proc'), tag(9, 4)), {}, FALLBACK, /end-group/],
    ['mismatched end-group', proto(tag(9, 3), tag(8, 4)), {}, FALLBACK, /mismatched/],
    ['unterminated group', proto(tag(9, 3), tag(3, 0), varint(1)), {}, FALLBACK, /truncated protobuf group/],
    ['field number 0', proto([0x02, 0x01, 0x61]), {}, FALLBACK, /field number 0/],
    ['field 1 with the wrong wire type', proto(tag(1, 0), varint(5)), {}, FALLBACK, /field 1 has wire type 0/],
    ['field 1 not UTF-8', proto(str(1, Uint8Array.from([0xc3, 0x28]))), {}, FALLBACK, /not valid UTF-8/],
    ['protobuf without field 1', proto(str(2, 'C1')), {}, FALLBACK, /no field 1/],
    ['JSON array', json([{ processId: 'p' }]), {}, FALLBACK, /array, expected an object/],
    [
      'JSON string',
      json('customers/C1/certificateProvisioningProcesses/p'),
      {},
      FALLBACK,
      /a string, expected an object/,
    ],
    ['bare JSON null', Buffer.from('null'), {}, FALLBACK, /neither JSON/],
    [
      'JSON that does not parse',
      Buffer.from('{"certificateProvisioningProcessId": "p'),
      {},
      FALLBACK,
      /does not parse/,
    ],
    ['JSON object without an id', json({ customerId: 'C1', other: 'x' }), {}, FALLBACK, /no process id/],
    ['JSON id that is a number', json({ processId: 42 }), {}, FALLBACK, /"processId" is a number/],
    [
      'JSON customer that is an object',
      json({ processId: 'p', customerId: { id: 'C1' } }),
      {},
      FALLBACK,
      /"customerId" is an object/,
    ],
    ['id with "/"', json({ processId: 'abc/def' }), {}, FALLBACK, /contains "\/"/],
    [
      'resource name of another collection',
      json({ processId: 'customers/C1/devices/d1' }),
      {},
      FALLBACK,
      /contains "\/"/,
    ],
    ['name that is not a resource name', json({ name: 'proc-1' }), {}, FALLBACK, /"name" is not a process name/],
    ['empty id', json({ processId: '' }), {}, FALLBACK, /process id is empty/],
    ['id with a space', json({ processId: 'proc 1' }), {}, FALLBACK, /whitespace or control/],
    ['id with a NUL', json({ processId: 'proc\u00001' }), {}, FALLBACK, /whitespace or control/],
    ['id with a zero-width space', json({ processId: 'proc\u200b1' }), {}, FALLBACK, /whitespace or control/],
    ['id with a newline in protobuf', proto(str(1, 'proc\n1')), {}, FALLBACK, /whitespace or control/],
    [
      `id longer than ${MAX_ID_LENGTH}`,
      json({ processId: 'p'.repeat(MAX_ID_LENGTH + 1) }),
      {},
      FALLBACK,
      /longer than 256/,
    ],
    ['customer with a space', json({ processId: 'p', customerId: 'acme corp' }), {}, FALLBACK, /customer id is not/],
    ['customer not C-style', json({ processId: 'p', customerId: 'C-1' }), {}, FALLBACK, /customer id is not/],
    [
      'bad customer in the resource name',
      json({ processId: 'customers/acme/certificateProvisioningProcesses/p' }),
      {},
      FALLBACK,
      /customer id in the process name/,
    ],
    ['bad configured fallback customer', json({ processId: 'p' }), {}, 'acme', /configured default/],
    ['attribute id with "/"', Buffer.alloc(0), { processId: 'a/b' }, FALLBACK, /contains "\/"/],
    ['JSON id "."', json({ processId: '.' }), {}, FALLBACK, /"\.", not a path segment/],
    ['JSON id ".."', json({ certificateProvisioningProcessId: '..' }), {}, FALLBACK, /"\.\.", not a path segment/],
    ['protobuf id "."', proto(str(1, '.'), str(2, 'C1')), {}, FALLBACK, /"\.", not a path segment/],
    ['protobuf id ".."', proto(str(1, '..')), {}, FALLBACK, /"\.\.", not a path segment/],
    [
      'resource name ending in ".."',
      json({ name: 'customers/C1/certificateProvisioningProcesses/..' }),
      {},
      FALLBACK,
      /not a path segment/,
    ],
    ['wrapped JSON id ".."', json({ data: { processId: '..' } }), {}, FALLBACK, /not a path segment/],
    ['wrapped protobuf id "."', proto(str(1, proto(str(1, '.')))), {}, FALLBACK, /not a path segment/],
    ['attribute id ".."', Buffer.alloc(0), { processId: '..' }, FALLBACK, /not a path segment/],
    ['wrapped JSON whose event data has no id', json({ data: { customerId: 'C1' } }), {}, FALLBACK, /no process id/],
    [
      'wrapped JSON id that is a number',
      json({ data: { processId: 7 } }),
      {},
      FALLBACK,
      /wrapped event data: "processId" is a number/,
    ],
    ['JSON whose first member is an array', json({ data: [{ processId: 'p' }] }), {}, FALLBACK, /no process id/],
    [
      'wrapped protobuf twice (only one level)',
      proto(str(1, proto(str(1, proto(str(1, 'deep')))))),
      {},
      FALLBACK,
      /whitespace or control/,
    ],
  ])('%s', (_name, data, attributes, fallback, problem) => {
    const result = decodeNotification(data, attributes, fallback);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problem).toMatch(problem);
  });

  it('echoes at most a short, printable preview of the payload', () => {
    const evil = '\u0007\u001b[31m' + 'x/'.repeat(5000);
    const result = decodeNotification(json({ processId: evil }), {}, FALLBACK);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problem.length).toBeLessThan(160);
    expect(hasControlChars(result.problem)).toBe(false);
  });

  it('accepts a Uint8Array as well as a Buffer', () => {
    const bytes = new Uint8Array(proto(str(1, 'proc-u8')));
    expect(decodeNotification(bytes, {}, FALLBACK)).toMatchObject({ ok: true, ref: { processId: 'proc-u8' } });
  });
});

describe('decodeNotification never throws', () => {
  // A seeded PRNG (the sandbox's), so a failure can be reproduced from the seed in the test name.
  const SEED = 0x5eed;

  it(`2,000 random and mutated buffers (seed ${SEED})`, () => {
    const random = seededRandom(SEED);
    const seeds = [
      proto(str(1, 'proc-1'), str(2, 'C1')),
      json({ certificateProvisioningProcessId: 'proc-1', customerId: 'C1' }),
      proto(tag(6, 3), str(1, 'x'), tag(6, 4), str(1, 'proc')),
      proto(str(1, proto(str(1, 'proc-1'), str(2, 'C1')))),
      json({ data: { processId: 'proc-1', customerId: 'C1' } }),
    ];
    let accepted = 0;
    for (let i = 0; i < 2_000; i += 1) {
      let data: Buffer;
      if (i % 2 === 0) {
        data = Buffer.from(Array.from({ length: Math.floor(random() * 80) }, () => Math.floor(random() * 256)));
      } else {
        // Mutate a valid payload: flip, drop or insert bytes, so parsing gets deep before it goes wrong.
        const bytes = [...(seeds[i % seeds.length] ?? [])];
        for (let m = 0; m < 1 + Math.floor(random() * 4); m += 1) {
          const at = Math.floor(random() * bytes.length);
          const op = random();
          if (op < 0.4) bytes[at] = Math.floor(random() * 256);
          else if (op < 0.7) bytes.splice(at, 1);
          else bytes.splice(at, 0, Math.floor(random() * 256));
        }
        data = Buffer.from(bytes);
      }
      let result: ReturnType<typeof decodeNotification> | undefined;
      expect(() => (result = decodeNotification(data, {}, FALLBACK)), `input ${data.toString('hex')}`).not.toThrow();
      if (result?.ok === true) {
        accepted += 1;
        // Whatever was accepted must satisfy the id rules.
        expect(result.ref.processId).not.toMatch(/[/\s]/);
        expect(hasControlChars(result.ref.processId)).toBe(false);
        expect(result.ref.processId.length).toBeGreaterThan(0);
        expect(result.ref.processId.length).toBeLessThanOrEqual(MAX_ID_LENGTH);
        expect(result.ref.customer).toMatch(/^(my_customer|C[0-9A-Za-z]+)$/);
      } else if (result !== undefined) {
        // The decoder's catch-all keeps the intake alive, but reaching it is a bug: the case must return a problem
        // of its own. Without this check the test would pass whatever the decoder did.
        expect(result.problem, `input ${data.toString('hex')}`).not.toBe(UNEXPECTED_DECODER_ERROR);
        expect(result.problem.length).toBeLessThan(200);
        expect(hasControlChars(result.problem)).toBe(false);
      }
    }
    // Mutations keep some payloads valid; if none were accepted the generator would be testing nothing useful.
    expect(accepted).toBeGreaterThan(0);
  });
});

describe('every form the sandbox emits, flat and wrapped, decodes to the same process', () => {
  const encodings = ['json-camel', 'json-snake', 'protobuf'] as const;
  const rows = encodings.flatMap((encoding) =>
    [false, true].flatMap((wrapped) => [false, true].map((resourceNames) => ({ encoding, wrapped, resourceNames }))),
  );
  it.each(rows)(
    '$encoding, wrapped $wrapped, resource names $resourceNames',
    ({ encoding, wrapped, resourceNames }) => {
      const data = encodeProcessCreatedEvent(
        { processId: 'proc-77', customerId: 'C77' },
        { encoding, wrapped, resourceNames },
      );
      const expectedEncoding = `${encoding === 'protobuf' ? 'protobuf' : 'json'}${wrapped ? '-wrapped' : ''}`;
      expect(decodeNotification(data, {}, FALLBACK)).toEqual({
        ok: true,
        ref: { processId: 'proc-77', customer: 'C77' },
        encoding: expectedEncoding,
      });
    },
  );
});
