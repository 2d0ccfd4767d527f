import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.ts';
import { gcloudCommands, serviceAgent, withBinding } from '../../../src/cli/pubsub-resources.ts';

const base = {
  projectId: 'acme-certs',
  topic: 'certprov',
  subscription: 'certprov-adapter',
  deadLetterTopic: 'certprov-dead-letter',
};

describe('gcloudCommands', () => {
  it('prints the topics, subscriptions, policies and the service agent bindings with the defaults', () => {
    expect(gcloudCommands({ ...base, projectNumber: '1234567890' })).toEqual([
      'gcloud pubsub topics create projects/acme-certs/topics/certprov --project=acme-certs',
      'gcloud pubsub topics create projects/acme-certs/topics/certprov-dead-letter --project=acme-certs',
      'gcloud pubsub subscriptions create projects/acme-certs/subscriptions/certprov-dead-letter-sub ' +
        '--topic=projects/acme-certs/topics/certprov-dead-letter --message-retention-duration=604800s --project=acme-certs',
      'gcloud pubsub subscriptions create projects/acme-certs/subscriptions/certprov-adapter ' +
        '--topic=projects/acme-certs/topics/certprov --ack-deadline=60 ' +
        '--dead-letter-topic=projects/acme-certs/topics/certprov-dead-letter --max-delivery-attempts=10 ' +
        '--min-retry-delay=10s --max-retry-delay=600s --project=acme-certs',
      'gcloud pubsub topics add-iam-policy-binding projects/acme-certs/topics/certprov-dead-letter ' +
        '--member=serviceAccount:service-1234567890@gcp-sa-pubsub.iam.gserviceaccount.com --role=roles/pubsub.publisher --project=acme-certs',
      'gcloud pubsub subscriptions add-iam-policy-binding projects/acme-certs/subscriptions/certprov-adapter ' +
        '--member=serviceAccount:service-1234567890@gcp-sa-pubsub.iam.gserviceaccount.com --role=roles/pubsub.subscriber --project=acme-certs',
    ]);
  });

  it('uses a PROJECT_NUMBER placeholder, honours the options, and grants the adapter when named', () => {
    const commands = gcloudCommands({
      ...base,
      maxDeliveryAttempts: 20,
      minBackoffSeconds: 30,
      maxBackoffSeconds: 300,
      ackDeadlineSeconds: 120,
      exactlyOnce: true,
      deadLetterSubscription: 'parked',
      adapterServiceAccount: 'certprov@acme-certs.iam.gserviceaccount.com',
    }).join('\n');
    expect(commands).toContain('service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com');
    expect(commands).toContain('--ack-deadline=120 ');
    expect(commands).toContain('--max-delivery-attempts=20 ');
    expect(commands).toContain('--min-retry-delay=30s --max-retry-delay=300s --enable-exactly-once-delivery ');
    expect(commands).toContain('subscriptions create projects/acme-certs/subscriptions/parked ');
    expect(commands).toContain(
      '--member=serviceAccount:certprov@acme-certs.iam.gserviceaccount.com --role=roles/pubsub.subscriber',
    );
    expect(commands).toContain(
      '--member=serviceAccount:certprov@acme-certs.iam.gserviceaccount.com --role=roles/pubsub.viewer',
    );
  });

  it('accepts full resource names, including a dead-letter topic in another project', () => {
    const commands = gcloudCommands({ ...base, deadLetterTopic: 'projects/acme-ops/topics/parked' }).join('\n');
    expect(commands).toContain('--dead-letter-topic=projects/acme-ops/topics/parked ');
    // The parked-message subscription defaults to the adapter's project.
    expect(commands).toContain(
      'subscriptions create projects/acme-certs/subscriptions/parked-sub --topic=projects/acme-ops/topics/parked ',
    );
  });

  it('reports every invalid option at once (they end up in shell commands)', () => {
    let error: unknown;
    try {
      gcloudCommands({
        projectId: 'Acme; rm -rf /',
        topic: 'x',
        subscription: 'ok-name',
        deadLetterTopic: 'goog-reserved',
        maxDeliveryAttempts: 4,
        minBackoffSeconds: 700,
        ackDeadlineSeconds: 5,
        projectNumber: '12ab',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const field of [
      'projectId',
      'topic',
      'deadLetterTopic',
      'maxDeliveryAttempts',
      'minBackoffSeconds',
      'ackDeadlineSeconds',
      'projectNumber',
    ]) {
      expect(problems).toContain(`${field}:`);
    }
  });

  it('refuses a dead-letter topic equal to the topic', () => {
    expect(() => gcloudCommands({ ...base, deadLetterTopic: 'certprov' })).toThrow(/must differ from topic/);
  });
});

describe('withBinding', () => {
  const agent = `serviceAccount:${serviceAgent('42')}`;

  it('adds a new role binding and keeps the etag for compare-and-set', () => {
    const policy = { etag: 'abc', bindings: [{ role: 'roles/viewer', members: ['user:a@example.com'] }] };
    const next = withBinding(policy, 'roles/pubsub.publisher', agent);
    expect(next.changed).toBe(true);
    expect(next.policy.etag).toBe('abc');
    expect(next.policy.bindings).toEqual([
      { role: 'roles/viewer', members: ['user:a@example.com'] },
      { role: 'roles/pubsub.publisher', members: [agent] },
    ]);
    expect(policy.bindings).toHaveLength(1); // input untouched
  });

  it('adds the member to an existing binding of the role', () => {
    const next = withBinding(
      { bindings: [{ role: 'roles/pubsub.publisher', members: ['user:a@example.com'] }] },
      'roles/pubsub.publisher',
      agent,
    );
    expect(next.policy.bindings).toEqual([{ role: 'roles/pubsub.publisher', members: ['user:a@example.com', agent] }]);
  });

  it('reports no change when the member already has the role', () => {
    const policy = { bindings: [{ role: 'roles/pubsub.publisher', members: [agent] }] };
    expect(withBinding(policy, 'roles/pubsub.publisher', agent)).toEqual({ policy, changed: false });
  });

  it('does not count a conditional binding as granted', () => {
    const policy = {
      bindings: [
        { role: 'roles/pubsub.publisher', members: [agent], condition: { expression: 'false', title: 'never' } },
      ],
    };
    const next = withBinding(policy, 'roles/pubsub.publisher', agent);
    expect(next.changed).toBe(true);
    expect(next.policy.bindings).toHaveLength(2);
  });

  it('starts from an empty policy', () => {
    expect(withBinding({}, 'roles/pubsub.subscriber', agent).policy.bindings).toEqual([
      { role: 'roles/pubsub.subscriber', members: [agent] },
    ]);
  });
});
