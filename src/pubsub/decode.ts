/**
 * Decoding of the Pub/Sub notification Chrome sends when a certificate provisioning process is created.
 *
 * The payload is `CertificateProvisioningProcessCreatedEventData` (process id, customer id), but its wire encoding
 * is not published (DESIGN.md §1; reference/chrome-cert-provisioning-api.md "Beyond the seed"). So this accepts,
 * in order of preference:
 *   1. JSON objects with camelCase or snake_case keys (and a few tolerated aliases, see {@link PROCESS_ID_KEYS});
 *   2. a bare full resource name as text (`customers/C/certificateProvisioningProcesses/ID`);
 *   3. the protobuf wire format (field 1: process id, field 2: customer id), parsed by hand so that unknown fields
 *      of every wire type are skipped and truncated input is rejected;
 *   4. message attributes with the same key names, as a last resort.
 * The guide also names a `CertificateProvisioningPubsubNotification`, which may wrap the event data: a JSON object
 * whose first member is the event data object, or a protobuf message whose field 1 is the embedded event data, is
 * accepted too (one level; encoding `json-wrapped` / `protobuf-wrapped`).
 * Wherever an id is expected a full resource name is accepted too; the customer then comes from the name. An id
 * must be one path segment: not empty, no `/`, whitespace or control characters, and not `.` or `..`.
 *
 * Never throws: a message that cannot be decoded yields `{ ok: false, problem }` and is nacked by the intake so the
 * subscription's dead-letter policy parks it (DESIGN.md §1). The problem text is for logs: short, and it echoes at
 * most {@link PREVIEW_CHARS} printable characters of the payload.
 */
import type { ProcessRef } from '../chrome/types.ts';

/** How the process id was found (log field; low-cardinality). */
export type NotificationEncoding = 'json' | 'json-wrapped' | 'protobuf' | 'protobuf-wrapped' | 'text' | 'attributes';

export type DecodeResult =
  | {
      readonly ok: true;
      /**
       * The process as the Chrome client takes it: the bare process id (never a resource name) and `my_customer`
       * or a customer id such as `C01abc2de`.
       */
      readonly ref: ProcessRef;
      readonly encoding: NotificationEncoding;
    }
  | { readonly ok: false; readonly problem: string };

/** Keys that may hold the process id, most specific first. `name` must hold a full resource name. */
export const PROCESS_ID_KEYS = [
  'certificateProvisioningProcessId',
  'certificate_provisioning_process_id',
  'processId',
  'process_id',
  'name',
] as const;

/** Keys that may hold the customer id (or `customers/C`). */
export const CUSTOMER_KEYS = ['customerId', 'customer_id', 'customer'] as const;

/** Longest process id accepted; Chrome's ids are far shorter, this only bounds what reaches logs and URLs. */
export const MAX_ID_LENGTH = 256;

/** Characters of the payload a problem message may echo. */
const PREVIEW_CHARS = 64;

/** Protobuf field numbers of CertificateProvisioningProcessCreatedEventData (DESIGN.md §1). */
const PROTO_FIELD_PROCESS_ID = 1;
const PROTO_FIELD_CUSTOMER = 2;
/** Nesting limit for protobuf groups (wire types 3/4) while skipping them; protobuf's own default is 100. */
const MAX_GROUP_DEPTH = 32;
/** A varint is at most 10 bytes (64 bits, 7 per byte). */
const MAX_VARINT_BYTES = 10;

// Resource names: `customers/{customer}/certificateProvisioningProcesses/{process}`, optionally as a full resource
// name (`//chromemanagement.googleapis.com/…`, also with `https:`) and/or with the API version (`v1/`).
const NAME_PREFIX = String.raw`(?:(?:https:)?\/\/chromemanagement\.googleapis\.com\/)?(?:v1\/)?`;
const PROCESS_NAME = new RegExp(
  String.raw`^${NAME_PREFIX}customers\/([^/]+)\/certificateProvisioningProcesses\/([^/]+)$`,
);
const CUSTOMER_NAME = new RegExp(String.raw`^${NAME_PREFIX}customers\/([^/]+)$`);

/** `my_customer` (the caller's own customer) or Google's customer id form, `C` followed by alphanumerics. */
const CUSTOMER_ID = /^(?:my_customer|C[0-9A-Za-z]{1,63})$/;
/** Whitespace, control and invisible format characters never belong in an id (they would corrupt URLs and logs). */
const FORBIDDEN_ID_CHARS = /[\s\p{Cc}\p{Cf}]/u;

/** Raw, unvalidated values found in one place (data or attributes). */
interface Candidate {
  processId?: string;
  /** True when the value came from `name`, which must be a resource name. */
  processIdMustBeName?: boolean;
  customer?: string;
}

type Found = { candidate: Candidate; encoding: NotificationEncoding } | { problem: string };

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** The problem reported when the decoder itself threw: a decoder bug, which the fuzz test must never see. */
export const UNEXPECTED_DECODER_ERROR = 'the notification could not be decoded (unexpected decoder error)';

/**
 * Decodes a provisioning notification into a process id and customer.
 *
 * @param data the message data
 * @param attributes the message attributes (last resort for the process id; also consulted for the customer)
 * @param fallbackCustomer the configured customer (`chrome.customer`, default `my_customer`) used when the
 *   notification names none
 */
export function decodeNotification(
  data: Buffer | Uint8Array,
  attributes: Readonly<Record<string, string>> | undefined,
  fallbackCustomer: string,
): DecodeResult {
  try {
    return decode(data, attributes ?? {}, fallbackCustomer);
  } catch {
    // Defensive: every path above returns a problem instead of throwing; a bug must still not crash the intake.
    return { ok: false, problem: UNEXPECTED_DECODER_ERROR };
  }
}

function decode(
  data: Uint8Array,
  attributes: Readonly<Record<string, string>>,
  fallbackCustomer: string,
): DecodeResult {
  const fromData: Found = data.length === 0 ? { problem: 'message data is empty' } : decodeData(data);
  const fromAttributes = candidateFromRecord(attributes);

  if ('candidate' in fromData && fromData.candidate.processId !== undefined) {
    // The data names the process; attributes may still supply the customer.
    const candidate = {
      ...fromData.candidate,
      customer: fromData.candidate.customer ?? fromAttributes.candidate?.customer,
    };
    return resolve(candidate, fromData.encoding, fallbackCustomer);
  }
  if (fromAttributes.candidate?.processId !== undefined) {
    return resolve(fromAttributes.candidate, 'attributes', fallbackCustomer);
  }
  if (fromAttributes.problem !== undefined) return { ok: false, problem: fromAttributes.problem };
  const dataProblem = 'problem' in fromData ? fromData.problem : 'no process id in the message data';
  return { ok: false, problem: `${dataProblem}, and no process id attribute` };
}

function decodeData(data: Uint8Array): Found {
  const text = decodeUtf8(data);
  const trimmed = text?.trim();
  if (trimmed !== undefined && /^[{["]/.test(trimmed)) {
    const json = decodeJson(trimmed);
    if ('candidate' in json) return json;
    // Bytes that merely look like JSON might still be protobuf (a length byte of 0x7b is '{').
    const proto = parseProtobuf(data);
    if ('candidate' in proto && proto.candidate.processId !== undefined) return proto;
    return json;
  }
  if (trimmed !== undefined && PROCESS_NAME.test(trimmed)) {
    return { candidate: { processId: trimmed }, encoding: 'text' };
  }
  const proto = parseProtobuf(data);
  if ('problem' in proto) {
    return { problem: `data is neither JSON, a process name, nor protobuf (${proto.problem})` };
  }
  if (proto.candidate.processId === undefined) {
    return { problem: 'protobuf message has no field 1 (process id)' };
  }
  return proto;
}

function decodeJson(text: string): Found {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: `data looks like JSON but does not parse: ${preview(text)}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { problem: `JSON payload is ${describeType(value)}, expected an object` };
  }
  const record = value as Record<string, unknown>;
  const found = candidateFromRecord(record);
  if (found.problem !== undefined) return { problem: found.problem };
  if (found.candidate.processId !== undefined) return { candidate: found.candidate, encoding: 'json' };

  // A `CertificateProvisioningPubsubNotification` wrapper: its first member is the event data (whatever the
  // member is called). One level only; a customer beside the wrapped data is used when the data names none.
  const first = Object.values(record)[0];
  if (typeof first === 'object' && first !== null && !Array.isArray(first)) {
    const inner = candidateFromRecord(first as Record<string, unknown>);
    if (inner.problem !== undefined) return { problem: `wrapped event data: ${inner.problem}` };
    if (inner.candidate.processId !== undefined) {
      const customer = inner.candidate.customer ?? found.candidate.customer;
      return {
        candidate: { ...inner.candidate, ...(customer === undefined ? {} : { customer }) },
        encoding: 'json-wrapped',
      };
    }
  }
  return {
    problem: `JSON object has no process id (expected one of ${PROCESS_ID_KEYS.join(', ')}, flat or wrapped)`,
  };
}

/** Reads the known keys of a JSON object or of the attributes; values must be strings. */
function candidateFromRecord(
  record: Readonly<Record<string, unknown>>,
): { candidate: Candidate; problem?: undefined } | { candidate?: undefined; problem: string } {
  const candidate: Candidate = {};
  for (const key of PROCESS_ID_KEYS) {
    if (!Object.hasOwn(record, key)) continue;
    const value = record[key];
    if (typeof value !== 'string') return { problem: `"${key}" is ${describeType(value)}, expected a string` };
    candidate.processId = value;
    candidate.processIdMustBeName = key === 'name';
    break;
  }
  for (const key of CUSTOMER_KEYS) {
    if (!Object.hasOwn(record, key)) continue;
    const value = record[key];
    if (typeof value !== 'string') return { problem: `"${key}" is ${describeType(value)}, expected a string` };
    candidate.customer = value;
    break;
  }
  return { candidate };
}

/** Validates the candidate and splits resource names into customer and id. */
function resolve(candidate: Candidate, encoding: NotificationEncoding, fallbackCustomer: string): DecodeResult {
  const raw = candidate.processId ?? '';
  let processId = raw;
  let customerFromName: string | undefined;
  const name = PROCESS_NAME.exec(raw);
  if (name !== null) {
    customerFromName = name[1];
    processId = name[2] ?? '';
  } else if (candidate.processIdMustBeName === true) {
    return {
      ok: false,
      problem: `"name" is not a process name (customers/C/certificateProvisioningProcesses/ID): ${preview(raw)}`,
    };
  } else if (raw.includes('/')) {
    return { ok: false, problem: `process id contains "/" and is not a process name: ${preview(raw)}` };
  }
  const idProblem = idProblemOf(processId);
  if (idProblem !== undefined) return { ok: false, problem: `process id ${idProblem}` };

  // A customer taken from the process name belongs to that name; it wins over a separate customer field.
  const explicitCustomer =
    candidate.customer === undefined ? undefined : (CUSTOMER_NAME.exec(candidate.customer)?.[1] ?? candidate.customer);
  const customer = customerFromName ?? explicitCustomer ?? fallbackCustomer;
  if (!CUSTOMER_ID.test(customer)) {
    const where =
      customerFromName !== undefined
        ? ' in the process name'
        : explicitCustomer !== undefined
          ? ''
          : ' (configured default)';
    return { ok: false, problem: `customer id${where} is not my_customer or C…: ${preview(customer)}` };
  }
  return { ok: true, ref: { customer, processId }, encoding };
}

function idProblemOf(id: string): string | undefined {
  if (id.length === 0) return 'is empty';
  if (id.length > MAX_ID_LENGTH) return `is longer than ${MAX_ID_LENGTH} characters`;
  if (id.includes('/')) return `contains "/": ${preview(id)}`;
  // URL parsing resolves dot segments, even percent-encoded, so `.`/`..` would name another resource (the Chrome
  // client refuses them too); they are malformed, parked by the dead-letter policy rather than made processes.
  if (id === '.' || id === '..') return `is "${id}", not a path segment`;
  if (FORBIDDEN_ID_CHARS.test(id)) return `contains whitespace or control characters: ${preview(id)}`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Protobuf wire format (https://protobuf.dev/programming-guides/encoding/), just enough for two string fields.

type ProtoFound = { candidate: Candidate; encoding: 'protobuf' | 'protobuf-wrapped' } | { problem: string };

/** The last occurrence of field 1 or 2: its wire type, and its bytes when length-delimited. */
interface RawField {
  readonly wireType: number;
  readonly bytes?: Uint8Array;
}

/**
 * Reads fields 1 and 2 and skips the rest. Field 1 is either the process id (the flat event data) or, in a
 * `CertificateProvisioningPubsubNotification` wrapper, the embedded event data. The two cannot be confused: an
 * embedded message that holds a process id starts a field with a tag byte below 0x20 (0x0a for field 1), a control
 * character no process id may contain, while a flat id is printable text.
 */
function parseProtobuf(buf: Uint8Array, allowWrapper = true): ProtoFound {
  let field1: RawField | undefined;
  let field2: RawField | undefined;
  const reader = { pos: 0 };
  while (reader.pos < buf.length) {
    const key = readVarint(buf, reader);
    if (typeof key === 'string') return { problem: key };
    const fieldNumber = Math.floor(key / 8);
    const wireType = key % 8;
    if (fieldNumber === 0 || fieldNumber > 0x1fffffff)
      return { problem: `invalid protobuf field number ${fieldNumber}` };
    if (fieldNumber === PROTO_FIELD_PROCESS_ID || fieldNumber === PROTO_FIELD_CUSTOMER) {
      let raw: RawField;
      if (wireType === 2) {
        const bytes = readLengthDelimited(buf, reader);
        if (typeof bytes === 'string') return { problem: bytes };
        raw = { wireType, bytes };
      } else {
        const skipped = skipField(buf, reader, fieldNumber, wireType, 0);
        if (skipped !== undefined) return { problem: skipped };
        raw = { wireType };
      }
      // proto3: the last occurrence of a singular field wins.
      if (fieldNumber === PROTO_FIELD_PROCESS_ID) field1 = raw;
      else field2 = raw;
      continue;
    }
    const skipped = skipField(buf, reader, fieldNumber, wireType, 0);
    if (skipped !== undefined) return { problem: skipped };
  }

  if (allowWrapper && field1?.bytes !== undefined) {
    const text = decodeUtf8(field1.bytes);
    if (text === undefined || FORBIDDEN_ID_CHARS.test(text)) {
      // Not printable text: the wrapper's embedded event data, if it parses as one (one level of wrapping only).
      // The wrapper's own other fields are not the event's and are ignored.
      const inner = parseProtobuf(field1.bytes, false);
      if ('candidate' in inner && inner.candidate.processId !== undefined) {
        return { candidate: inner.candidate, encoding: 'protobuf-wrapped' };
      }
    }
  }

  const candidate: Candidate = {};
  for (const [fieldNumber, raw] of [
    [PROTO_FIELD_PROCESS_ID, field1],
    [PROTO_FIELD_CUSTOMER, field2],
  ] as const) {
    if (raw === undefined) continue;
    if (raw.bytes === undefined) {
      return { problem: `protobuf field ${fieldNumber} has wire type ${raw.wireType}, expected a string` };
    }
    const value = decodeUtf8(raw.bytes);
    if (value === undefined) return { problem: `protobuf field ${fieldNumber} is not valid UTF-8` };
    if (fieldNumber === PROTO_FIELD_PROCESS_ID) candidate.processId = value;
    else candidate.customer = value;
  }
  return { candidate, encoding: 'protobuf' };
}

/** Skips one field's value; returns a problem or undefined. */
function skipField(
  buf: Uint8Array,
  reader: { pos: number },
  fieldNumber: number,
  wireType: number,
  depth: number,
): string | undefined {
  switch (wireType) {
    case 0: {
      const value = readVarint(buf, reader);
      return typeof value === 'string' ? value : undefined;
    }
    case 1:
      return advance(buf, reader, 8);
    case 2: {
      const bytes = readLengthDelimited(buf, reader);
      return typeof bytes === 'string' ? bytes : undefined;
    }
    case 3: {
      // Deprecated groups: skip nested fields until the matching end-group tag.
      if (depth >= MAX_GROUP_DEPTH) return 'protobuf groups nested too deeply';
      for (;;) {
        if (reader.pos >= buf.length) return 'truncated protobuf group';
        const key = readVarint(buf, reader);
        if (typeof key === 'string') return key;
        const innerField = Math.floor(key / 8);
        const innerWire = key % 8;
        if (innerWire === 4) return innerField === fieldNumber ? undefined : 'mismatched protobuf end-group tag';
        if (innerField === 0) return 'invalid protobuf field number 0';
        const problem = skipField(buf, reader, innerField, innerWire, depth + 1);
        if (problem !== undefined) return problem;
      }
    }
    case 4:
      return 'unexpected protobuf end-group tag';
    case 5:
      return advance(buf, reader, 4);
    default:
      return `invalid protobuf wire type ${wireType}`;
  }
}

function advance(buf: Uint8Array, reader: { pos: number }, bytes: number): string | undefined {
  if (reader.pos + bytes > buf.length) return 'truncated protobuf field';
  reader.pos += bytes;
  return undefined;
}

function readLengthDelimited(buf: Uint8Array, reader: { pos: number }): Uint8Array | string {
  const length = readVarint(buf, reader);
  if (typeof length === 'string') return length;
  if (length > buf.length - reader.pos) return 'truncated protobuf field (length beyond the end of the data)';
  const bytes = buf.subarray(reader.pos, reader.pos + length);
  reader.pos += length;
  return bytes;
}

/**
 * Reads a base-128 varint. Arithmetic instead of bit operations, because JavaScript's bit operators are 32-bit;
 * values above 2^53 lose precision, which is harmless: they are skipped or exceed every length check.
 */
function readVarint(buf: Uint8Array, reader: { pos: number }): number | string {
  let value = 0;
  for (let i = 0; i < MAX_VARINT_BYTES; i += 1) {
    if (reader.pos >= buf.length) return 'truncated protobuf varint';
    const byte = buf[reader.pos] ?? 0;
    reader.pos += 1;
    if (i === MAX_VARINT_BYTES - 1 && byte > 1) return 'protobuf varint exceeds 64 bits';
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) return value;
  }
  return 'protobuf varint longer than 10 bytes';
}

// ---------------------------------------------------------------------------------------------------------------

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** A quoted, printable-ASCII-only, truncated form of a payload value for problem messages. */
function preview(value: string): string {
  const printable = value.replace(/[^\x20-\x7e]/g, '?');
  const cut = printable.length > PREVIEW_CHARS ? printable.slice(0, PREVIEW_CHARS) + '…' : printable;
  return JSON.stringify(cut);
}
