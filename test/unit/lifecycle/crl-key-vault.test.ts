/**
 * The CRL of a Key Vault-held CA (the fake vault behind the official SDK): one Key Vault `sign` per CRL, whatever
 * the number of revoked serials; openssl verifies the CRL against the Key Vault CA certificate; the leaves carry the
 * connection's cRLDistributionPoints; a CRL number only grows, and a second replica finds the lease taken.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { azureKeyVaultBackend } from '../../../src/ca/azure-key-vault/index.ts';
import { keyVaultCaConfigSchema } from '../../../src/ca/azure-key-vault/config.ts';
import { connectCa, type CaConnection } from '../../../src/ca/connection.ts';
import { CrlPublisher, crlPublications, publishCrl, type CrlDependencies } from '../../../src/lifecycle/crl.ts';
import { publishCrlsAfter, revokeCertificates } from '../../../src/lifecycle/revoke.ts';
import { createLogger, silentLogger } from '../../../src/observability/logger.ts';
import { parseCertificate } from '../../../src/pki/certificate.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { MemoryProcessStore } from '../../../src/store/memory.ts';
import { FakeKeyVault } from '../../fakes/key-vault/fake-key-vault.ts';
import { deviceRequest, stepContext } from '../../fakes/key-vault/device-request.ts';
import { createIssuingCa, type IssuingCaFixture } from '../../fakes/key-vault/issuing-ca-fixture.ts';
import { LogCapture } from '../../support/adapter-rig.ts';
import { testKeyPool } from '../../support/keys.ts';
import { certificateText, openssl } from '../../support/openssl.ts';

const CRL_URL = 'http://crl.example.com/crl/kv_ca.crl';
let vault: FakeKeyVault;
let fixture: IssuingCaFixture;
let connection: CaConnection;

beforeAll(async () => {
  vault = await FakeKeyVault.start();
  fixture = await createIssuingCa(vault, { certificateName: 'crl-ca' });
  const config = keyVaultCaConfigSchema.parse(fixture.connection({ crl: { url: CRL_URL } }));
  connection = await connectCa(azureKeyVaultBackend, 'kv_ca', config, {
    log: silentLogger(),
    metrics: new Metrics({ defaultMetrics: false }),
    baseDir: fixture.dir,
  });
});
afterAll(async () => {
  await connection?.abilities.background?.close();
  await fixture?.close();
  await vault?.close();
});

function revokedCertificate(n: number) {
  const serial = (0x100000 + n).toString(16);
  return {
    caConnection: 'kv_ca',
    serial,
    issuer: 'CN=certprov test issuing CA',
    notBefore: Date.now() - 60_000,
    notAfter: Date.now() + 30 * 86_400_000,
    spkiSha256: '00',
    profile: 'device_profile',
    processId: `p-${n}`,
    correlationId: `CP-${n}`,
    customer: 'C0',
    holder: { device: { serialNumber: `SER-${n}` } },
    certificatePem: '',
    issuedAt: Date.now(),
  };
}

const failedCheck = 'could not sign the CRL; trying again at the next check';

describe('the CRL of a Key Vault CA', () => {
  it('costs one Key Vault sign per CRL, lists every revoked serial, and verifies against the CA', async () => {
    const store = new MemoryProcessStore();
    for (let n = 0; n < 500; n += 1) {
      await store.recordCertificate(revokedCertificate(n));
      await store.setRevocation('kv_ca', revokedCertificate(n).serial, {
        state: 'revoked',
        at: Date.now(),
        reason: n % 2 === 0 ? 'keyCompromise' : 'cessationOfOperation',
      });
    }
    const [publication] = crlPublications([connection]);
    expect(publication?.settings.url).toBe(CRL_URL);
    const deps: CrlDependencies = {
      store,
      owner: 'replica-a',
      log: silentLogger(),
      now: Date.now,
      signal: new AbortController().signal,
    };
    const signsBefore = vault.signOperations.length;
    const first = await publishCrl(deps, publication!);
    expect(first.status).toBe('published');
    expect(vault.signOperations.length - signsBefore).toBe(1);
    // Not due again yet: no sign call at all.
    expect((await publishCrl(deps, publication!)).status).toBe('not_due');
    expect(vault.signOperations.length - signsBefore).toBe(1);
    const second = await publishCrl(deps, publication!, { force: true });
    expect(vault.signOperations.length - signsBefore).toBe(2);
    if (second.status !== 'published') throw new Error(second.status);
    expect(second.crl.crlNumber).toBe(2);
    expect(second.crl.entries).toBe(500);

    // Another replica, while this one holds the lease, signs nothing.
    await store.tryNamedLease('crl:kv_ca', 'replica-a', 60_000);
    expect((await publishCrl({ ...deps, owner: 'replica-b' }, publication!, { force: true })).status).toBe('busy');
    await store.releaseNamedLease('crl:kv_ca', 'replica-a');
    expect(vault.signOperations.length - signsBefore).toBe(2);

    const crlFile = path.join(fixture.dir, 'kv.crl');
    const caFile = path.join(fixture.dir, 'kv-ca.pem');
    await writeFile(crlFile, second.crl.der);
    await writeFile(caFile, fixture.caPem);
    const text = await openssl([
      'crl',
      '-inform',
      'DER',
      '-in',
      crlFile,
      '-CAfile',
      caFile,
      '-noout',
      '-verify',
      '-text',
    ]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stderr + text.stdout).toContain('verify OK');
    expect(text.stdout.match(/Serial Number:/g)).toHaveLength(500);
    expect(text.stdout).toContain('Cessation Of Operation');
  });

  it('puts the CRL URL into every leaf it issues', async () => {
    const key = (await testKeyPool()).next('ec-p256');
    const result = await connection.ca.issue(deviceRequest(key), stepContext());
    if (result.status !== 'issued') throw new Error(result.status);
    const text = await certificateText(result.certificatePem);
    expect(text).toMatch(new RegExp(`X509v3 CRL Distribution Points:\\s*\\n\\s*Full Name:\\s*\\n\\s*URI:${CRL_URL}`));
    expect(text).not.toContain('Authority Information Access');
  });

  it('lists a revocation whose own CRL could not be signed at the next check after Key Vault recovers, once', async () => {
    const config = keyVaultCaConfigSchema.parse(
      fixture.connection({ crl: { url: 'http://crl.example.com/crl/kv_sched.crl', checkInterval: '300ms' } }),
    );
    const scheduled = await connectCa(azureKeyVaultBackend, 'kv_sched', config, {
      log: silentLogger(),
      metrics: new Metrics({ defaultMetrics: false }),
      baseDir: fixture.dir,
    });
    const logs = new LogCapture();
    const store = new MemoryProcessStore();
    const deps: CrlDependencies = {
      store,
      owner: 'replica-a',
      log: createLogger({ level: 'info', destination: logs }),
      now: Date.now,
      signal: new AbortController().signal,
    };
    const [publication] = crlPublications([scheduled]);
    const publisher = new CrlPublisher(deps, [publication!]);
    try {
      expect((await publishCrl(deps, publication!)).status).toBe('published'); // number 1, empty
      const issued = await scheduled.ca.issue(deviceRequest((await testKeyPool()).next('ec-p256')), stepContext());
      if (issued.status !== 'issued') throw new Error(issued.status);
      const serial = parseCertificate(issued.certificatePem).serialHex;
      const { record } = await store.recordCertificate({
        ...revokedCertificate(1),
        caConnection: 'kv_sched',
        serial,
        certificatePem: issued.certificatePem,
      });

      // The revocation is recorded, but its CRL cannot be signed: the CA key is disabled in the vault.
      fixture.fake.setKeyEnabled(fixture.certificateName, fixture.version, false);
      const cas = new Map([['kv_sched', scheduled]]);
      const reports = await revokeCertificates(
        { store, cas, ctx: stepContext(), now: Date.now },
        [record],
        'keyCompromise',
        'lost device',
      );
      expect(reports.map((r) => r.outcome)).toEqual(['listed']);
      const [after] = await publishCrlsAfter(reports, cas, deps);
      expect(after?.error).toBeDefined();
      expect(await store.getCrl('kv_sched')).toMatchObject({ crlNumber: 1, entries: 0 });

      // The scheduler keeps trying while the vault refuses, and signs once it signs again.
      publisher.start();
      await vi.waitFor(() => expect(logs.entries().some((l) => l['message'] === failedCheck)).toBe(true), {
        timeout: 10_000,
      });
      expect((await store.getCrl('kv_sched'))?.crlNumber).toBe(1);
      fixture.fake.setKeyEnabled(fixture.certificateName, fixture.version, true);
      await vi.waitFor(async () => expect((await store.getCrl('kv_sched'))?.crlNumber).toBe(2), { timeout: 10_000 });
      const crl = (await store.getCrl('kv_sched'))!;
      const crlFile = path.join(fixture.dir, 'kv-sched.crl');
      await writeFile(crlFile, crl.der);
      const text = await openssl(['crl', '-inform', 'DER', '-in', crlFile, '-noout', '-text']);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toMatch(/X509v3 CRL Number:\s*\n\s*2\b/);
      expect(text.stdout).toMatch(new RegExp(`Serial Number: 0*${serial.toUpperCase()}\\b`));
      expect(text.stdout).toContain('Key Compromise');

      // Checks with nothing new sign nothing: the number stays.
      const signs = fixture.fake.signOperations.length;
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect((await store.getCrl('kv_sched'))?.crlNumber).toBe(2);
      expect(fixture.fake.signOperations.length).toBe(signs);
    } finally {
      fixture.fake.setKeyEnabled(fixture.certificateName, fixture.version, true);
      await publisher.stop();
      await scheduled.abilities.background?.close();
    }
  });
});
