/**
 * `certprov setup-pubsub` — creates (or checks) the topic, subscription, dead-letter topic and retry policy the
 * adapter expects, or prints the equivalent gcloud commands.
 */
import { createLogger } from '../observability/logger.ts';
import { gcloudCommands, setupPubSub, SETUP_DEFAULTS } from './pubsub-resources.ts';
import { parseOptions, UsageError, type Command } from './command.ts';
import { requireGoogleCredentials } from './google-credentials.ts';

function whole(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} must be a whole number`);
  return n;
}

export const setupPubSubCommand: Command = {
  name: 'setup-pubsub',
  usage: 'setup-pubsub --project P --topic T --subscription S --dead-letter-topic D',
  summary: 'create or check the Pub/Sub topic, subscription, dead-letter topic and retry policy',
  help: `certprov setup-pubsub --project P --topic T --subscription S --dead-letter-topic D [options]

Idempotently creates the topic the Admin console publishes provisioning notifications to, the adapter's
subscription (ack deadline, retry policy, dead-letter policy), the dead-letter topic and a subscription on it that
retains parked (undecodable) messages. Existing resources are compared and corrected; a subscription attached to
another topic is reported as a conflict, never replaced. --print-gcloud prints the equivalent gcloud commands
instead of calling the API. Uses Application Default Credentials (or PUBSUB_EMULATOR_HOST).

Options:
  --project P                   project holding the resources (required)
  --topic T                     topic id or projects/P/topics/T (required)
  --subscription S              subscription id or full name (required)
  --dead-letter-topic D         dead-letter topic id or full name (required)
  --max-delivery-attempts N     deliveries before dead-lettering, 5–100 (default ${SETUP_DEFAULTS.maxDeliveryAttempts})
  --min-backoff SECONDS         retry policy minimum backoff (default ${SETUP_DEFAULTS.minBackoffSeconds})
  --max-backoff SECONDS         retry policy maximum backoff (default ${SETUP_DEFAULTS.maxBackoffSeconds})
  --ack-deadline SECONDS        ack deadline (default ${SETUP_DEFAULTS.ackDeadlineSeconds})
  --exactly-once                enable exactly-once delivery on the subscription
  --project-number N            grant the Pub/Sub service agent the dead-letter roles it needs
  --adapter-service-account SA  grant the adapter subscriber + viewer on the subscription
  --dry-run                     report what would change, change nothing
  --print-gcloud                print gcloud commands instead of calling the API`,
  async run(args) {
    const { values } = parseOptions(args, {
      project: { type: 'string' },
      topic: { type: 'string' },
      subscription: { type: 'string' },
      'dead-letter-topic': { type: 'string' },
      'max-delivery-attempts': { type: 'string' },
      'min-backoff': { type: 'string' },
      'max-backoff': { type: 'string' },
      'ack-deadline': { type: 'string' },
      'exactly-once': { type: 'boolean' },
      'project-number': { type: 'string' },
      'adapter-service-account': { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      'print-gcloud': { type: 'boolean', default: false },
    });
    const { project, topic, subscription } = values;
    const deadLetterTopic = values['dead-letter-topic'];
    if (project === undefined || topic === undefined || subscription === undefined || deadLetterTopic === undefined) {
      throw new UsageError('--project, --topic, --subscription and --dead-letter-topic are required');
    }
    const options = {
      projectId: project,
      topic,
      subscription,
      deadLetterTopic,
      ...optional('maxDeliveryAttempts', whole(values['max-delivery-attempts'], '--max-delivery-attempts')),
      ...optional('minBackoffSeconds', whole(values['min-backoff'], '--min-backoff')),
      ...optional('maxBackoffSeconds', whole(values['max-backoff'], '--max-backoff')),
      ...optional('ackDeadlineSeconds', whole(values['ack-deadline'], '--ack-deadline')),
      ...optional('exactlyOnce', values['exactly-once']),
      ...optional('projectNumber', values['project-number']),
      ...optional('adapterServiceAccount', values['adapter-service-account']),
    };
    if (values['print-gcloud']) {
      console.log(gcloudCommands(options).join('\n'));
      return 0;
    }
    if ((process.env.PUBSUB_EMULATOR_HOST ?? '') === '') await requireGoogleCredentials('Pub/Sub', 'pubsub');
    const log = createLogger({ level: 'warn' });
    const summary = await setupPubSub({ ...options, dryRun: values['dry-run'], log });
    for (const r of summary.resources) {
      console.log(
        `${r.action.padEnd(13)} ${r.kind.padEnd(24)} ${r.name}${r.differences.length ? ` (${r.differences.join('; ')})` : ''}`,
      );
    }
    for (const note of summary.notes) console.log(`note: ${note}`);
    for (const problem of summary.problems) console.error(`problem: ${problem}`);
    return summary.problems.length === 0 ? 0 : 1;
  },
};

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}
