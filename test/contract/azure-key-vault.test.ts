/**
 * The CA contract against the Key Vault-held CA, built through its registry entry as the daemon builds it, with
 * the official SDKs talking to the fake vault: an EC CA (ES256), an RSA CA signing RS256 and PS256, and the
 * signing-only mode of a Managed HSM (EC P-384 key, ES384, CA certificate from a file). The trust anchor is the
 * parent CA; the Key Vault CA certificate comes back in `chainPem`, as an intermediate.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { azureKeyVaultBackend } from '../../src/ca/azure-key-vault/index.ts';
import { keyVaultCaConfigSchema } from '../../src/ca/azure-key-vault/config.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { FakeKeyVault } from '../fakes/key-vault/fake-key-vault.ts';
import { createIssuingCa } from '../fakes/key-vault/issuing-ca-fixture.ts';
import { testKeyPool } from '../support/keys.ts';
import { openssl } from '../support/openssl.ts';
import { connectCa } from '../../src/ca/connection.ts';
import { describeCaContract, type CaContractEnvironment } from './ca-contract.ts';

/** RSA CA keys come from the run's pool (generating RSA is slow); EC keys are made by the fake. */
async function startVault(kind: 'vault' | 'managed-hsm' = 'vault'): Promise<FakeKeyVault> {
  const rsa: KeyObject = (await testKeyPool()).next('rsa-2048').privateKey;
  return FakeKeyVault.start({
    kind,
    keyFactory: (spec) =>
      spec.kty.startsWith('RSA') ? rsa : generateKeyPairSync('ec', { namedCurve: spec.crv ?? 'P-256' }).privateKey,
  });
}

async function environment(
  vault: FakeKeyVault,
  raw: Record<string, unknown>,
  baseDir: string,
  trustAnchorPem: string,
  teardown: () => Promise<void>,
): Promise<CaContractEnvironment> {
  const config = keyVaultCaConfigSchema.parse(raw);
  const connection = await connectCa(azureKeyVaultBackend, 'kv_ca', config, {
    log: silentLogger(),
    metrics: new Metrics({ defaultMetrics: false }),
    baseDir,
  });
  return {
    connection,
    capabilities: azureKeyVaultBackend.capabilities(config),
    caCertificatePem: trustAnchorPem,
    revocation: { expected: 'listed' },
    teardown: async () => {
      await connection.abilities.background?.close();
      await teardown();
      await vault.close();
    },
  };
}

for (const variant of [
  { label: 'EC P-256 CA key (ES256)', key: { type: 'ec' } as const, overrides: {} },
  {
    label: 'RSA CA key signing RS256',
    key: { type: 'rsa', rsaBits: 2048 } as const,
    overrides: { rsaSignatureAlgorithm: 'RS256' },
  },
  {
    label: 'RSA CA key signing PS256',
    key: { type: 'rsa', rsaBits: 2048 } as const,
    overrides: { rsaSignatureAlgorithm: 'PS256' },
  },
]) {
  describeCaContract(`Azure Key Vault CA, ${variant.label}`, async () => {
    const vault = await startVault();
    // 400 days: shorter than the backend's 825-day maximum, so "never outlives the CA" is really exercised.
    const fixture = await createIssuingCa(vault, { key: variant.key, days: 400 });
    return environment(vault, fixture.connection(variant.overrides), fixture.dir, fixture.parent.rootPem, () =>
      fixture.close(),
    );
  });
}

describeCaContract('Azure Key Vault, Managed HSM signing-only mode (EC P-384 key, ES384)', async () => {
  const hsm = await startVault('managed-hsm');
  const { version } = hsm.createKey('issuing-ca-key', { kty: 'EC-HSM', crv: 'P-384' });
  // The parent CA and scratch directory of a regular fixture (in its own vault), for the CA certificate file.
  const helperVault = await startVault();
  const fixture = await createIssuingCa(helperVault);
  const keyFile = path.join(fixture.dir, 'hsm-key.pem');
  await writeFile(
    keyFile,
    hsm.privateKeyOf('issuing-ca-key', version)!.export({ type: 'pkcs8', format: 'pem' }) as string,
  );
  const csr = await openssl(['req', '-new', '-key', keyFile, '-subj', '/CN=certprov HSM issuing CA/O=Example'], {
    cwd: fixture.dir,
  });
  await writeFile(path.join(fixture.dir, 'hsm-ca.pem'), await fixture.parent.sign(csr.stdout, { days: 400 }));
  const raw = fixture.connection({
    vaultUrl: hsm.url,
    certificateName: undefined,
    certificateVersion: undefined,
    signingKey: { name: 'issuing-ca-key', version },
    caCertificateFile: 'hsm-ca.pem',
  });
  return environment(hsm, raw, fixture.dir, fixture.parent.rootPem, async () => {
    await fixture.close();
    await helperVault.close();
  });
});
