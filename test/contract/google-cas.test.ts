/**
 * The CA contract against Certificate Authority Service, built as the daemon builds it, with the official
 * `@google-cloud/security-private-ca` client talking to the fake CAS over its REST transport. The pool's CA lives
 * 200 days while the connection allows 397, so "never outlives the issuing CA" is really exercised; the pool
 * backdates by 10 minutes as the docs tell operators to configure it.
 */
import { expect } from 'vitest';
import { connectionOf } from '../../src/ca/connection.ts';
import { CasCa } from '../../src/ca/google-cas/cas-ca.ts';
import { casCaConfigSchema } from '../../src/ca/google-cas/config.ts';
import { googleCasBackend } from '../../src/ca/google-cas/index.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { FakeCas } from '../fakes/google-cas/fake-cas.ts';
import { fakeGoogleAuth } from '../fakes/google-kms/kms-ca-fixture.ts';
import { describeCaContract } from './ca-contract.ts';

describeCaContract('Google Certificate Authority Service', async () => {
  const cas = await FakeCas.start();
  const pool = await cas.createPool({ caValidityDays: 200, maximumLifetimeDays: 397, backdateSeconds: 600 });
  const config = casCaConfigSchema.parse({
    type: 'google-cas',
    caPool: pool.name,
    issuingCertificateAuthorityId: 'ca-1',
    maxValidityDays: 397,
    endpoint: cas.url,
  });
  const ca = await CasCa.create(
    'cas',
    config,
    { log: silentLogger(), metrics: new Metrics({ defaultMetrics: false }), baseDir: '.' },
    { auth: fakeGoogleAuth() },
  );
  return {
    connection: connectionOf(googleCasBackend, ca),
    capabilities: googleCasBackend.capabilities(config),
    caCertificatePem: pool.caPem,
    revocation: {
      expected: 'revoked',
      // CAS itself holds the revocation, with the RFC 5280 reason mapped to its own.
      check: (serial) => {
        expect(cas.revocationOfSerial(serial)).toBe('KEY_COMPROMISE');
      },
    },
    teardown: async () => {
      await ca.close();
      await cas.close();
    },
  };
});
