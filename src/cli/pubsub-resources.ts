/**
 * `certprov setup-pubsub`: creates, or checks and corrects, the Pub/Sub resources the adapter needs:
 *
 *   topic ──► subscription (ack deadline, retry policy, dead-letter policy[, exactly-once delivery])
 *                 └─ after maxDeliveryAttempts ──► dead-letter topic ──► dead-letter subscription (retains parked
 *                                                                        messages for inspection, 7 days)
 *
 * Idempotent: run twice, the second run reports every resource `unchanged`. Existing resources are compared with
 * the wanted settings and updated in place; a subscription attached to another topic cannot be moved and is
 * reported as a conflict. Messages that cannot be decoded are nacked so the dead-letter policy parks them
 * (DESIGN.md §1); undecodable messages without a dead-letter policy would come back until they expire.
 *
 * IAM: Pub/Sub forwards to the dead-letter topic as its service agent,
 * `service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com`, which needs roles/pubsub.publisher on the
 * dead-letter topic and roles/pubsub.subscriber on the subscription. The project number cannot be derived from the
 * project id without the Resource Manager API, so the bindings are made only when `projectNumber` is given; the
 * emulator does not implement IAM (it answers UNIMPLEMENTED), so there they are reported as skipped.
 * {@link gcloudCommands} prints the same setup, bindings included, for operators who prefer gcloud.
 */
import { PubSub, type ClientConfig, type Policy, type Subscription } from '@google-cloud/pubsub';
import { ConfigError, describeError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { GRPC_STATUS, grpcCode } from '../pubsub/grpc-status.ts';

export const SETUP_DEFAULTS = {
  maxDeliveryAttempts: 10,
  minBackoffSeconds: 10,
  maxBackoffSeconds: 600,
  ackDeadlineSeconds: 60,
  /** Retention of the dead-letter subscription: 7 days, Pub/Sub's maximum for a subscription's backlog. */
  deadLetterRetentionSeconds: 7 * 24 * 3600,
} as const satisfies Record<string, number>;

/** Pub/Sub's own limits (https://cloud.google.com/pubsub/docs/reference/rest/v1/projects.subscriptions). */
const LIMITS = {
  maxDeliveryAttempts: [5, 100],
  backoffSeconds: [0, 600],
  ackDeadlineSeconds: [10, 600],
} as const;

const ROLE_PUBLISHER = 'roles/pubsub.publisher';
const ROLE_SUBSCRIBER = 'roles/pubsub.subscriber';
/** Lets the adapter read the subscription's metadata at start (existence check, exactly-once detection). */
const ROLE_VIEWER = 'roles/pubsub.viewer';

export interface SetupPubSubOptions {
  /** Project that holds the resources (ids below are resolved in it). */
  projectId: string;
  /** Topic Chrome publishes to: an id or `projects/P/topics/T`. */
  topic: string;
  /** The adapter's subscription: an id or `projects/P/subscriptions/S`. */
  subscription: string;
  /** Topic that receives messages after `maxDeliveryAttempts`: an id or a full name. Must differ from `topic`. */
  deadLetterTopic: string;
  /** Subscription on the dead-letter topic that retains parked messages. Default `<dead-letter topic id>-sub`. */
  deadLetterSubscription?: string;
  /** Deliveries before a message is dead-lettered (Pub/Sub allows 5–100). Default 10. */
  maxDeliveryAttempts?: number;
  /** Retry policy: first redelivery delay after a nack or expiry (0–600 s). Default 10. */
  minBackoffSeconds?: number;
  /** Retry policy: longest redelivery delay (0–600 s). Default 600. */
  maxBackoffSeconds?: number;
  /** Ack deadline; the client extends it while a message is held (10–600 s). Default 60. */
  ackDeadlineSeconds?: number;
  /** Enable (true) or disable (false) exactly-once delivery; undefined leaves an existing setting alone (new: off). */
  exactlyOnce?: boolean;
  /** Project number, for the Pub/Sub service agent's IAM bindings. Default: bindings are not made (see notes). */
  projectNumber?: string;
  /** The adapter's service account email; when given it is granted subscriber and viewer on the subscription. */
  adapterServiceAccount?: string;
  /** Report what would change without changing anything. Default false. */
  dryRun?: boolean;
  log: Logger;
  /** Extra `PubSub` client options (tests pass `apiEndpoint`). Default: `PUBSUB_EMULATOR_HOST` and ADC. */
  clientOptions?: ClientConfig;
}

export type SetupAction =
  'created' | 'updated' | 'unchanged' | 'would create' | 'would update' | 'conflict' | 'skipped';

export interface SetupResourceReport {
  readonly kind: 'topic' | 'dead-letter topic' | 'subscription' | 'dead-letter subscription' | 'iam binding';
  /** Full resource name (for IAM: `resource role member`). */
  readonly name: string;
  readonly action: SetupAction;
  /** For updates and conflicts: `field: actual → wanted`. For skipped: why. */
  readonly differences: readonly string[];
}

export interface SetupPubSubSummary {
  readonly resources: readonly SetupResourceReport[];
  /** True when anything was created or updated (or would be, in a dry run). */
  readonly changed: boolean;
  /** Things the operator must resolve (a subscription on the wrong topic, a failed IAM call). Empty when all is well. */
  readonly problems: readonly string[];
  /** Remaining manual steps, e.g. the IAM bindings to make when no project number was given. */
  readonly notes: readonly string[];
}

interface Resolved {
  readonly projectId: string;
  readonly topic: string;
  readonly subscription: string;
  readonly deadLetterTopic: string;
  readonly deadLetterSubscription: string;
  readonly maxDeliveryAttempts: number;
  readonly minBackoffSeconds: number;
  readonly maxBackoffSeconds: number;
  readonly ackDeadlineSeconds: number;
  readonly exactlyOnce: boolean | undefined;
  readonly projectNumber: string | undefined;
  readonly adapterServiceAccount: string | undefined;
}

/** Creates or corrects the topic, dead-letter topic and subscriptions; see the module comment. */
export async function setupPubSub(options: SetupPubSubOptions): Promise<SetupPubSubSummary> {
  const wanted = resolveOptions(options);
  const dryRun = options.dryRun ?? false;
  const log = options.log.child({ component: 'pubsub-setup' });
  const pubsub = new PubSub({ projectId: wanted.projectId, ...options.clientOptions });
  const resources: SetupResourceReport[] = [];
  const problems: string[] = [];
  const notes: string[] = [];
  const report = (entry: SetupResourceReport) => {
    resources.push(entry);
    log.info(
      { kind: entry.kind, resource: entry.name, action: entry.action, differences: entry.differences },
      `${entry.kind} ${entry.action}`,
    );
  };
  try {
    report(await ensureTopic(pubsub, wanted.topic, 'topic', dryRun));
    report(await ensureTopic(pubsub, wanted.deadLetterTopic, 'dead-letter topic', dryRun));
    report(
      await ensureSubscription(
        pubsub,
        'dead-letter subscription',
        wanted.deadLetterSubscription,
        wanted.deadLetterTopic,
        deadLetterSubscriptionSettings(),
        dryRun,
      ),
    );
    report(
      await ensureSubscription(
        pubsub,
        'subscription',
        wanted.subscription,
        wanted.topic,
        subscriptionSettings(wanted),
        dryRun,
      ),
    );
    for (const entry of resources) {
      if (entry.action === 'conflict') problems.push(`${entry.kind} ${entry.name}: ${entry.differences.join('; ')}`);
    }
    await ensureIamBindings(pubsub, wanted, dryRun, report, problems, notes);
  } finally {
    await pubsub.close();
  }
  const changed = resources.some((r) => r.action !== 'unchanged' && r.action !== 'skipped' && r.action !== 'conflict');
  return { resources, changed, problems, notes };
}

/**
 * The same setup as gcloud commands, one string each (`--print-gcloud` prints them). Without `projectNumber` the
 * service agent's member reads `PROJECT_NUMBER`; `gcloud projects describe PROJECT --format='value(projectNumber)'`
 * gives it.
 */
export function gcloudCommands(options: Omit<SetupPubSubOptions, 'log' | 'clientOptions' | 'dryRun'>): string[] {
  const w = resolveOptions(options);
  const project = `--project=${w.projectId}`;
  const agent = serviceAgent(w.projectNumber ?? 'PROJECT_NUMBER');
  const commands = [
    `gcloud pubsub topics create ${w.topic} ${project}`,
    `gcloud pubsub topics create ${w.deadLetterTopic} ${project}`,
    `gcloud pubsub subscriptions create ${w.deadLetterSubscription} --topic=${w.deadLetterTopic} ` +
      `--message-retention-duration=${SETUP_DEFAULTS.deadLetterRetentionSeconds}s ${project}`,
    `gcloud pubsub subscriptions create ${w.subscription} --topic=${w.topic} --ack-deadline=${w.ackDeadlineSeconds} ` +
      `--dead-letter-topic=${w.deadLetterTopic} --max-delivery-attempts=${w.maxDeliveryAttempts} ` +
      `--min-retry-delay=${w.minBackoffSeconds}s --max-retry-delay=${w.maxBackoffSeconds}s` +
      (w.exactlyOnce === true ? ' --enable-exactly-once-delivery' : '') +
      ` ${project}`,
    // Pub/Sub's service agent forwards dead letters: it must publish to the dead-letter topic and ack on the
    // subscription (https://cloud.google.com/pubsub/docs/handling-failures#grant_forwarding_permissions).
    `gcloud pubsub topics add-iam-policy-binding ${w.deadLetterTopic} --member=serviceAccount:${agent} --role=${ROLE_PUBLISHER} ${project}`,
    `gcloud pubsub subscriptions add-iam-policy-binding ${w.subscription} --member=serviceAccount:${agent} --role=${ROLE_SUBSCRIBER} ${project}`,
  ];
  if (w.adapterServiceAccount !== undefined) {
    for (const role of [ROLE_SUBSCRIBER, ROLE_VIEWER]) {
      commands.push(
        `gcloud pubsub subscriptions add-iam-policy-binding ${w.subscription} --member=serviceAccount:${w.adapterServiceAccount} --role=${role} ${project}`,
      );
    }
  }
  return commands;
}

/** `service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com`, Pub/Sub's per-project service agent. */
export function serviceAgent(projectNumber: string): string {
  return `service-${projectNumber}@gcp-sa-pubsub.iam.gserviceaccount.com`;
}

/** Adds `member` to `role` in an IAM policy (without duplicates); `changed` is false when it was already there. */
export function withBinding(policy: Policy, role: string, member: string): { policy: Policy; changed: boolean } {
  const bindings = (policy.bindings ?? []).map((b) => ({ ...b, members: [...(b.members ?? [])] }));
  // Conditional bindings grant only under their condition: a member there does not count as granted.
  const target = bindings.find((b) => b.role === role && (b.condition === undefined || b.condition === null));
  if (target?.members.includes(member) === true) return { policy, changed: false };
  if (target === undefined) bindings.push({ role, members: [member] });
  else target.members.push(member);
  return { policy: { ...policy, bindings }, changed: true };
}

// ---------------------------------------------------------------------------------------------------------------

const RESOURCE_ID = /^(?!goog)[A-Za-z][-A-Za-z0-9_.~+%]{2,254}$/;
// Project ids are lowercase; domain-scoped ones carry `example.com:`. Checked because they end up in commands.
const PROJECT_ID = /^(?:[a-z0-9.-]+:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$/;
const PROJECT_NUMBER = /^[0-9]{1,20}$/;
const SERVICE_ACCOUNT = /^[a-z0-9-]+@[a-z0-9.-]+\.gserviceaccount\.com$/;

function resolveOptions(options: Omit<SetupPubSubOptions, 'log' | 'clientOptions' | 'dryRun'>): Resolved {
  const problems: string[] = [];
  const projectId = options.projectId;
  if (!PROJECT_ID.test(projectId)) problems.push(`projectId: "${projectId}" is not a Google Cloud project id`);
  const name = (field: string, value: string, collection: 'topics' | 'subscriptions'): string => {
    const full = new RegExp(`^projects/([^/]+)/${collection}/([^/]+)$`).exec(value);
    const id = full === null ? value : (full[2] ?? '');
    const project = full === null ? projectId : (full[1] ?? '');
    if (!RESOURCE_ID.test(id)) {
      problems.push(
        `${field}: "${value}" is not a valid Pub/Sub name (3–255 letters, digits, - _ . ~ + %, starting with a letter)`,
      );
    }
    if (full !== null && !PROJECT_ID.test(project))
      problems.push(`${field}: "${project}" is not a Google Cloud project id`);
    return `projects/${project}/${collection}/${id}`;
  };
  const topic = name('topic', options.topic, 'topics');
  const subscription = name('subscription', options.subscription, 'subscriptions');
  const deadLetterTopic = name('deadLetterTopic', options.deadLetterTopic, 'topics');
  const deadLetterSubscription = name(
    'deadLetterSubscription',
    options.deadLetterSubscription ?? `${deadLetterTopic.split('/').pop() ?? ''}-sub`,
    'subscriptions',
  );
  if (deadLetterTopic === topic) problems.push('deadLetterTopic: must differ from topic (a message would loop back)');
  if (deadLetterSubscription === subscription) problems.push('deadLetterSubscription: must differ from subscription');

  const integer = (
    field: string,
    value: number | undefined,
    fallback: number,
    [min, max]: readonly [number, number],
  ): number => {
    const v = value ?? fallback;
    if (!Number.isInteger(v) || v < min || v > max) problems.push(`${field}: ${v} is outside ${min}–${max}`);
    return v;
  };
  const maxDeliveryAttempts = integer(
    'maxDeliveryAttempts',
    options.maxDeliveryAttempts,
    SETUP_DEFAULTS.maxDeliveryAttempts,
    LIMITS.maxDeliveryAttempts,
  );
  const minBackoffSeconds = integer(
    'minBackoffSeconds',
    options.minBackoffSeconds,
    SETUP_DEFAULTS.minBackoffSeconds,
    LIMITS.backoffSeconds,
  );
  const maxBackoffSeconds = integer(
    'maxBackoffSeconds',
    options.maxBackoffSeconds,
    SETUP_DEFAULTS.maxBackoffSeconds,
    LIMITS.backoffSeconds,
  );
  if (minBackoffSeconds > maxBackoffSeconds) problems.push('minBackoffSeconds: must not exceed maxBackoffSeconds');
  const ackDeadlineSeconds = integer(
    'ackDeadlineSeconds',
    options.ackDeadlineSeconds,
    SETUP_DEFAULTS.ackDeadlineSeconds,
    LIMITS.ackDeadlineSeconds,
  );
  if (options.projectNumber !== undefined && !PROJECT_NUMBER.test(options.projectNumber)) {
    problems.push(`projectNumber: "${options.projectNumber}" is not a project number (digits only)`);
  }
  if (options.adapterServiceAccount !== undefined && !SERVICE_ACCOUNT.test(options.adapterServiceAccount)) {
    problems.push(`adapterServiceAccount: "${options.adapterServiceAccount}" is not a service account email`);
  }
  if (problems.length > 0) throw new ConfigError(problems, 'setup-pubsub options');
  return {
    projectId,
    topic,
    subscription,
    deadLetterTopic,
    deadLetterSubscription,
    maxDeliveryAttempts,
    minBackoffSeconds,
    maxBackoffSeconds,
    ackDeadlineSeconds,
    exactlyOnce: options.exactlyOnce,
    projectNumber: options.projectNumber,
    adapterServiceAccount: options.adapterServiceAccount,
  };
}

async function ensureTopic(
  pubsub: PubSub,
  name: string,
  kind: 'topic' | 'dead-letter topic',
  dryRun: boolean,
): Promise<SetupResourceReport> {
  const topic = pubsub.topic(name);
  const [exists] = await topic.exists();
  if (exists) return { kind, name, action: 'unchanged', differences: [] };
  if (dryRun) return { kind, name, action: 'would create', differences: [] };
  try {
    await topic.create();
  } catch (error) {
    // Another replica or operator created it between our check and create: that is the state we want.
    if (grpcCode(error) !== GRPC_STATUS.ALREADY_EXISTS) throw error;
    return { kind, name, action: 'unchanged', differences: [] };
  }
  return { kind, name, action: 'created', differences: [] };
}

/** One comparable subscription setting: how to read it from metadata, the wanted value, and the update patch. */
interface Setting {
  readonly field: string;
  readonly wanted: string;
  actual(metadata: SubscriptionMetadataLike): string;
  readonly patch: Record<string, unknown>;
}

interface DurationLike {
  seconds?: number | string | { toString(): string } | null;
  nanos?: number | null;
}

interface SubscriptionMetadataLike {
  topic?: string | null;
  ackDeadlineSeconds?: number | null;
  enableExactlyOnceDelivery?: boolean | null;
  deadLetterPolicy?: { deadLetterTopic?: string | null; maxDeliveryAttempts?: number | null } | null;
  retryPolicy?: { minimumBackoff?: DurationLike | null; maximumBackoff?: DurationLike | null } | null;
  messageRetentionDuration?: DurationLike | null;
}

function seconds(d: DurationLike | null | undefined): string {
  if (d === null || d === undefined) return 'unset';
  return `${Number(d.seconds?.toString() ?? 0) + (d.nanos ?? 0) / 1e9}s`;
}

function subscriptionSettings(w: Resolved): Setting[] {
  const retryPolicy = {
    minimumBackoff: { seconds: w.minBackoffSeconds, nanos: 0 },
    maximumBackoff: { seconds: w.maxBackoffSeconds, nanos: 0 },
  };
  const deadLetterPolicy = { deadLetterTopic: w.deadLetterTopic, maxDeliveryAttempts: w.maxDeliveryAttempts };
  const settings: Setting[] = [
    {
      field: 'ackDeadlineSeconds',
      wanted: String(w.ackDeadlineSeconds),
      actual: (m) => String(m.ackDeadlineSeconds ?? 'unset'),
      patch: { ackDeadlineSeconds: w.ackDeadlineSeconds },
    },
    {
      field: 'deadLetterPolicy.deadLetterTopic',
      wanted: w.deadLetterTopic,
      actual: (m) => m.deadLetterPolicy?.deadLetterTopic || 'unset',
      patch: { deadLetterPolicy },
    },
    {
      field: 'deadLetterPolicy.maxDeliveryAttempts',
      wanted: String(w.maxDeliveryAttempts),
      actual: (m) => String(m.deadLetterPolicy?.maxDeliveryAttempts ?? 'unset'),
      patch: { deadLetterPolicy },
    },
    {
      field: 'retryPolicy.minimumBackoff',
      wanted: `${w.minBackoffSeconds}s`,
      actual: (m) => seconds(m.retryPolicy?.minimumBackoff),
      patch: { retryPolicy },
    },
    {
      field: 'retryPolicy.maximumBackoff',
      wanted: `${w.maxBackoffSeconds}s`,
      actual: (m) => seconds(m.retryPolicy?.maximumBackoff),
      patch: { retryPolicy },
    },
  ];
  if (w.exactlyOnce !== undefined) {
    settings.push({
      field: 'enableExactlyOnceDelivery',
      wanted: String(w.exactlyOnce),
      actual: (m) => String(m.enableExactlyOnceDelivery === true),
      patch: { enableExactlyOnceDelivery: w.exactlyOnce },
    });
  }
  return settings;
}

function deadLetterSubscriptionSettings(): Setting[] {
  const retention = SETUP_DEFAULTS.deadLetterRetentionSeconds;
  return [
    {
      field: 'messageRetentionDuration',
      wanted: `${retention}s`,
      actual: (m) => seconds(m.messageRetentionDuration),
      patch: { messageRetentionDuration: { seconds: retention, nanos: 0 } },
    },
  ];
}

async function ensureSubscription(
  pubsub: PubSub,
  kind: 'subscription' | 'dead-letter subscription',
  name: string,
  topicName: string,
  settings: readonly Setting[],
  dryRun: boolean,
): Promise<SetupResourceReport> {
  const subscription = pubsub.subscription(name);
  const [exists] = await subscription.exists();
  if (!exists) {
    if (dryRun) return { kind, name, action: 'would create', differences: [] };
    const metadata = Object.assign({}, ...settings.map((s) => s.patch)) as Record<string, unknown>;
    try {
      await pubsub.topic(topicName).createSubscription(name, metadata);
      return { kind, name, action: 'created', differences: [] };
    } catch (error) {
      if (grpcCode(error) !== GRPC_STATUS.ALREADY_EXISTS) throw error;
      // Created concurrently: fall through and compare it like any existing subscription.
    }
  }
  return updateSubscription(subscription, kind, name, topicName, settings, dryRun);
}

async function updateSubscription(
  subscription: Subscription,
  kind: 'subscription' | 'dead-letter subscription',
  name: string,
  topicName: string,
  settings: readonly Setting[],
  dryRun: boolean,
): Promise<SetupResourceReport> {
  const [metadata] = (await subscription.getMetadata()) as [SubscriptionMetadataLike];
  if (metadata.topic !== topicName) {
    // Pub/Sub cannot move a subscription to another topic; deleting it would drop its backlog. The operator decides.
    return {
      kind,
      name,
      action: 'conflict',
      differences: [
        `topic: ${metadata.topic ?? 'unset'} → ${topicName} (a subscription cannot change topic; delete and recreate it)`,
      ],
    };
  }
  const differing = settings.filter((s) => s.actual(metadata) !== s.wanted);
  if (differing.length === 0) return { kind, name, action: 'unchanged', differences: [] };
  const differences = differing.map((s) => `${s.field}: ${s.actual(metadata)} → ${s.wanted}`);
  if (dryRun) return { kind, name, action: 'would update', differences };
  const patch = Object.assign({}, ...differing.map((s) => s.patch)) as Record<string, unknown>;
  // setMetadata derives the update mask from the keys given, so only the differing fields change.
  await subscription.setMetadata(patch);
  return { kind, name, action: 'updated', differences };
}

async function ensureIamBindings(
  pubsub: PubSub,
  w: Resolved,
  dryRun: boolean,
  report: (entry: SetupResourceReport) => void,
  problems: string[],
  notes: string[],
): Promise<void> {
  const wantedBindings: { resource: 'topic' | 'subscription'; name: string; role: string; member: string }[] = [];
  if (w.projectNumber !== undefined) {
    const agent = `serviceAccount:${serviceAgent(w.projectNumber)}`;
    wantedBindings.push({ resource: 'topic', name: w.deadLetterTopic, role: ROLE_PUBLISHER, member: agent });
    wantedBindings.push({ resource: 'subscription', name: w.subscription, role: ROLE_SUBSCRIBER, member: agent });
  } else {
    notes.push(
      'Dead-letter forwarding needs IAM bindings for the Pub/Sub service agent ' +
        `(${serviceAgent('PROJECT_NUMBER')}): ${ROLE_PUBLISHER} on ${w.deadLetterTopic} and ${ROLE_SUBSCRIBER} on ` +
        `${w.subscription}. Pass the project number to make them, or run the add-iam-policy-binding commands ` +
        'printed by gcloudCommands().',
    );
  }
  if (w.adapterServiceAccount !== undefined) {
    for (const role of [ROLE_SUBSCRIBER, ROLE_VIEWER]) {
      wantedBindings.push({
        resource: 'subscription',
        name: w.subscription,
        role,
        member: `serviceAccount:${w.adapterServiceAccount}`,
      });
    }
  }
  for (const binding of wantedBindings) {
    const label = `${binding.name} ${binding.role} ${binding.member}`;
    const iam = binding.resource === 'topic' ? pubsub.topic(binding.name).iam : pubsub.subscription(binding.name).iam;
    try {
      const [policy] = await iam.getPolicy();
      const next = withBinding(policy, binding.role, binding.member);
      if (!next.changed) {
        report({ kind: 'iam binding', name: label, action: 'unchanged', differences: [] });
      } else if (dryRun) {
        report({ kind: 'iam binding', name: label, action: 'would create', differences: [] });
      } else {
        // The policy's etag makes this a compare-and-set: a concurrent change fails instead of being overwritten.
        await iam.setPolicy(next.policy);
        report({ kind: 'iam binding', name: label, action: 'created', differences: [] });
      }
    } catch (error) {
      // The emulator answers IAM calls with UNIMPLEMENTED.
      if (grpcCode(error) === GRPC_STATUS.UNIMPLEMENTED) {
        report({
          kind: 'iam binding',
          name: label,
          action: 'skipped',
          differences: ['the Pub/Sub emulator does not implement IAM'],
        });
        continue;
      }
      problems.push(`could not set IAM binding ${label}: ${describeError(error)}`);
    }
  }
}
