/**
 * `kv-ca status` and `kv-ca cancel` reach the pending object through the certificates SDK's generated client
 * (src/ca/azure-key-vault/lifecycle.ts, pendingOperationsOf): the public getCertificateOperation poller throws away
 * a failed request's status, error code and CSR, and cannot cancel. That client is not public API, so this pin
 * fails loudly on any SDK change: the version the calls were checked against, and the two methods with the shape
 * lifecycle.ts calls. When it fails, re-check lifecycle.ts against the new SDK (or move the calls to documented
 * REST requests), then update the pin.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { CertificateClient } from '@azure/keyvault-certificates';
import { describe, expect, it } from 'vitest';
import { fakeVaultCredential } from '../../fakes/key-vault/issuing-ca-fixture.ts';

/** The SDK version whose generated client lifecycle.ts was checked against. */
const CHECKED_SDK_VERSION = '4.10.3';

describe('the certificates SDK internals kv-ca relies on', () => {
  it(`is the version lifecycle.ts was checked against (${CHECKED_SDK_VERSION})`, async () => {
    const entry = createRequire(import.meta.url).resolve('@azure/keyvault-certificates');
    let dir = path.dirname(entry);
    while (!dir.endsWith(path.join('node_modules', '@azure', 'keyvault-certificates'))) dir = path.dirname(dir);
    const { version } = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as { version: string };
    expect(
      version,
      'the Key Vault certificates SDK changed: re-check the generated-client calls in src/ca/azure-key-vault/lifecycle.ts (pendingOperationsOf), then update CHECKED_SDK_VERSION',
    ).toBe(CHECKED_SDK_VERSION);
  });

  it('exposes getCertificateOperation(name, options) and updateCertificateOperation(name, update, options)', () => {
    const client = new CertificateClient('https://example.vault.azure.net', fakeVaultCredential);
    const inner = (client as unknown as { client?: Record<string, unknown> }).client;
    expect(typeof inner?.getCertificateOperation).toBe('function');
    expect(typeof inner?.updateCertificateOperation).toBe('function');
    expect((inner?.getCertificateOperation as (...args: unknown[]) => unknown).length).toBeLessThanOrEqual(2);
    expect((inner?.updateCertificateOperation as (...args: unknown[]) => unknown).length).toBeLessThanOrEqual(3);
  });
});
