/**
 * The CA contract against the local file-backed CA, for both CA key types `certprov local-ca init` offers. The
 * backend is built through its registry entry (`localBackend.create`), as the daemon builds it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { localBackend } from '../../src/ca/local/index.ts';
import { localCaConfigSchema } from '../../src/ca/local/config.ts';
import { initLocalCa } from '../../src/ca/local/init.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { connectCa } from '../../src/ca/connection.ts';
import { describeCaContract } from './ca-contract.ts';

for (const keyType of ['ec', 'rsa'] as const) {
  describeCaContract(`local CA with an ${keyType.toUpperCase()} CA key`, async () => {
    const baseDir = await mkdtemp(path.join(tmpdir(), 'certprov-contract-local-'));
    // 400 days: shorter than the backend's 825-day maximum, so "never outlives the CA" is really exercised.
    const init = await initLocalCa({ directory: path.join(baseDir, 'ca'), keyType, validityDays: 400 });
    // A relative directory, resolved against the config file's directory (deps.baseDir).
    const config = localCaConfigSchema.parse({ type: 'local', directory: 'ca' });
    const connection = await connectCa(localBackend, 'trial_ca', config, {
      log: silentLogger(),
      metrics: new Metrics({ defaultMetrics: false }),
      baseDir,
    });
    return {
      connection,
      capabilities: localBackend.capabilities(config),
      caCertificatePem: init.certificatePem,
      // The serial goes on the connection's CRL, which the adapter signs (src/lifecycle/crl.ts).
      revocation: { expected: 'listed' },
      teardown: () => rm(baseDir, { recursive: true, force: true }),
    };
  });
}
