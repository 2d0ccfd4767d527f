/**
 * The certificate lifecycle end to end: Google's Pub/Sub emulator → the adapter (the Adapter class `run` uses, on a
 * sqlite store) → the sandbox tenant (simulated ChromeOS clients with real keys) → a local CA that publishes a CRL
 * and a DigiCert connection whose fake CertCentral holds orders pending. The admin's side is `certprov` as real OS
 * processes on the same sqlite file, beside the running adapter.
 *
 * Proves: a device and a user certificate issued through Pub/Sub enter the inventory; a renewal for the same device
 * and profile supersedes the first; `revoke --dry-run` changes nothing, `revoke --device`/`--user --yes` revoke, and
 * openssl (-crl_check, with the CRL fetched from the URL in the leaf's own cRLDistributionPoints and served by the
 * adapter) rejects exactly the revoked leaves; `certprov status <correlation id>` shows a pending DigiCert order
 * (step and order id) and, once DigiCert issued it, the certificate.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { initLocalCa } from '../../src/ca/local/init.ts';
import type { KeyPool, SandboxSubject } from '../../src/sandbox/index.ts';
import { digicertConnectionBlock, TEST_API_KEY } from '../fakes/digicert/connection.ts';
import { FakeCertCentral } from '../fakes/digicert/fake-certcentral.ts';
import { AdapterRig, rigConfig, type RawConfig } from '../support/adapter-rig.ts';
import { certprov } from '../support/certprov-cli.ts';
import { freePort } from '../support/emulators.ts';
import { testKeyPool } from '../support/keys.ts';
import { openssl, verifyCertificate } from '../support/openssl.ts';
import { freshSubscription, rigPubsub, waitFor, type FreshSubscription } from '../support/pubsub.ts';

const LOCAL = 'default_ca_config';
const DIGICERT = 'digicert_ca';
const DEVICE = { kind: 'device', serialNumber: 'SER-E2E-1', deviceDirectoryApiId: 'dir-e2e-1' } as const;
const OTHER_DEVICE = { kind: 'device', serialNumber: 'SER-E2E-2', deviceDirectoryApiId: 'dir-e2e-2' } as const;
const ALICE = { kind: 'user', userPrimaryEmail: 'alice@example.com', userDirectoryApiId: 'u-alice' } as const;
const BOB = { kind: 'user', userPrimaryEmail: 'bob@example.com', userDirectoryApiId: 'u-bob' } as const;

let pool: KeyPool;
let work: string;
let subscription: FreshSubscription;
let fake: FakeCertCentral;
let rig: AdapterRig;
let caPem: string;
let configFile: string;

interface Listed {
  serial: string;
  caConnection: string;
  profile: string;
  status: string;
  processId: string;
  supersededBy?: string;
  revocation?: { state: string; reason: string };
}

async function cli(args: string[]) {
  return certprov([...args, '--config', configFile], { timeoutMs: 30_000 });
}

async function list(...filters: string[]): Promise<Listed[]> {
  const run = await cli(['certs', 'list', '--json', ...filters]);
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as Listed[];
}

/** Creates a process on the tenant, publishes its notification to the emulator topic. */
async function notify(subject: SandboxSubject, caConnection = LOCAL): Promise<string> {
  const id = rig.tenant.createProcess({ key: pool.next('ec-p256'), subject, caConnection });
  await rig.notify(id);
  return id;
}

async function issued(id: string): Promise<string> {
  await rig.tenant.waitUntilFinished([id], 20_000);
  const resource = rig.tenant.process(id);
  expect(resource.failureMessage, `process ${id} failed`).toBeUndefined();
  return resource.issuedCertificate as string;
}

beforeAll(async () => {
  pool = await testKeyPool();
  work = await mkdtemp(path.join(tmpdir(), 'certprov-lifecycle-e2e-'));
  const caDirectory = path.join(work, 'ca');
  caPem = (await initLocalCa({ directory: caDirectory, keyType: 'ec', subject: 'CN=lifecycle e2e CA' })).certificatePem;
  await writeFile(path.join(work, 'ca.pem'), caPem);
  const keyFile = path.join(work, 'digicert.key');
  await writeFile(keyFile, TEST_API_KEY, { mode: 0o600 });
  fake = await FakeCertCentral.start({ apiKey: TEST_API_KEY, organizationInSubject: true, issuance: 'pending' });
  subscription = await freshSubscription('lifecycle-e2e', { retryBackoffSeconds: { min: 0, max: 1 } });

  // The leaves must carry the URL the adapter serves, so its HTTP port is chosen before it starts.
  const port = await freePort();
  const caConnections: RawConfig = {
    [LOCAL]: {
      type: 'local',
      directory: caDirectory,
      crl: { url: `http://127.0.0.1:${port}/crl/${LOCAL}.crl`, validity: '2d', checkInterval: '1s' },
    },
    [DIGICERT]: digicertConnectionBlock(fake, {
      apiKey: { file: keyFile },
      organizationName: 'Example Org',
      statusPollInterval: '200ms',
      pendingRecheckInterval: '300ms',
    }),
  };
  // DigiCert client certificates need O = the validated organization and the user's email SAN.
  const profiles: RawConfig = {
    device_profile: {
      subject: 'CN={{device.serialNumber}},O=Example Org',
      subjectAltNames: [{ uri: 'urn:chromeos:device:{{device.deviceDirectoryApiId}}' }],
      validity: '30d',
      // DigiCert's client product issues to users only.
      caConnections: [LOCAL],
    },
    user_profile: {
      subject: 'CN={{user.userPrimaryEmail}},O=Example Org',
      subjectAltNames: [{ email: '{{user.userPrimaryEmail}}' }],
      validity: '30d',
    },
  };
  const store = { type: 'sqlite', path: path.join(work, 'certprov.db') };
  rig = await AdapterRig.start({
    pubsub: rigPubsub(subscription),
    serveHttp: true,
    logLevel: 'info',
    caConnections,
    profiles,
    config: { store, http: { host: '127.0.0.1', port } },
  });
  // The admin's configuration: the one `run` reads (same store, same connections).
  const raw = rigConfig({
    endpoint: rig.tenant.endpoint,
    subscription: subscription.subscriptionName,
    caConnections,
    profiles,
  });
  configFile = path.join(work, 'certprov.yaml');
  await writeFile(configFile, stringify({ ...raw, store, log: { level: 'info' } }));
}, 60_000);

afterAll(async () => {
  await rig?.stop();
  await fake?.close();
  await subscription?.cleanup();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('lifecycle through Pub/Sub: issue, renew, revoke, status', () => {
  const ids = { first: '', renewed: '', alice: '', other: '' };

  it('issues a device and a user certificate; a renewal for the same device and profile supersedes the first', async () => {
    ids.first = await notify(DEVICE);
    ids.alice = await notify(ALICE);
    ids.other = await notify(OTHER_DEVICE);
    for (const id of [ids.first, ids.alice, ids.other]) {
      const verdict = await verifyCertificate(await issued(id), caPem, { purpose: 'sslclient' });
      expect(verdict.ok, verdict.stdout + verdict.stderr).toBe(true);
    }
    expect((await list('--device', 'SER-E2E-1')).map((c) => [c.processId, c.status])).toEqual([[ids.first, 'active']]);

    // A second process for the same device and profile: the renewal.
    ids.renewed = await notify(DEVICE);
    await issued(ids.renewed);
    const [device, alice, other] = await Promise.all([
      list('--device', 'dir-e2e-1'),
      list('--user', 'alice@example.com'),
      list('--device', 'SER-E2E-2'),
    ]);
    expect(device).toHaveLength(2);
    const of = (id: string) => device.find((c) => c.processId === id)!;
    expect(of(ids.first)).toMatchObject({ status: 'superseded', supersededBy: of(ids.renewed).serial });
    expect(of(ids.renewed)).toMatchObject({ status: 'active', profile: 'device_profile', caConnection: LOCAL });
    expect(of(ids.renewed).supersededBy).toBeUndefined();
    // Other holders are untouched.
    expect(alice.map((c) => [c.processId, c.status])).toEqual([[ids.alice, 'active']]);
    expect(other.map((c) => [c.processId, c.status])).toEqual([[ids.other, 'active']]);
  });

  it('revokes by device and by user (after a dry run that changes nothing); openssl rejects exactly those with the served CRL', async () => {
    const dry = await cli(['revoke', '--device', 'SER-E2E-1', '--reason', 'keyCompromise', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('dry run: 2 certificate(s) would be revoked (keyCompromise)');
    expect(await list('--status', 'revoked')).toEqual([]);

    const byDevice = await cli(['revoke', '--device', 'SER-E2E-1', '--reason', 'keyCompromise', '--yes']);
    expect(byDevice.code, byDevice.stdout + byDevice.stderr).toBe(0);
    // The adapter signed CRL number 1 (empty) when it started; each revoking command signs the next one.
    expect(byDevice.stdout).toContain(`CRL of ${LOCAL}: number 2 signed and stored`);
    const byUser = await cli(['revoke', '--user', 'alice@example.com', '--reason', 'affiliationChanged', '--yes']);
    expect(byUser.code, byUser.stdout + byUser.stderr).toBe(0);
    expect(byUser.stdout).toContain(`CRL of ${LOCAL}: number 3 signed and stored`);

    const [device, [alice], [other]] = await Promise.all([
      list('--device', 'SER-E2E-1'),
      list('--user', 'u-alice'),
      list('--device', 'SER-E2E-2'),
    ]);
    expect(device.map((c) => c.status)).toEqual(['revoked', 'revoked']);
    for (const c of device) expect(c.revocation).toMatchObject({ state: 'revoked', reason: 'keyCompromise' });
    expect(alice).toMatchObject({ status: 'revoked', revocation: { state: 'revoked', reason: 'affiliationChanged' } });
    expect(other).toMatchObject({ processId: ids.other, status: 'active' });
    expect(other).not.toHaveProperty('revocation');

    // The CRL at the URL in the leaf's own cRLDistributionPoints, as served by the running adapter.
    const leaves = [ids.first, ids.renewed, ids.alice, ids.other].map((id) => ({
      id,
      pem: rig.tenant.process(id).issuedCertificate as string,
    }));
    const leafFile = path.join(work, 'leaf.pem');
    await writeFile(leafFile, leaves[0]!.pem);
    const text = (await openssl(['x509', '-in', leafFile, '-noout', '-text'])).stdout;
    const url = /X509v3 CRL Distribution Points:\s*\n\s*Full Name:\s*\n\s*URI:(\S+)/.exec(text)?.[1];
    expect(url, text).toBe(`http://127.0.0.1:${rig.adapter.httpPort}/crl/${LOCAL}.crl`);
    const revokedSerials = [...device, alice!].map((c) => c.serial.toUpperCase());
    const crlDer = path.join(work, 'crl.der');
    const crlPem = path.join(work, 'crl.pem');
    // Replicas read the stored CRL again within seconds: wait until the served one lists all three.
    await expect
      .poll(
        async () => {
          const response = await fetch(url!);
          if (response.status !== 200) return `HTTP ${response.status}`;
          await writeFile(crlDer, Buffer.from(await response.arrayBuffer()));
          const crl = await openssl([
            'crl',
            '-inform',
            'DER',
            '-in',
            crlDer,
            '-CAfile',
            path.join(work, 'ca.pem'),
            '-noout',
            '-verify',
            '-text',
          ]);
          if (!(crl.stdout + crl.stderr).includes('verify OK')) return `CRL does not verify: ${crl.stderr}`;
          if (!/X509v3 CRL Number:\s*\n\s*3\b/.test(crl.stdout)) return 'not CRL number 3 yet';
          return revokedSerials.every((s) => crl.stdout.includes(`Serial Number: ${s}`));
        },
        { timeout: 15_000, interval: 200 },
      )
      .toBe(true);
    expect((await openssl(['crl', '-inform', 'DER', '-in', crlDer, '-out', crlPem])).code).toBe(0);

    for (const leaf of leaves) {
      const file = path.join(work, `${leaf.id}.pem`);
      await writeFile(file, leaf.pem);
      const verdict = await openssl([
        'verify',
        '-crl_check',
        '-CAfile',
        path.join(work, 'ca.pem'),
        '-CRLfile',
        crlPem,
        file,
      ]);
      if (leaf.id === ids.other) {
        expect(verdict.code, verdict.stdout + verdict.stderr).toBe(0);
      } else {
        expect(verdict.code, `${leaf.id} passed -crl_check`).not.toBe(0);
        expect(verdict.stdout + verdict.stderr).toContain('certificate revoked');
      }
    }
  });

  it('status by correlation id shows the pending DigiCert order, then the certificate once DigiCert issued it', async () => {
    const id = await notify(BOB, DIGICERT);
    await waitFor(() => fake.ordersForProcess(id).length === 1, 20_000, 'the DigiCert order');
    const order = fake.ordersForProcess(id)[0]!;
    expect(order.status).toBe('pending');
    let correlationId = '';
    await expect
      .poll(
        async () => {
          const record = await rig.adapter.store.get(id);
          correlationId = record?.correlationId ?? '';
          return record?.step;
        },
        { timeout: 10_000 },
      )
      .toBe('await_ca');

    const pending = await cli(['status', correlationId, '--json']);
    expect(pending.code, pending.stderr).toBe(0);
    const during = JSON.parse(pending.stdout) as Record<string, unknown>;
    expect(during).toMatchObject({ processId: id, correlationId, step: 'await_ca', caConnection: DIGICERT });
    expect(during).not.toHaveProperty('outcome');
    expect(during).not.toHaveProperty('certificate');
    expect(during.caRequest).toMatchObject({ orderId: order.id });

    await fake.approve(order.id);
    const pem = await issued(id);
    const verdict = await verifyCertificate(pem, fake.ca.rootPem, {
      untrusted: [fake.ca.intermediatePem],
      purpose: 'sslclient',
    });
    expect(verdict.ok, verdict.stdout + verdict.stderr).toBe(true);

    const done = await cli(['status', correlationId, '--json']);
    expect(done.code, done.stderr).toBe(0);
    const [certificate] = await list('--user', 'bob@example.com');
    expect(certificate).toMatchObject({ processId: id, caConnection: DIGICERT, status: 'active' });
    expect(JSON.parse(done.stdout)).toMatchObject({
      processId: id,
      step: 'done',
      outcome: 'issued',
      certificate: { serial: certificate!.serial, status: 'active' },
    });
    // The inventory's serial is the one in the certificate the device received.
    const file = path.join(work, 'bob.pem');
    await writeFile(file, pem);
    const serial = (await openssl(['x509', '-in', file, '-noout', '-serial'])).stdout.trim();
    expect(serial.replace(/^serial=0*/, '').toLowerCase()).toBe(certificate!.serial.replace(/^0+/, ''));
  });
});
