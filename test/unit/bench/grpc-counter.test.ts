/**
 * The fleet benchmark's Firestore counts come from bench/support/grpc-counter.ts reading gRPC frames and protobuf
 * field tags off the wire. These cases hold it to the wire format: multi-byte lengths, nested fields that must not be
 * counted, messages split across chunks and several in one chunk, compressed messages skipped.
 */
import { describe, expect, it } from 'vitest';
import { countField, grpcMessages, queryKind } from '../../../bench/support/grpc-counter.ts';
import { CONTINUING_STEPS } from '../../../src/store/types.ts';

/** A protobuf varint. */
function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n >= 0x80) {
    bytes.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

/** A length-delimited field (wire type 2). */
function field(number: number, payload: Buffer): Buffer {
  return Buffer.concat([varint(number * 8 + 2), varint(payload.length), payload]);
}

/** A gRPC frame: compressed flag, 4-byte big-endian length, message. */
function frame(message: Buffer, compressed = false): Buffer {
  const header = Buffer.alloc(5);
  header[0] = compressed ? 1 : 0;
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

// A CommitRequest: database (1), two writes (2) — the first over 127 bytes, so its length takes two varint bytes, and
// holding a nested field 2 of its own — and a transaction (3); plus a varint field (4) and a fixed64 field (5).
const write = (size: number) => field(1, field(2, Buffer.alloc(size, 0x61)));
const commit = Buffer.concat([
  field(1, Buffer.from('projects/p/databases/(default)')),
  field(2, write(300)),
  field(2, write(10)),
  field(3, Buffer.from('tx')),
  varint(4 * 8),
  varint(150),
  varint(5 * 8 + 1),
  Buffer.alloc(8),
]);

describe('countField', () => {
  it('counts the top-level occurrences of a field and none nested inside another', () => {
    expect(countField(commit, 2)).toBe(2);
    expect(countField(commit, 1)).toBe(1);
    expect(countField(commit, 3)).toBe(1);
    expect(countField(commit, 6)).toBe(0);
  });

  it('refuses a message cut in a varint rather than miscounting it', () => {
    expect(() => countField(Buffer.from([0x20, 0x80]), 4)).toThrow(/truncated/);
  });
});

describe('grpcMessages', () => {
  it('reassembles messages split across chunks and splits several in one chunk; skips compressed ones', () => {
    const seen: Buffer[] = [];
    const push = grpcMessages((m) => seen.push(Buffer.from(m)));
    const stream = Buffer.concat([frame(commit), frame(Buffer.from('zz'), true), frame(field(1, Buffer.from('x')))]);
    push(stream.subarray(0, 3));
    push(stream.subarray(3, 200));
    push(stream.subarray(200));
    expect(seen.map((m) => m.toString('hex'))).toEqual([
      commit.toString('hex'),
      field(1, Buffer.from('x')).toString('hex'),
    ]);
  });
});

describe('queryKind', () => {
  const RUN_QUERY = '/google.firestore.v1.Firestore/RunQuery';
  /** A request carrying the parent path and the strings of its filters and orders, as a RunQuery request does. */
  const request = (collection: string, ...strings: string[]) =>
    Buffer.concat([
      field(1, Buffer.from(`projects/p/databases/(default)/documents`)),
      field(2, Buffer.concat([collection, ...strings].map((text) => field(2, Buffer.from(text))))),
    ]);

  it("tells the store's queries apart by their filters: findDue's two, nextDueAt, counts, lookups, inventory", () => {
    const processes = 'certprov-processes';
    expect(queryKind(RUN_QUERY, request(processes, 'step', ...CONTINUING_STEPS, 'availableAt'))).toBe(
      'due continuing (findDue)',
    );
    expect(queryKind(RUN_QUERY, request(processes, 'step', 'start', 'availableAt'))).toBe('due starts (findDue)');
    expect(queryKind(RUN_QUERY, request(processes, 'active', 'availableAt'))).toBe('next due (nextDueAt)');
    expect(queryKind(RUN_QUERY, request(processes, 'lookupKey', 'active'))).toBe('by lookup key (wake)');
    expect(queryKind(RUN_QUERY, request(processes, 'correlationId'))).toBe('by correlation id');
    expect(queryKind(RUN_QUERY.replace('RunQuery', 'RunAggregationQuery'), request(processes, 'step', 'issue'))).toBe(
      'count by step (countActive)',
    );
    expect(queryKind(RUN_QUERY, request(`${processes}-certificates`, 'holderKey', 'profile', 'status'))).toBe(
      'inventory',
    );
    expect(queryKind('/google.firestore.v1.Firestore/Commit', request(processes, 'step'))).toBeUndefined();
  });
});
