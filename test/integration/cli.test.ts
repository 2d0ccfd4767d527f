/**
 * The `certprov` command line as an operator uses it: real OS processes, real files, the real Pub/Sub emulator,
 * Google auth through a loopback metadata server.
 */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { stringify } from 'yaml';
import { verifyCertificate } from '../support/openssl.ts';
import { testKeyPool } from '../support/keys.ts';
import { freshSubscription, waitFor } from '../support/pubsub.ts';
import { FakeMetadataServer } from '../support/fake-metadata-server.ts';
import { initLocalCa } from '../../src/ca/local/init.ts';
import { SandboxTenant } from '../../src/sandbox/index.ts';
import { baseRigConfig } from '../support/adapter-rig.ts';
import { certprov, MAIN, ROOT } from '../support/certprov-cli.ts';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'certprov-cli-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('help and usage', () => {
  it('--help lists every command with a summary', async () => {
    const run = await certprov(['--help']);
    expect(run.code).toBe(0);
    for (const command of [
      'run --config FILE',
      'demo',
      'check-config --config FILE',
      'local-ca init',
      'setup-pubsub',
    ]) {
      expect(run.stdout).toContain(command);
    }
  });

  it.each(['run', 'demo', 'check-config', 'local-ca', 'setup-pubsub'])(
    '%s --help explains the command and its options',
    async (name) => {
      const run = await certprov([name, '--help']);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`certprov ${name}`);
      expect(run.stdout).toMatch(/Options:|--/);
    },
  );

  it('an unknown command or option exits 2 with the usage', async () => {
    expect((await certprov(['frobnicate'])).code).toBe(2);
    const bad = await certprov(['check-config', '--no-such-flag']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('certprov check-config');
  });
});

describe('configuration', () => {
  it('check-config accepts the commented example once its CA exists, and prints what it configures', async () => {
    // The example's CA directory (../ca from config/) does not exist in a fresh clone: check-config fails as run
    // would, saying how to create it; after `local-ca init` as the example's header says, it passes.
    const copy = path.join(work, 'example', 'config');
    await mkdir(copy, { recursive: true });
    await copyFile(path.join(ROOT, 'config/local.example.yaml'), path.join(copy, 'local.example.yaml'));
    const before = await certprov(['check-config', '--config', 'config/local.example.yaml'], {
      cwd: path.dirname(copy),
    });
    expect(before.code).toBe(2);
    expect(before.stderr).toContain('caConnections.trial_ca.directory: cannot read');
    expect(before.stderr).toContain('certprov local-ca init --dir ../ca');
    const init = await certprov(['local-ca', 'init', '--dir', './ca', '--key', 'ec'], { cwd: path.dirname(copy) });
    expect(init.code, init.stderr).toBe(0);
    const run = await certprov(['check-config', '--config', 'config/local.example.yaml'], { cwd: path.dirname(copy) });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('is valid');
    expect(run.stdout).toMatch(/trial_ca\s+local/);
    expect(run.stdout).toMatch(/device_profile\s+CN=\{\{device.serialNumber\}\}/);
  });

  it('an invalid file lists every problem with its path, exits 2, and run pulls nothing', async () => {
    const subscription = await freshSubscription('cli-bad-config');
    try {
      const file = path.join(work, 'bad.yaml');
      await writeFile(
        file,
        stringify({
          instanceId: 'has spaces',
          chrome: { endpoint: 'https://chromemanagement.googleapis.com', credentials: 'none', signatureTimeout: 15 },
          pubsub: { subscription: subscription.subscriptionName, maxInFlight: 0 },
          caConnections: { a: { type: 'local' }, b: { type: 'vault-of-wonders' } },
          profiles: {
            p: { subject: 'CN={{device.colour}}', validity: '1y', extendedKeyUsages: ['clientAuth', 'bogus'] },
            q: {
              subject: 'XX=1',
              validity: '10d',
              subjectAltNames: [{ uri: 'x:{{user.userPrimaryEmail}}' }],
              caConnections: ['nope'],
            },
          },
        }),
      );
      await subscription.publish('{"certificateProvisioningProcessId":"p-1"}');
      const run = await certprov(['run', '--config', file], {
        env: { PUBSUB_EMULATOR_HOST: inject('pubsubEmulatorHost') },
      });
      expect(run.code).toBe(2);
      for (const problem of [
        'instanceId:',
        'chrome.signatureTimeout:',
        'pubsub.maxInFlight:',
        'profiles.p.validity:',
      ]) {
        expect(run.stderr).toContain(problem);
      }
      // A second round of checks runs once the schema passes; fix the schema errors and see them all.
      await writeFile(
        file,
        stringify({
          chrome: { endpoint: 'https://chromemanagement.googleapis.com', credentials: 'none' },
          pubsub: { subscription: subscription.subscriptionName },
          caConnections: { a: { type: 'local' }, b: { type: 'vault-of-wonders' } },
          profiles: {
            p: { subject: 'CN={{device.colour}}', validity: '365d', extendedKeyUsages: ['clientAuth', 'bogus'] },
            q: { subject: 'XX=1', validity: '10d', caConnections: ['nope'] },
          },
        }),
      );
      const second = await certprov(['run', '--config', file], {
        env: { PUBSUB_EMULATOR_HOST: inject('pubsubEmulatorHost') },
      });
      expect(second.code).toBe(2);
      for (const problem of [
        'chrome.credentials: "none" is allowed only for loopback endpoints',
        'caConnections.a.directory:',
        'caConnections.b.type: unknown CA type (a text value); known:',
        'profiles.p.subject: unknown template variable {{device.colour}}',
        'profiles.p.extendedKeyUsages[1]: "bogus"',
        'profiles.q.subject: unknown subject attribute "XX"',
        'profiles.q.caConnections[0]: no CA connection named "nope"',
      ]) {
        expect(second.stderr).toContain(problem);
      }
      // Nothing was pulled: the message is still there, deliverable at once (no ack deadline to wait out).
      const received = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error('message not delivered within 5 s: it was pulled and held')),
          5_000,
        );
        subscription.subscription.once('message', (m: { data: Buffer; ack(): void }) => {
          clearTimeout(timer);
          m.ack();
          resolve(m.data.toString());
        });
      });
      expect(received).toContain('p-1');
    } finally {
      await subscription.cleanup();
    }
  });
});

describe('local-ca init', () => {
  it('creates a CA key (mode 0600) and a self-signed CA certificate, and refuses to overwrite it', async () => {
    const dir = path.join(work, 'ca');
    const run = await certprov(['local-ca', 'init', '--dir', dir, '--key', 'ec']);
    expect(run.code).toBe(0);
    const mode = (await stat(path.join(dir, 'ca.key.pem'))).mode & 0o777;
    expect(mode).toBe(0o600);
    const caPem = await readFile(path.join(dir, 'ca.cert.pem'), 'utf8');
    const self = await verifyCertificate(caPem, caPem);
    expect(self.ok, self.stderr).toBe(true);
    const again = await certprov(['local-ca', 'init', '--dir', dir]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/exists|--force/);
  });
});

describe('demo', () => {
  it('provisions every simulated process and writes leaves that openssl verifies against ca.pem', async () => {
    const out = path.join(work, 'demo-output');
    const run = await certprov(['demo', '--count', '8', '--out', out]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/issued\s+8/);
    expect(run.stdout).toMatch(/processes\/second\s+\d/);
    const leaves = (await readdir(out)).filter((f) => f.endsWith('.pem') && f !== 'ca.pem');
    expect(leaves).toHaveLength(8);
    const caPem = await readFile(path.join(out, 'ca.pem'), 'utf8');
    for (const leaf of leaves) {
      const verdict = await verifyCertificate(await readFile(path.join(out, leaf), 'utf8'), caPem);
      expect(verdict.ok, verdict.stderr).toBe(true);
    }
  });
});

describe('run as an OS process, with Google credentials from the metadata server', () => {
  it('authenticates with a Workload Identity token, provisions, never logs the token, and drains on SIGTERM', async () => {
    const token = 'ya29.cli-test-token-9c41d7a2e6';
    const metadata = await FakeMetadataServer.start({ accessToken: token });
    const tenant = await SandboxTenant.start({ expectedToken: token });
    const subscription = await freshSubscription('cli-run');
    const gcloudConfig = await mkdtemp(path.join(tmpdir(), 'certprov-gcloud-'));
    try {
      const pool = await testKeyPool();
      const caDir = path.join(work, 'run-ca');
      const ca = await initLocalCa({ directory: caDir, keyType: 'ec' });
      const raw = baseRigConfig(tenant.endpoint, caDir, subscription.subscriptionName);
      const file = path.join(work, 'run.yaml');
      await writeFile(
        file,
        stringify({
          ...raw,
          chrome: { ...(raw.chrome as object), credentials: 'google-default' },
          log: { level: 'debug' },
        }),
      );

      const child = spawn(process.execPath, [MAIN, 'run', '--config', file], {
        cwd: ROOT,
        env: {
          ...process.env,
          PUBSUB_EMULATOR_HOST: inject('pubsubEmulatorHost'),
          GCE_METADATA_HOST: metadata.host,
          CLOUDSDK_CONFIG: gcloudConfig,
          GOOGLE_APPLICATION_CREDENTIALS: '',
          NO_PROXY: '127.0.0.1,localhost',
        },
      });
      let output = '';
      child.stdout.on('data', (c: Buffer) => (output += c.toString()));
      child.stderr.on('data', (c: Buffer) => (output += c.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      try {
        await waitFor(() => output.includes('adapter started'), 30_000, 'adapter started');
        const ids = [
          tenant.createProcess({ key: pool.next('rsa-2048') }),
          tenant.createProcess({
            key: pool.next('ec-p256'),
            subject: { kind: 'user', userPrimaryEmail: 'cli@example.com', userDirectoryApiId: 'u-cli' },
          }),
        ];
        for (const id of ids)
          await tenant.notify(
            id,
            { encoding: 'protobuf' },
            async (data, attributes) => void (await subscription.publish(data, attributes)),
          );
        await tenant.waitUntilFinished(ids, 30_000);
        for (const id of ids) {
          const pem = tenant.process(id)?.issuedCertificate;
          expect(pem, tenant.process(id)?.failureMessage).toBeDefined();
          expect((await verifyCertificate(pem as string, ca.certificatePem)).ok).toBe(true);
        }
        expect(metadata.requests.some((r) => r.path.includes('/token'))).toBe(true);
      } finally {
        child.kill('SIGTERM');
      }
      expect(await exited).toBe(0);
      expect(output).toContain('draining');
      expect(output).toContain('adapter stopped');
      // Every line is JSON with a Cloud Logging severity; no token, no email in clear text.
      for (const line of output.split('\n').filter((l) => l.trim() !== '')) {
        expect(() => JSON.parse(line) as unknown, line).not.toThrow();
        expect(JSON.parse(line)).toHaveProperty('severity');
      }
      expect(output).not.toContain(token);
      expect(output).not.toContain('cli@example.com');
    } finally {
      await Promise.allSettled([
        metadata.close(),
        tenant.close(),
        subscription.cleanup(),
        rm(gcloudConfig, { recursive: true, force: true }),
      ]);
    }
  });
});
