/**
 * The Pub/Sub notification that hands a process to the adapter: `CertificateProvisioningProcessCreatedEventData`
 * (process id, customer id). Its exact encoding is not published, so the adapter must accept JSON (camelCase or
 * snake_case), the protobuf wire format (field 1: process id, field 2: customer id) and full resource names in
 * place of ids (DESIGN.md §1). The sandbox emits every one of those forms.
 */

export interface ProcessCreatedEvent {
  readonly processId: string;
  readonly customerId: string;
}

/**
 * - `json-camel`: `{"certificateProvisioningProcessId": …, "customerId": …}`
 * - `json-snake`: `{"certificate_provisioning_process_id": …, "customer_id": …}`
 * - `protobuf`: the binary wire format of the message (field 1 = process id, field 2 = customer id)
 * Each may also come wrapped (see {@link NotificationOptions.wrapped}).
 */
export type NotificationEncoding = 'json-camel' | 'json-snake' | 'protobuf';

export interface NotificationOptions {
  /** Default `json-camel`. */
  readonly encoding?: NotificationEncoding;
  /**
   * Put full resource names where ids are expected: `customers/C/certificateProvisioningProcesses/ID` for the
   * process and `customers/C` for the customer. Default false.
   */
  readonly resourceNames?: boolean;
  /** Leave the customer id out (the adapter falls back to its configured customer). Default false. */
  readonly omitCustomerId?: boolean;
  /**
   * Wrap the event data as `CertificateProvisioningPubsubNotification` may: JSON `{"certificateProvisioningProcessCreatedEventData": {…}}`
   * (snake_case with `json-snake`), protobuf field 1 holding the embedded event message. Default false.
   */
  readonly wrapped?: boolean;
  /** Pub/Sub message attributes. Default none. */
  readonly attributes?: Readonly<Record<string, string>>;
}

/** Where a notification goes: a Pub/Sub topic, an in-process queue, a test's array. */
export type NotificationSink = (data: Buffer, attributes: Record<string, string>) => Promise<void>;

/** Writes a protobuf base-128 varint (lengths here are small, but the encoding is the general one). */
function varint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value;
  while (v > 0x7f) {
    bytes.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

/** A length-delimited (wire type 2) field: a string, or an embedded message's bytes. */
function stringField(fieldNumber: number, value: string | Buffer): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return Buffer.concat([varint((fieldNumber << 3) | 2), varint(bytes.length), bytes]);
}

/** Encodes the event as the adapter may receive it on the subscription. */
export function encodeProcessCreatedEvent(event: ProcessCreatedEvent, options: NotificationOptions = {}): Buffer {
  const flat = encodeFlatEvent(event, options);
  if (options.wrapped !== true) return flat;
  switch (options.encoding ?? 'json-camel') {
    case 'json-camel':
      return Buffer.from(`{"certificateProvisioningProcessCreatedEventData":${flat.toString('utf8')}}`);
    case 'json-snake':
      return Buffer.from(`{"certificate_provisioning_process_created_event_data":${flat.toString('utf8')}}`);
    case 'protobuf':
      return stringField(1, flat);
  }
}

function encodeFlatEvent(event: ProcessCreatedEvent, options: NotificationOptions): Buffer {
  const resourceNames = options.resourceNames ?? false;
  const processId = resourceNames
    ? `customers/${event.customerId}/certificateProvisioningProcesses/${event.processId}`
    : event.processId;
  const customerId =
    options.omitCustomerId === true ? undefined : resourceNames ? `customers/${event.customerId}` : event.customerId;
  switch (options.encoding ?? 'json-camel') {
    case 'json-camel':
      return Buffer.from(
        JSON.stringify({
          certificateProvisioningProcessId: processId,
          ...(customerId === undefined ? {} : { customerId }),
        }),
      );
    case 'json-snake':
      return Buffer.from(
        JSON.stringify({
          certificate_provisioning_process_id: processId,
          ...(customerId === undefined ? {} : { customer_id: customerId }),
        }),
      );
    case 'protobuf':
      return Buffer.concat([
        stringField(1, processId),
        ...(customerId === undefined ? [] : [stringField(2, customerId)]),
      ]);
  }
}

/** The one method of a `@google-cloud/pubsub` Topic the sink needs (a Topic satisfies it). */
export interface PublishingTopic {
  publishMessage(message: { data: Buffer; attributes?: Record<string, string> }): Promise<string>;
}

/** A sink that publishes to a Pub/Sub topic (the emulator in tests, a real topic in a staging project). */
export function pubsubTopicSink(topic: PublishingTopic): NotificationSink {
  return async (data, attributes) => {
    await topic.publishMessage({ data, attributes });
  };
}
