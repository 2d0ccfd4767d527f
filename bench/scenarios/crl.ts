/**
 * CRL generation (src/lifecycle/crl.ts) for a Key Vault-held CA behind the fake vault: N revoked serials in the
 * inventory (memory store), one CRL signed under the lease. Figures: the time of one publication (inventory query,
 * DER build, one remote sign, store write), the CRL's size, and the Key Vault sign calls per CRL — one, whatever N.
 */
import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import { azureKeyVaultBackend } from '../../src/ca/azure-key-vault/index.ts';
import { keyVaultCaConfigSchema } from '../../src/ca/azure-key-vault/config.ts';
import { connectCa } from '../../src/ca/connection.ts';
import { crlPublications, publishCrl } from '../../src/lifecycle/crl.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { MemoryProcessStore } from '../../src/store/memory.ts';
import { FakeKeyVault } from '../../test/fakes/key-vault/fake-key-vault.ts';
import { createIssuingCa } from '../../test/fakes/key-vault/issuing-ca-fixture.ts';
import type { BenchScenario } from '../scenario.ts';
import { DAY_MS } from '../../src/time.ts';

const scenario: BenchScenario = {
  name: 'crl',
  description: 'one CRL of N revoked serials signed through Key Vault (fake): time, size, sign calls',
  async run(options) {
    const revoked = options.smoke ? 1_000 : options.quick ? 10_000 : 100_000;
    const vault = await FakeKeyVault.start();
    const fixture = await createIssuingCa(vault, { certificateName: 'bench-crl' });
    try {
      const config = keyVaultCaConfigSchema.parse(fixture.connection({ crl: { url: 'http://crl.example/kv.crl' } }));
      const connection = await connectCa(azureKeyVaultBackend, 'kv_ca', config, {
        log: silentLogger(),
        metrics: new Metrics({ defaultMetrics: false }),
        baseDir: fixture.dir,
      });
      const store = new MemoryProcessStore();
      const now = Date.now();
      for (let n = 0; n < revoked; n += 1) {
        const serial = (0x1000000000 + n).toString(16) + 'a1b2c3d4e5f60718293a';
        await store.recordCertificate({
          caConnection: 'kv_ca',
          serial,
          issuer: 'CN=bench',
          notBefore: now - 60_000,
          notAfter: now + 365 * DAY_MS,
          spkiSha256: '',
          profile: 'device_profile',
          processId: `p-${n}`,
          correlationId: `CP-${n}`,
          customer: 'C0',
          holder: { device: { serialNumber: `SER-${n}` } },
          certificatePem: '',
          issuedAt: now,
        });
        await store.setRevocation('kv_ca', serial, { state: 'revoked', at: now, reason: 'keyCompromise' });
      }
      const [publication] = crlPublications([connection]);
      const deps = { store, owner: 'bench', log: silentLogger(), now: Date.now, signal: new AbortController().signal };
      // Warm-up: loads the CA certificate and key (cached for the connection's life) and the code paths.
      await publishCrl(deps, publication!, { force: true });
      const signsBefore = vault.signOperations.length;
      const started = performance.now();
      const outcome = await publishCrl(deps, publication!, { force: true });
      const ms = performance.now() - started;
      if (outcome.status !== 'published') throw new Error(`CRL not published: ${outcome.status}`);
      await connection.abilities.background?.close();
      return [
        { name: 'revoked serials', value: revoked, unit: '' },
        { name: 'CRL publication (query, build, sign, store)', value: ms, unit: 'ms' },
        { name: 'CRL size', value: outcome.crl.der.length / 1_000_000, unit: 'MB' },
        { name: 'CRL bytes per serial', value: outcome.crl.der.length / revoked, unit: 'B' },
        {
          name: 'Key Vault sign calls per CRL',
          value: vault.signOperations.length - signsBefore,
          unit: '',
          target: '= 1',
        },
      ];
    } finally {
      await fixture.close();
      await vault.close();
    }
  },
};

export default scenario;
