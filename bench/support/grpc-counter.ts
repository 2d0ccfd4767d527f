/**
 * `node --import bench/support/grpc-counter.ts …`: counts, inside an adapter process, every gRPC call it makes to
 * Firestore and Pub/Sub (their emulators), by method, at the wire — the HTTP/2 streams the Google clients open — so
 * the fleet benchmark reports store cost as Firestore bills it without touching the store's code:
 *
 * - `Commit`: document writes = the `writes` in each request (CommitRequest field 2);
 * - `BatchGetDocuments`: documents read = the `found` documents answered (field 1 of each response message);
 * - `RunQuery`: documents read = the `document`s answered (field 1 of each response message);
 * - every other method: calls only.
 *
 * Each call's time from request to end (`ms`: the answer's latency as the replica waits for it, queueing in the server
 * included) is summed too. Firestore's queries and aggregations are also counted by what they ask, under
 * `query:<kind>` (QUERY_KINDS: findDue's continuing and starts queries, nextDueAt, countActive's counts, …), recognised
 * by the field names and values in the request — so the fleet benchmark tells which of the scheduler's queries the
 * server's time goes to.
 *
 * The counts are written as JSON to `$CERTPROV_GRPC_COUNTS` ten times a second (when they changed) and at exit. Messages are parsed from the
 * gRPC framing (1 byte compressed flag, 4 bytes length); a compressed message is counted as a call only.
 */
import { writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import { performance } from 'node:perf_hooks';

export interface MethodCount {
  calls: number;
  /** Document writes (Commit) or documents read (BatchGetDocuments, RunQuery). */
  documents: number;
  /** Milliseconds from request to end, summed over the calls. */
  ms: number;
}

/** Counts by gRPC path (`/google.firestore.v1.Firestore/Commit`). */
export type GrpcCounts = Record<string, MethodCount>;

/** Which field of which message counts a document, by gRPC method name. */
const COUNTED: Readonly<Record<string, { readonly direction: 'request' | 'response'; readonly field: number }>> = {
  Commit: { direction: 'request', field: 2 },
  BatchGetDocuments: { direction: 'response', field: 1 },
  RunQuery: { direction: 'response', field: 1 },
};

/**
 * What a Firestore query or aggregation asks, from its request bytes (field names and values are plain UTF-8 there):
 * the first kind whose every marker appears. The store's queries (src/store/firestore.ts) by their filters.
 */
export const QUERY_KINDS: readonly { readonly kind: string; readonly markers: readonly string[] }[] = [
  { kind: 'inventory', markers: ['-certificates'] },
  { kind: 'count by step (countActive)', markers: ['RunAggregationQuery', 'step'] },
  { kind: 'due continuing (findDue)', markers: ['RunQuery', 'await_signature', 'availableAt'] },
  { kind: 'due starts (findDue)', markers: ['RunQuery', 'start', 'availableAt'] },
  { kind: 'next due (nextDueAt)', markers: ['RunQuery', 'active', 'availableAt'] },
  { kind: 'by lookup key (wake)', markers: ['RunQuery', 'lookupKey'] },
  { kind: 'by correlation id', markers: ['RunQuery', 'correlationId'] },
];

/** The kind of a Firestore query by its gRPC path and first request message; undefined for other calls. */
export function queryKind(grpcPath: string, request: Buffer): string | undefined {
  if (!grpcPath.endsWith('/RunQuery') && !grpcPath.endsWith('/RunAggregationQuery')) return undefined;
  const text = `${grpcPath} ${request.toString('latin1')}`;
  return QUERY_KINDS.find(({ markers }) => markers.every((m) => text.includes(m)))?.kind ?? 'other';
}

/** Occurrences of top-level field `field` in a protobuf message (no nested decoding). */
export function countField(message: Buffer, field: number): number {
  let count = 0;
  let at = 0;
  const varint = (): number => {
    let value = 0;
    let shift = 0;
    for (;;) {
      const byte = message[at];
      if (byte === undefined) throw new Error('truncated varint');
      at += 1;
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return value;
      shift += 7;
    }
  };
  while (at < message.length) {
    const tag = varint();
    const wireType = tag % 8;
    if (Math.floor(tag / 8) === field) count += 1;
    if (wireType === 0) varint();
    else if (wireType === 1) at += 8;
    else if (wireType === 2) {
      const length = varint(); // read first: `at += varint()` would add to the position before the length
      at += length;
    } else if (wireType === 5) at += 4;
    else throw new Error(`wire type ${wireType}`);
  }
  return count;
}

/** Splits a gRPC byte stream into messages as chunks arrive; calls `onMessage` with each uncompressed one. */
export function grpcMessages(onMessage: (message: Buffer) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 5) {
      const length = pending.readUInt32BE(1);
      if (pending.length < 5 + length) return;
      if (pending[0] === 0) onMessage(pending.subarray(5, 5 + length));
      pending = pending.subarray(5 + length);
    }
  };
}

const counts: GrpcCounts = {};
let installed = false;

function track(grpcPath: string, stream: http2.ClientHttp2Stream): void {
  const entry = (counts[grpcPath] ??= { calls: 0, documents: 0, ms: 0 });
  entry.calls += 1;
  const began = performance.now();
  let kind: MethodCount | undefined;
  stream.once('close', () => {
    const ms = performance.now() - began;
    entry.ms += ms;
    if (kind !== undefined) kind.ms += ms;
  });
  const counted = COUNTED[grpcPath.slice(grpcPath.lastIndexOf('/') + 1)];
  const parse = grpcMessages((message) => {
    try {
      if (counted !== undefined) entry.documents += countField(message, counted.field);
    } catch {
      // not a message this parser understands; the call is still counted
    }
  });
  const classify = grpcMessages((message) => {
    const name = queryKind(grpcPath, message);
    if (kind !== undefined || name === undefined) return;
    kind = counts[`query:${name}`] ??= { calls: 0, documents: 0, ms: 0 };
    kind.calls += 1;
  });
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (Buffer.isBuffer(chunk)) {
      if (kind === undefined) classify(chunk);
      if (counted?.direction === 'request') parse(chunk);
    }
    return write(chunk, ...rest);
  }) as typeof stream.write;
  if (counted?.direction === 'response') {
    // Wrapping emit, not adding a 'data' listener: a listener would switch the stream to flowing mode early.
    const emit = stream.emit.bind(stream) as (event: string | symbol, ...args: unknown[]) => boolean;
    stream.emit = ((event: string | symbol, ...args: unknown[]) => {
      if (event === 'data' && Buffer.isBuffer(args[0])) parse(args[0]);
      return emit(event, ...args);
    }) as typeof stream.emit;
  }
}

/**
 * Starts counting in this process (idempotent) and returns the live counts. The Google clients must not have opened
 * their HTTP/2 session yet: the count starts with the sessions opened after this call. In-process scenarios (backlog)
 * call it themselves; others load this module with `--import` and CERTPROV_GRPC_COUNTS.
 */
export function countGrpcCalls(): Readonly<GrpcCounts> {
  if (installed) return counts;
  installed = true;
  const connect = http2.connect.bind(http2) as (...args: unknown[]) => http2.ClientHttp2Session;
  (http2 as { connect: unknown }).connect = (...args: unknown[]) => {
    const session = connect(...args);
    const request = session.request.bind(session);
    session.request = (headers?: http2.OutgoingHttpHeaders, options?: http2.ClientSessionRequestOptions) => {
      const stream = request(headers, options);
      const grpcPath = headers?.[':path'];
      if (typeof grpcPath === 'string') track(grpcPath, stream);
      return stream;
    };
    return session;
  };
  return counts;
}

const file = process.env.CERTPROV_GRPC_COUNTS;
if (file !== undefined && file !== '') {
  countGrpcCalls();
  let written = '';
  const save = () => {
    const text = JSON.stringify(counts);
    if (text === written) return;
    writeFileSync(file, text);
    written = text;
  };
  setInterval(save, 100).unref();
  process.on('exit', save);
}
