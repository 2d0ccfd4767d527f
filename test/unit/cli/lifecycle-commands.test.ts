/**
 * `certprov status`, `certs list` and `revoke` as an admin runs them: real OS processes on the sqlite file an adapter
 * (sandbox tenant, two local CAs) wrote its inventory into. The command-line configuration no longer names one of
 * the two connections, so `revoke` meets a certificate it cannot revoke and must report it without failing the
 * batch.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { initLocalCa } from '../../../src/ca/local/init.ts';
import { AdapterRig, rigConfig } from '../../support/adapter-rig.ts';
import { certprov } from '../../support/certprov-cli.ts';
import { testKeyPool } from '../../support/keys.ts';

let work: string;
let configFile: string;
const processes: { firstDevice: string; secondDevice: string; otherCa: string; user: string } = {
  firstDevice: '',
  secondDevice: '',
  otherCa: '',
  user: '',
};
let correlationOfSecond = '';

interface ListedCertificate {
  serial: string;
  caConnection: string;
  status: string;
  processId: string;
  supersededBy?: string;
  revocation?: { state: string; reason: string };
}

async function list(...filters: string[]): Promise<ListedCertificate[]> {
  const run = await certprov(['certs', 'list', '--config', configFile, '--json', ...filters]);
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as ListedCertificate[];
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'certprov-lifecycle-cli-'));
  const caA = path.join(work, 'ca-a');
  const caB = path.join(work, 'ca-b');
  await initLocalCa({ directory: caA, keyType: 'ec', subject: 'CN=lifecycle CA A' });
  await initLocalCa({ directory: caB, keyType: 'ec', subject: 'CN=lifecycle CA B' });
  const store = { type: 'sqlite', path: path.join(work, 'certprov.db') };
  const rig = await AdapterRig.start({
    logLevel: 'warn',
    caConnections: {
      default_ca_config: { type: 'local', directory: caA },
      retired_ca: { type: 'local', directory: caB },
    },
    config: { store },
  });
  try {
    const pool = await testKeyPool();
    const device = { kind: 'device', serialNumber: 'SER-LC-1', deviceDirectoryApiId: 'dir-lc-1' } as const;
    // One at a time, so the supersede order is the issue order.
    const issue = async (options: Parameters<typeof rig.tenant.createProcess>[0]) => {
      const id = rig.tenant.createProcess(options);
      await rig.notify(id);
      await rig.tenant.waitUntilFinished([id], 15_000);
      return id;
    };
    processes.firstDevice = await issue({ key: pool.next('ec-p256'), subject: device });
    processes.secondDevice = await issue({ key: pool.next('ec-p256'), subject: device });
    processes.otherCa = await issue({ key: pool.next('ec-p256'), subject: device, caConnection: 'retired_ca' });
    processes.user = await issue({
      key: pool.next('ec-p256'),
      subject: { kind: 'user', userPrimaryEmail: 'alice@example.com', userDirectoryApiId: 'u-alice' },
    });
    correlationOfSecond = (await rig.adapter.store.get(processes.secondDevice))!.correlationId;
  } finally {
    await rig.stop();
  }
  // The admin's configuration (the one `run` reads): the same store and CA A; CA B's connection was removed since.
  const raw = rigConfig({
    endpoint: 'http://127.0.0.1:9',
    subscription: 'projects/certprov-test/subscriptions/provisioning',
    caConnections: { default_ca_config: { type: 'local', directory: caA } },
  });
  configFile = path.join(work, 'certprov.yaml');
  await writeFile(configFile, stringify({ ...raw, store, log: { level: 'info' } }));
}, 120_000);

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('certprov certs list', () => {
  it('lists a device’s certificates by serial number or directory id, the renewed one superseded', async () => {
    const bySerial = await list('--device', 'SER-LC-1');
    const byDirectoryId = await list('--device', 'dir-lc-1');
    expect(byDirectoryId).toEqual(bySerial);
    expect(bySerial).toHaveLength(3);
    const of = (processId: string) => bySerial.find((c) => c.processId === processId)!;
    expect(of(processes.firstDevice)).toMatchObject({ status: 'superseded', caConnection: 'default_ca_config' });
    expect(of(processes.firstDevice).supersededBy).toBe(of(processes.secondDevice).serial);
    // A renewal supersedes whichever connection issued it: the device now holds CA B's certificate.
    expect(of(processes.secondDevice).supersededBy).toBe(of(processes.otherCa).serial);
    expect(of(processes.otherCa)).toMatchObject({ status: 'active', caConnection: 'retired_ca' });
    expect(JSON.stringify(bySerial)).not.toContain('BEGIN CERTIFICATE');
  });

  it('filters by user (email in any case), connection, status and expiry, and prints a table without --json', async () => {
    const user = await list('--user', 'ALICE@example.com');
    expect(user.map((c) => c.processId)).toEqual([processes.user]);
    expect((await list('--connection', 'retired_ca')).map((c) => c.processId)).toEqual([processes.otherCa]);
    expect(await list('--status', 'superseded')).toHaveLength(2);
    // The rig's profiles issue for 30 days: all of them expire within 31 days, none within 29.
    expect(await list('--expiring-within', '31d')).toHaveLength(4);
    expect(await list('--expiring-within', '29d')).toHaveLength(0);

    const table = await certprov(['certs', 'list', '--config', configFile, '--user', 'u-alice']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^SERIAL\s+CONNECTION\s+PROFILE\s+HOLDER\s+STATUS\s+NOT AFTER/);
    expect(table.stdout).toContain(user[0]!.serial);
    expect(table.stdout).toContain('alice@example.com');
  });

  it.each([
    [['--status', 'expired'], '--status must be one of active, superseded, revoked'],
    [['--expiring-within', 'soon'], '--expiring-within takes a duration'],
  ])('refuses %j with exit code 2', async (args, message) => {
    const run = await certprov(['certs', 'list', '--config', configFile, ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
  });
});

describe('certprov status', () => {
  it('shows a process found by the correlation id the user reads, with its certificate', async () => {
    const run = await certprov(['status', correlationOfSecond, '--config', configFile, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const view = JSON.parse(run.stdout) as Record<string, unknown>;
    const [certificate] = (await list('--device', 'SER-LC-1')).filter((c) => c.processId === processes.secondDevice);
    expect(view).toMatchObject({
      processId: processes.secondDevice,
      correlationId: correlationOfSecond,
      step: 'done',
      outcome: 'issued',
      caConnection: 'default_ca_config',
      profile: 'device_profile',
      // CA B's certificate for the same device and profile, issued after it, superseded it.
      certificate: { serial: certificate!.serial, status: 'superseded' },
    });
    const text = await certprov(['status', processes.secondDevice, '--config', configFile]);
    expect(text.stdout).toContain(`correlationId: ${correlationOfSecond}`);
  });

  it('exits 1 for an id it does not know', async () => {
    const run = await certprov(['status', 'CP-NOPE', '--config', configFile]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('no process with id or correlation id "CP-NOPE"');
  });
});

describe('certprov revoke', () => {
  it('lists without revoking on --dry-run, and revokes nothing when the confirmation is not given', async () => {
    const revokeDevice = (extra: string[], input?: string) =>
      certprov(
        ['revoke', '--config', configFile, '--device', 'SER-LC-1', '--reason', 'keyCompromise', ...extra],
        input === undefined ? {} : { input },
      );
    const dry = await revokeDevice(['--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('dry run: 3 certificate(s) would be revoked (keyCompromise)');
    const declined = await revokeDevice([], 'n\n');
    expect(declined.code).toBe(1);
    expect(declined.stdout).toContain('revoke these 3 certificate(s) (keyCompromise)? [y/N]');
    expect(declined.stdout).toContain('not revoked');
    // No answer at all (stdin closed): not revoked either.
    const unanswered = await revokeDevice([]);
    expect(unanswered.code).toBe(1);
    expect(await list('--status', 'revoked')).toEqual([]);
  });

  it('revokes a device’s certificates, reports the one whose connection is gone, and goes on', async () => {
    const run = await certprov(
      ['revoke', '--config', configFile, '--device', 'dir-lc-1', '--reason', 'keyCompromise'],
      {
        input: 'y\n',
      },
    );
    expect(run.code, run.stderr).toBe(1);
    const outcomes = Object.fromEntries((await list('--device', 'SER-LC-1')).map((c) => [c.processId, c]));
    const line = (processId: string) =>
      run.stdout.split('\n').findLast((l) => l.startsWith(outcomes[processId]!.serial));
    expect(line(processes.firstDevice)).toMatch(/default_ca_config\s+listed/);
    expect(line(processes.secondDevice)).toMatch(/default_ca_config\s+listed/);
    expect(line(processes.otherCa)).toMatch(/retired_ca\s+no_connection\s+connection not configured/);
    expect(outcomes[processes.firstDevice]).toMatchObject({
      status: 'revoked',
      revocation: { state: 'revoked', reason: 'keyCompromise' },
    });
    expect(outcomes[processes.secondDevice]).toMatchObject({ status: 'revoked' });
    expect(outcomes[processes.otherCa]).toMatchObject({ status: 'active' });
    // One audit line per revocation, the holder hashed.
    const audits = run.stderr
      .split('\n')
      .filter((l) => l.includes('"audit":"certificate_revoked"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(audits.map((a) => a.serial).sort()).toEqual(
      [outcomes[processes.firstDevice]!.serial, outcomes[processes.secondDevice]!.serial].sort(),
    );
    expect(run.stderr).not.toContain('SER-LC-1');
    expect(run.stderr).not.toContain('dir-lc-1');
  });

  it('revokes by serial with --yes, and has nothing left to do the second time', async () => {
    const [certificate] = await list('--user', 'alice@example.com');
    const first = await certprov([
      'revoke',
      '--config',
      configFile,
      '--serial',
      certificate!.serial.toUpperCase(),
      '--reason',
      'affiliationChanged',
      '--yes',
    ]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`${certificate!.serial}\\s+default_ca_config\\s+listed`));
    expect((await list('--user', 'alice@example.com'))[0]).toMatchObject({
      status: 'revoked',
      revocation: { reason: 'affiliationChanged' },
    });
    const again = await certprov([
      'revoke',
      '--config',
      configFile,
      '--serial',
      certificate!.serial,
      '--reason',
      'unspecified',
      '--yes',
    ]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing to revoke');
  });

  it.each([
    [['--reason', 'keyCompromise'], 'give exactly one of --serial, --device, --user'],
    [['--device', 'x', '--reason', 'lost'], '--reason must be one of unspecified, keyCompromise'],
  ])('refuses %j with exit code 2', async (args, message) => {
    const run = await certprov(['revoke', '--config', configFile, ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
  });
});
