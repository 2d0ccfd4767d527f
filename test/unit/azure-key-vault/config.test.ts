/**
 * The `type: azure-key-vault` connection schema: what the adapter needs (a pinned version, or a key plus a
 * certificate file), what `kv-ca` needs (no version yet), and test-only settings refused for real vaults.
 */
import { describe, expect, it } from 'vitest';
import {
  KEY_VAULT_DEFAULTS,
  keyVaultCaConfigSchema,
  keyVaultLifecycleConfigSchema,
} from '../../../src/ca/azure-key-vault/config.ts';
import path from 'node:path';
import { compileConfig, loadConfigFile } from '../../../src/config/load.ts';
import { ConfigError } from '../../../src/errors.ts';

const VERSION = '3f9a0c1d2e3f40516273849506a7b8c9';
const vault = { type: 'azure-key-vault', vaultUrl: 'https://example-ca.vault.azure.net' };

function problems(schema: typeof keyVaultCaConfigSchema, input: unknown): string[] {
  const result = schema.safeParse(input);
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('azure-key-vault connection configuration', () => {
  it('fills every default', () => {
    const config = keyVaultCaConfigSchema.parse({
      ...vault,
      certificateName: 'issuing-ca',
      certificateVersion: VERSION,
    });
    expect(config).toMatchObject({
      apiVersion: KEY_VAULT_DEFAULTS.apiVersion,
      rsaSignatureAlgorithm: 'RS256',
      credential: { type: 'default', disableInstanceDiscovery: false },
      requestTimeout: 30_000,
      retry: { attempts: 6, initialDelay: 1_000, maxDelay: 16_000, maxRetryAfter: 60_000 },
      backdate: 300_000,
      maxValidityDays: 825,
      allowInsecureConnection: false,
      disableChallengeResourceVerification: false,
    });
  });

  it.each([
    {
      label: 'no version (never "latest")',
      input: { ...vault, certificateName: 'issuing-ca' },
      path: 'certificateVersion',
    },
    { label: 'no certificate name', input: { ...vault, certificateVersion: VERSION }, path: 'certificateName' },
    {
      label: 'a version that is not 32 hex digits',
      input: { ...vault, certificateName: 'c', certificateVersion: 'latest' },
      path: 'certificateVersion',
    },
    {
      label: 'both modes at once',
      input: {
        ...vault,
        certificateName: 'c',
        certificateVersion: VERSION,
        signingKey: { name: 'k', version: VERSION },
        caCertificateFile: 'ca.pem',
      },
      path: 'signingKey',
    },
    {
      label: 'a signing key without its certificate file',
      input: { ...vault, signingKey: { name: 'k', version: VERSION } },
      path: 'caCertificateFile',
    },
    {
      label: 'a certificate name on a Managed HSM',
      input: {
        ...vault,
        vaultUrl: 'https://hsm.managedhsm.azure.net',
        certificateName: 'c',
        certificateVersion: VERSION,
      },
      path: 'certificateName',
    },
    {
      label: 'an http vault',
      input: {
        ...vault,
        vaultUrl: 'http://example-ca.vault.azure.net',
        certificateName: 'c',
        certificateVersion: VERSION,
      },
      path: 'vaultUrl',
    },
    {
      label: 'a vault URL with a path',
      input: {
        ...vault,
        vaultUrl: 'https://v.vault.azure.net/keys',
        certificateName: 'c',
        certificateVersion: VERSION,
      },
      path: 'vaultUrl',
    },
    {
      label: 'allowInsecureConnection for a real vault',
      input: { ...vault, certificateName: 'c', certificateVersion: VERSION, allowInsecureConnection: true },
      path: 'allowInsecureConnection',
    },
    {
      label: 'disableChallengeResourceVerification for a real vault',
      input: {
        ...vault,
        certificateName: 'c',
        certificateVersion: VERSION,
        disableChallengeResourceVerification: true,
      },
      path: 'disableChallengeResourceVerification',
    },
    {
      label: 'a static token for a real vault',
      input: {
        ...vault,
        certificateName: 'c',
        certificateVersion: VERSION,
        credential: { type: 'static-token', token: { env: 'T' } },
      },
      path: 'credential.type',
    },
    {
      label: 'a client secret written into the file',
      input: {
        ...vault,
        certificateName: 'c',
        certificateVersion: VERSION,
        credential: { type: 'client-secret', tenantId: 't', clientId: 'c', clientSecret: 'hunter2' },
      },
      path: 'credential.clientSecret',
    },
    {
      label: 'an http Entra authority',
      input: {
        ...vault,
        certificateName: 'c',
        certificateVersion: VERSION,
        credential: { type: 'gke-federation', tenantId: 't', clientId: 'c', authorityHost: 'http://login.example' },
      },
      path: 'credential.authorityHost',
    },
    {
      label: 'an unknown field',
      input: { ...vault, certificateName: 'c', certificateVersion: VERSION, keyVersion: 'x' },
      path: '',
    },
  ])('rejects $label', ({ input, path }) => {
    const found = problems(keyVaultCaConfigSchema, input);
    expect(found.length, 'expected a problem').toBeGreaterThan(0);
    expect(
      found.some((p) => p.startsWith(`${path}:`)),
      found.join('\n'),
    ).toBe(true);
  });

  it('accepts the test-only settings for a loopback fake', () => {
    expect(
      problems(keyVaultCaConfigSchema, {
        ...vault,
        vaultUrl: 'http://127.0.0.1:8443',
        certificateName: 'c',
        certificateVersion: VERSION,
        allowInsecureConnection: true,
        disableChallengeResourceVerification: true,
        credential: { type: 'static-token', token: { file: 'token' } },
      }),
    ).toEqual([]);
  });

  it('accepts signing-only mode on a Managed HSM, and federation from GKE with its default audience', () => {
    const config = keyVaultCaConfigSchema.parse({
      ...vault,
      vaultUrl: 'https://ca-hsm.managedhsm.azure.net',
      signingKey: { name: 'issuing-ca-key', version: VERSION },
      caCertificateFile: 'issuing-ca.pem',
      credential: {
        type: 'gke-federation',
        tenantId: 'contoso.onmicrosoft.com',
        clientId: '6a1f0000-0000-4000-8000-000000000001',
      },
    });
    expect(config.credential).toMatchObject({ type: 'gke-federation', audience: 'api://AzureADTokenExchange' });
  });

  it('lets kv-ca work on a certificate that has no version yet', () => {
    expect(problems(keyVaultLifecycleConfigSchema, { ...vault, certificateName: 'issuing-ca' })).toEqual([]);
    expect(problems(keyVaultCaConfigSchema, { ...vault, certificateName: 'issuing-ca' })).not.toEqual([]);
  });

  it('is validated through the registry with the whole configuration, problems under the connection path', () => {
    const raw = {
      caConnections: { kv: { ...vault, certificateName: 'issuing-ca' } },
      profiles: { p: { subject: 'CN={{device.serialNumber}}', validity: '30d' } },
    };
    let error: unknown;
    try {
      compileConfig(raw, { source: 'test', baseDir: '/', purpose: 'run' });
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.some((p) => p.startsWith('caConnections.kv.certificateVersion:'))).toBe(
      true,
    );
  });

  it('rejects a profile longer than maxValidityDays at load', () => {
    const raw = {
      caConnections: {
        kv: { ...vault, certificateName: 'issuing-ca', certificateVersion: VERSION, maxValidityDays: 90 },
      },
      profiles: { p: { subject: 'CN={{device.serialNumber}}', validity: '365d' } },
    };
    expect(() => compileConfig(raw, { source: 'test', baseDir: '/', purpose: 'demo' })).toThrow(
      /issues at most 90 days/,
    );
  });

  it('config/azure-key-vault.example.yaml is valid for run', async () => {
    const loaded = await loadConfigFile(
      path.join(import.meta.dirname, '../../../config/azure-key-vault.example.yaml'),
      'run',
    );
    const connection = loaded.caConnections.get('kv_private_ca');
    expect(connection?.type).toBe('azure-key-vault');
    expect(connection?.settings).toMatchObject({
      certificateVersion: '3f9a0c1d2e3f40516273849506a7b8c9',
      credential: { type: 'gke-federation' },
    });
  });
});
