/**
 * The Google CA examples pass `certprov check-config` as shipped, like the other examples: the CAS example at once
 * (CAS holds its CA), the Cloud KMS example once the CA certificate it names exists — before that, check-config
 * fails as `run` would, naming caCertificateFile and saying how to get the certificate.
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initLocalCa } from '../../../src/ca/local/init.ts';
import { ROOT, certprov } from '../../support/certprov-cli.ts';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'certprov-google-examples-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

describe('config/google-*.example.yaml', () => {
  it('google-cas: check-config accepts it and lists the connection with the SAN types CAS can carry', async () => {
    const run = await certprov(['check-config', '--config', 'config/google-cas.example.yaml']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/cas_private_ca\s+google-cas\s+rsa,ec\s+email,dns,uri\s+825d/);
    expect(run.stdout).toMatch(/user_profile\s+CN=\{\{user.userPrimaryEmail\}\}.*cas_private_ca/);
  });

  it('google-kms: check-config names the missing CA certificate, then accepts the example once it is there', async () => {
    const config = path.join(work, 'config');
    await mkdir(config, { recursive: true });
    await copyFile(path.join(ROOT, 'config/google-kms.example.yaml'), path.join(config, 'google-kms.example.yaml'));
    const before = await certprov(['check-config', '--config', 'config/google-kms.example.yaml'], { cwd: work });
    expect(before.code).toBe(2);
    expect(before.stderr).toContain('caConnections.kms_private_ca.caCertificateFile: cannot read');
    expect(before.stderr).toContain('certprov kms-ca csr');

    // Any CA certificate satisfies the load-time check; that it holds the key version's key is checked at start.
    const { certificatePem } = await initLocalCa({ directory: path.join(work, 'stand-in'), keyType: 'ec' });
    await writeFile(path.join(config, 'google-kms-issuing-ca.pem'), certificatePem);
    const run = await certprov(['check-config', '--config', 'config/google-kms.example.yaml'], { cwd: work });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/kms_private_ca\s+google-kms\s+rsa,ec\s+email,dns,uri,upn\s+825d/);
  });
});
