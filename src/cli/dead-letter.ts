/**
 * `certprov dead-letter replay` — moves parked notifications from the dead-letter subscription back to the
 * provisioning topic once a decoder or configuration fix is deployed (src/pubsub/dead-letter-replay.ts).
 */
import { formatDuration, parseDuration } from '../config/duration.ts';
import { DEFAULT_PULL_TIMEOUT_MS, replayDeadLetters } from '../pubsub/dead-letter-replay.ts';
import { parseOptions, UsageError, type Command } from './command.ts';

/** Default --limit: enough for a typical backlog, small enough that a wrong topic does not move everything. */
const DEFAULT_LIMIT = 1000;

/** An id resolved in `project`, or a full name of `kind` as given. */
function fullName(value: string, kind: 'topics' | 'subscriptions', project: string | undefined, flag: string): string {
  if (value.startsWith('projects/')) {
    if (!new RegExp(`^projects/[^/]+/${kind}/[^/]+$`).test(value)) {
      throw new UsageError(`${flag}: "${value}" is not projects/P/${kind}/NAME`);
    }
    return value;
  }
  if (value.includes('/')) throw new UsageError(`${flag}: "${value}" is neither an id nor projects/P/${kind}/NAME`);
  if (project === undefined) throw new UsageError(`${flag}: give a full name or --project P`);
  return `projects/${project}/${kind}/${value}`;
}

export const deadLetterCommand: Command = {
  name: 'dead-letter',
  usage: 'dead-letter replay --subscription DL --topic T [--limit N] [--dry-run]',
  summary: 'republish parked notifications from the dead-letter subscription to the provisioning topic',
  help: `certprov dead-letter replay --subscription DL --topic T [options]

Pulls messages parked on the dead-letter subscription (undecodable notifications, or notifications whose
processes could not be handled while the configuration was wrong) and republishes each one — data and attributes,
without the CloudPubSubDeadLetter* attributes Pub/Sub added — to the provisioning topic the adapter reads. A
message is acknowledged on the dead-letter subscription only after its publish succeeded; if a publish fails,
the message stays parked and the replay stops (exit 1). Deploy the fix first: a message that still fails is
parked again after maxDeliveryAttempts. Each replayed message is printed with its id and, as the current decoder
reads it, its process id. Uses Application Default Credentials (or PUBSUB_EMULATOR_HOST); needs
roles/pubsub.subscriber on the dead-letter subscription and roles/pubsub.publisher on the topic.

Options:
  --subscription DL   the dead-letter subscription: an id (with --project) or projects/P/subscriptions/DL
                      (setup-pubsub names it <dead-letter topic>-sub) (required)
  --topic T           the provisioning topic: an id (with --project) or projects/P/topics/T (required)
  --project P         project for ids
  --limit N           most messages to replay (default ${DEFAULT_LIMIT})
  --customer C        customer assumed when describing notifications that name none (default my_customer)
  --dry-run           show what would be replayed; republish nothing, leave every message parked
  --pull-timeout D    how long a pull waits for messages before the dead-letter subscription counts as
                      drained and the replay ends (default ${formatDuration(DEFAULT_PULL_TIMEOUT_MS)}; a duration: 2s, 500ms)

Exit codes: 0 done (also when nothing was parked), 1 a publish or Pub/Sub call failed, 2 bad usage.`,
  async run(args) {
    const { values, positionals } = parseOptions(args, {
      subscription: { type: 'string' },
      topic: { type: 'string' },
      project: { type: 'string' },
      limit: { type: 'string' },
      customer: { type: 'string', default: 'my_customer' },
      'dry-run': { type: 'boolean', default: false },
      'pull-timeout': { type: 'string' },
    });
    if (positionals.length !== 1 || positionals[0] !== 'replay') {
      throw new UsageError(
        `expected the action "replay"${positionals.length > 0 ? `, got "${positionals.join(' ')}"` : ''}`,
      );
    }
    if (values.subscription === undefined || values.topic === undefined) {
      throw new UsageError('--subscription (the dead-letter subscription) and --topic are required');
    }
    const limit = values.limit === undefined ? DEFAULT_LIMIT : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a whole number ≥ 1');
    const pullTimeoutMs =
      values['pull-timeout'] === undefined ? DEFAULT_PULL_TIMEOUT_MS : parseDuration(values['pull-timeout']);
    if (pullTimeoutMs === undefined || pullTimeoutMs < 1) {
      throw new UsageError('--pull-timeout takes a duration like 10s or 500ms');
    }
    const deadLetterSubscription = fullName(values.subscription, 'subscriptions', values.project, '--subscription');
    const topic = fullName(values.topic, 'topics', values.project, '--topic');
    const dryRun = values['dry-run'];

    const summary = await replayDeadLetters({
      deadLetterSubscription,
      topic,
      limit,
      dryRun,
      customer: values.customer,
      report: (line) => console.log(line),
      pullTimeoutMs,
    });
    if (summary.failed > 0) {
      console.error(
        `certprov dead-letter: replayed ${summary.replayed}, then a publish to ${topic} failed (${summary.error ?? 'unknown error'}); ${summary.failed} message(s) left parked`,
      );
      return 1;
    }
    console.log(
      dryRun
        ? `dry run: ${summary.replayed} message(s) would be replayed from ${deadLetterSubscription} to ${topic}; nothing changed`
        : `replayed ${summary.replayed} message(s) from ${deadLetterSubscription} to ${topic}`,
    );
    return 0;
  },
};
