/**
 * A command that cannot start ends with ONE line saying what failed and what to do: no stack, exit 2 for
 * configuration, 1 for runtime, no "draining" before anything started, no library warning as plain text, and
 * check-config fails wherever run would (secret files and variables, a local CA directory, the sqlite store's file).
 * Real OS processes; Google auth through a loopback metadata server; no Pub/Sub needed (the failures come first).
 */
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { initLocalCa } from '../../../src/ca/local/init.ts';
import { certprov } from '../../support/certprov-cli.ts';
import { FakeMetadataServer } from '../../support/fake-metadata-server.ts';

let work: string;
let caDir: string;
/** An environment with no Google credentials anywhere (no key file, no gcloud login, no emulator). */
let bare: NodeJS.ProcessEnv;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'certprov-startup-'));
  caDir = path.join(work, 'ca');
  await initLocalCa({ directory: caDir, keyType: 'ec' });
  bare = {
    GOOGLE_APPLICATION_CREDENTIALS: '',
    CLOUDSDK_CONFIG: path.join(work, 'gcloud'),
    HOME: work,
    PUBSUB_EMULATOR_HOST: '',
    FIRESTORE_EMULATOR_HOST: '',
    GCE_METADATA_HOST: '',
    METADATA_SERVER_DETECTION: '',
  };
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function config(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    pubsub: { subscription: 'projects/acme-certs/subscriptions/certprov' },
    http: { port: 0, host: '127.0.0.1' },
    caConnections: { trial_ca: { type: 'local', directory: caDir } },
    profiles: { device_profile: { subject: 'CN={{device.serialNumber}}', validity: '30d' } },
    ...extra,
  };
}

async function writeConfig(name: string, value: Record<string, unknown>): Promise<string> {
  const file = path.join(work, name);
  await writeFile(file, stringify(value));
  return file;
}

function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('run that cannot start', () => {
  it('without Google credentials: one CRITICAL line with what to do, no stack, no warning text, exit 1', async () => {
    const file = await writeConfig('no-creds.yaml', config());
    const run = await certprov(['run', '--config', file], { env: bare });
    expect(run.code).toBe(1);
    // stdout is the JSON log stream: every line parses (a library warning printed as text would not).
    const lines = jsonLines(run.stdout);
    expect(run.stderr).toBe('');
    const last = lines.at(-1) ?? {};
    expect(last.severity).toBe('CRITICAL');
    expect(String(last.message)).toMatch(/could not start: no Google credentials.*what to do: .*Workload Identity/);
    expect(lines.filter((l) => l.severity === 'CRITICAL')).toHaveLength(1);
    expect(run.stdout).not.toMatch(/"stack"|\n\s+at /);
    expect(run.stdout).not.toMatch(/draining|adapter stopped|stopped pulling/);
  });

  it('with an unbound Workload Identity (the metadata server gives no token): says how to bind it', async () => {
    const metadata = await FakeMetadataServer.start();
    metadata.tokenFailureStatus = 404;
    try {
      const file = await writeConfig('unbound.yaml', config());
      const run = await certprov(['run', '--config', file], {
        env: { ...bare, GCE_METADATA_HOST: metadata.host, NO_PROXY: '127.0.0.1' },
      });
      expect(run.code).toBe(1);
      const last = jsonLines(run.stdout).at(-1) ?? {};
      expect(String(last.message)).toMatch(/could not start: no Google credentials/);
      expect(String(last.hint)).toContain('iam.gke.io/gcp-service-account');
      expect(run.stdout).not.toMatch(/"stack"|draining/);
    } finally {
      await metadata.close();
    }
  });
});

describe("run's start-up warning about the user hash key", () => {
  const warning = /^log\.userHashKey is not set: the user field of log lines is an unkeyed SHA-256 prefix/;
  const warningsOf = (stdout: string) =>
    jsonLines(stdout).filter((l) => l.severity === 'WARNING' && warning.test(String(l.message)));

  it('without log.userHashKey: exactly one WARNING at start, saying what to set', async () => {
    const run = await certprov(['run', '--config', await writeConfig('no-key.yaml', config())], { env: bare });
    expect(run.code).toBe(1); // then it stops at the missing credentials, after the warning
    expect(warningsOf(run.stdout)).toHaveLength(1);
    expect(String(warningsOf(run.stdout)[0]?.message)).toContain('set log.userHashKey to a per-deployment secret');
  });

  it('with log.userHashKey: no such warning, and the key is printed nowhere', async () => {
    const key = 'user-hash-key-never-printed-9c2e';
    const keyFile = path.join(work, 'user-hash-key');
    await writeFile(keyFile, `${key}\n`);
    const file = await writeConfig('key.yaml', config({ log: { level: 'info', userHashKey: { file: keyFile } } }));
    const run = await certprov(['run', '--config', file], { env: bare });
    expect(run.code).toBe(1);
    expect(jsonLines(run.stdout).length).toBeGreaterThan(0);
    expect(warningsOf(run.stdout)).toEqual([]);
    expect(run.stdout + run.stderr).not.toContain(key);
  });
});

describe('setup-pubsub that cannot start', () => {
  it('without Google credentials: one line on stderr with what to do, no stack, exit 1', async () => {
    const run = await certprov(
      [
        'setup-pubsub',
        '--project',
        'acme-certs',
        '--topic',
        'certprov-topic',
        '--subscription',
        'certprov-sub',
        '--dead-letter-topic',
        'certprov-dead-letters',
      ],
      { env: bare },
    );
    expect(run.code).toBe(1);
    const lines = run.stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^certprov setup-pubsub: no Google credentials for Pub\/Sub.*what to do: /);
    expect(run.stderr).not.toMatch(/\n\s+at |Warning/);
  });
});

describe('check-config resolves what run resolves', () => {
  const secretValue = 'S3CRET-value-never-printed-4d1f';

  it.each([
    {
      case: 'a missing secret file',
      extra: () => ({ log: { level: 'info', userHashKey: { file: path.join(work, 'missing-key') } } }),
      problem: /log\.userHashKey: cannot read secret file .*missing-key: ENOENT; mount the Secret/,
    },
    {
      case: 'an unset secret variable',
      extra: () => ({ log: { level: 'info', userHashKey: { env: 'CERTPROV_TEST_UNSET_SECRET' } } }),
      problem:
        /log\.userHashKey: environment variable CERTPROV_TEST_UNSET_SECRET is not set or empty; set CERTPROV_TEST_UNSET_SECRET \(from a Kubernetes Secret\)/,
    },
    {
      case: 'a missing local CA directory',
      extra: () => ({ caConnections: { trial_ca: { type: 'local', directory: path.join(work, 'no-ca') } } }),
      problem:
        /caConnections\.trial_ca\.directory: cannot read .*no-ca\/ca\.key\.pem \(ENOENT\); create the CA with `certprov local-ca init/,
    },
    {
      case: 'a sqlite store path below a regular file',
      extra: () => {
        writeFileSync(path.join(work, 'not-a-directory'), 'x');
        return { store: { type: 'sqlite', path: path.join(work, 'not-a-directory', 'certprov.db') } };
      },
      problem:
        /store\.path: cannot create .*certprov\.db: .*not-a-directory is not a directory \(ENOTDIR\); point store\.path/,
    },
    {
      case: 'a sqlite store path naming a file that is not a SQLite database',
      extra: () => ({ store: { type: 'sqlite', path: path.join(caDir, 'ca.cert.pem') } }),
      problem: /store\.path: .*ca\.cert\.pem is not a SQLite database; point store\.path/,
    },
  ])('$case: check-config and run both exit 2 naming the file and the field', async ({ extra, problem }) => {
    const file = await writeConfig('refs.yaml', config(extra()));
    const env = { ...bare, CERTPROV_TEST_UNSET_SECRET: '' };
    for (const command of ['check-config', 'run']) {
      const run = await certprov([command, '--config', file], { env });
      expect(run.code, `${command}: ${run.stderr}`).toBe(2);
      expect(run.stderr).toContain(`${file} is invalid`);
      expect(run.stderr).toMatch(problem);
      expect(run.stdout).not.toContain('draining');
    }
  });

  it('a readable secret passes and its value is printed nowhere', async () => {
    const keyFile = path.join(work, 'hash-key');
    await writeFile(keyFile, `${secretValue}\n`);
    const file = await writeConfig('ok.yaml', config({ log: { level: 'info', userHashKey: { file: keyFile } } }));
    const run = await certprov(['check-config', '--config', file], { env: bare });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout + run.stderr).not.toContain(secretValue);
  });
});
