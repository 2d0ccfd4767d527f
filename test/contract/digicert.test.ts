/**
 * The CA contract against the DigiCert backend, talking to the fake CertCentral over loopback. Orders are left
 * pending (as with an organization still in validation), so every certificate goes pending → approved → poll →
 * download, and the suite's "answers pending first" case is exercised; `resolvePending` approves the order.
 * The backend is built through its registry entry, as the daemon builds it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { digicertBackend } from '../../src/ca/digicert/index.ts';
import { digicertConfigSchema } from '../../src/ca/digicert/config.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { FakeCertCentral } from '../fakes/digicert/fake-certcentral.ts';
import { TEST_API_KEY, digicertConnectionBlock } from '../fakes/digicert/connection.ts';
import { connectCa } from '../../src/ca/connection.ts';
import { describeCaContract } from './ca-contract.ts';

describeCaContract('DigiCert CertCentral (client_authentication_plus, fake on loopback)', async () => {
  const fake = await FakeCertCentral.start({ apiKey: TEST_API_KEY, issuance: 'pending' });
  const baseDir = await mkdtemp(path.join(tmpdir(), 'certprov-contract-digicert-'));
  await writeFile(path.join(baseDir, 'digicert.key'), TEST_API_KEY);
  const config = digicertConfigSchema.parse(digicertConnectionBlock(fake));
  const connection = await connectCa(digicertBackend, 'default_ca_config', config, {
    log: silentLogger(),
    metrics: new Metrics({ defaultMetrics: false }),
    baseDir,
  });
  return {
    connection,
    capabilities: digicertBackend.capabilities(config),
    caCertificatePem: fake.ca.rootPem,
    resolvePending: (ref) => fake.approve(Number(ref.orderId)),
    revocation: {
      // DigiCert holds every revocation until an administrator approves it in CertCentral.
      expected: 'pending_approval',
      check: (_serial, ref) => {
        const request = fake.revocations.find((r) => r.orderId === Number(ref?.orderId));
        expect(request).toMatchObject({ status: 'pending', reason: 'key_compromise', comments: 'contract suite' });
        fake.approveRevocation(request?.id ?? 0);
        expect(fake.order(Number(ref?.orderId)).status).toBe('revoked');
      },
    },
    teardown: async () => {
      await connection.abilities.background?.close();
      await fake.close();
      await rm(baseDir, { recursive: true, force: true });
    },
  };
});
