/**
 * A Cloud KMS-held issuing CA made the way an operator makes one (docs: Cloud KMS backend): a key version in (fake)
 * KMS → `certprov kms-ca csr` (here its function) → the parent CA (openssl) signs the CSR as a CA certificate → the
 * certificate is written next to the configuration as `caCertificateFile`. No vitest imports: the benchmark uses it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { OAuth2Client } from 'google-auth-library';
import { createKmsClient } from '../../../src/ca/google-kms/client.ts';
import { kmsCertificationRequest } from '../../../src/ca/google-kms/kms-ca.ts';
import { parseSubjectTemplate, renderSubject } from '../../../src/pki/subject-template.ts';
import { OpensslParentCa } from '../key-vault/issuing-ca-fixture.ts';
import type { CreateKeyOptions, FakeKms } from './fake-kms.ts';

/** The access token the in-process tests present; child processes get theirs from the fake metadata server. */
export const FAKE_GOOGLE_TOKEN = 'fake-google-access-token';

/** An auth client that hands out {@link FAKE_GOOGLE_TOKEN} (no token endpoint involved). */
export function fakeGoogleAuth(token = FAKE_GOOGLE_TOKEN): OAuth2Client {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: token, expiry_date: Date.now() + 24 * 3_600_000 });
  return auth;
}

export interface KmsCaFixture {
  readonly dir: string;
  readonly parent: OpensslParentCa;
  readonly keyVersion: string;
  /** The KMS CA certificate, PEM (also in `dir/kms-ca.pem`). */
  readonly caPem: string;
  /** A `type: google-kms` connection block (before schema parsing) pointing at the fake. */
  connection(overrides?: Record<string, unknown>): Record<string, unknown>;
  close(): Promise<void>;
}

export async function createKmsIssuingCa(
  kms: FakeKms,
  options: {
    key?: CreateKeyOptions;
    days?: number;
    subject?: string;
    /** openssl extension lines the parent CA certifies the KMS key with. Default: a well-formed issuing CA. */
    caExtensions?: string;
  } = {},
): Promise<KmsCaFixture> {
  const dir = await mkdtemp(path.join(tmpdir(), 'certprov-kms-ca-'));
  const parent = await OpensslParentCa.create(dir);
  const keyVersion = kms.createKeyVersion(options.key);
  const client = await createKmsClient({ endpoint: kms.url, auth: fakeGoogleAuth(), timeoutMs: 10_000 });
  const subject = renderSubject(
    parseSubjectTemplate(options.subject ?? 'CN=certprov KMS issuing CA,O=Example'),
    { process: { id: '', customer: '' } },
    'CA subject',
  );
  const csr = await kmsCertificationRequest(client, keyVersion, subject, new AbortController().signal);
  await client.close();
  const caPem = await parent.sign(csr.pem, {
    days: options.days ?? 730,
    ...(options.caExtensions === undefined ? {} : { extensions: options.caExtensions }),
  });
  await writeFile(path.join(dir, 'kms-ca.pem'), caPem);
  await writeFile(path.join(dir, 'parent.pem'), parent.rootPem);
  return {
    dir,
    parent,
    keyVersion,
    caPem,
    connection: (overrides = {}) => ({
      type: 'google-kms',
      keyVersion,
      caCertificateFile: 'kms-ca.pem',
      chainFile: 'parent.pem',
      endpoint: kms.url,
      ...overrides,
    }),
    close: () => rm(dir, { recursive: true, force: true }),
  };
}
