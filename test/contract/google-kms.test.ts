/**
 * The CA contract against the Cloud KMS-held CA, built through its registry entry as the daemon builds it, with the
 * official `@google-cloud/kms` client talking to the fake KMS over its REST transport: an EC P-256 key (HSM), an
 * RSA key signing PKCS#1 v1.5, an RSA key signing PSS, and an EC P-384 key. The CA certificate was made through
 * `kms-ca csr` and the openssl parent CA; the trust anchor is the parent, the KMS CA comes back in `chainPem`.
 */
import { googleKmsBackend } from '../../src/ca/google-kms/index.ts';
import { KmsCa } from '../../src/ca/google-kms/kms-ca.ts';
import { kmsCaConfigSchema } from '../../src/ca/google-kms/config.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { FakeKms } from '../fakes/google-kms/fake-kms.ts';
import { createKmsIssuingCa, fakeGoogleAuth } from '../fakes/google-kms/kms-ca-fixture.ts';
import { testKeyPool } from '../support/keys.ts';
import { connectionOf } from '../../src/ca/connection.ts';
import { describeCaContract } from './ca-contract.ts';

for (const variant of [
  { label: 'EC P-256 key, HSM (ES256)', algorithm: 'EC_SIGN_P256_SHA256' },
  { label: 'RSA-2048 key signing PKCS#1 v1.5 (RS256)', algorithm: 'RSA_SIGN_PKCS1_2048_SHA256' },
  { label: 'RSA-2048 key signing PSS (PS256)', algorithm: 'RSA_SIGN_PSS_2048_SHA256' },
  { label: 'EC P-384 key, software (ES384)', algorithm: 'EC_SIGN_P384_SHA384', protectionLevel: 'SOFTWARE' },
] as const) {
  describeCaContract(`Cloud KMS CA, ${variant.label}`, async () => {
    const pool = await testKeyPool();
    const kms = await FakeKms.start({ rsaKey: () => pool.next('rsa-2048').privateKey });
    // 400 days: shorter than the backend's 825-day maximum, so "never outlives the CA" is really exercised.
    const fixture = await createKmsIssuingCa(kms, {
      key: {
        algorithm: variant.algorithm,
        protectionLevel: 'protectionLevel' in variant ? variant.protectionLevel : 'HSM',
      },
      days: 400,
    });
    const config = kmsCaConfigSchema.parse(fixture.connection());
    const deps = { log: silentLogger(), metrics: new Metrics({ defaultMetrics: false }), baseDir: fixture.dir };
    // The registry entry builds the same class; the test only adds the fake's credentials.
    const ca = await KmsCa.create('kms_ca', config, deps, { auth: fakeGoogleAuth() });
    return {
      connection: connectionOf(googleKmsBackend, ca),
      capabilities: googleKmsBackend.capabilities(config),
      caCertificatePem: fixture.parent.rootPem,
      revocation: { expected: 'listed' },
      teardown: async () => {
        await ca.close();
        await fixture.close();
        await kms.close();
      },
    };
  });
}
