/**
 * A Key Vault-held issuing CA made the way an operator makes one (docs/backends/azure-key-vault.md): `kv-ca create` in the
 * fake vault → the parent CA (openssl, as docs/backends/azure-key-vault.md shows) signs the CSR as a CA certificate → `kv-ca merge` →
 * a pinned `certificateVersion`. No vitest imports: the benchmark uses it too.
 */
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TokenCredential } from '@azure/identity';
import { createCertificateClient, createKeyClient } from '../../../src/ca/azure-key-vault/client.ts';
import { KeyVaultCaLifecycle, parseChain, type CaKeySpec } from '../../../src/ca/azure-key-vault/lifecycle.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { openssl } from '../../support/openssl.ts';
import { FAKE_KEY_VAULT_TOKEN, type FakeKeyVault } from './fake-key-vault.ts';

/** A credential that hands out the fake's token (in-process tests; child processes use real Entra flows). */
export const fakeVaultCredential: TokenCredential = {
  getToken: () => Promise.resolve({ token: FAKE_KEY_VAULT_TOKEN, expiresOnTimestamp: Date.now() + 3_600_000 }),
};

async function run(dir: string, args: string[]): Promise<void> {
  const result = await openssl(args, { cwd: dir });
  if (result.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${result.stderr}`);
}

/** A parent (root) CA on disk, driven by the openssl command line exactly as docs/backends/azure-key-vault.md tells operators to. */
export class OpensslParentCa {
  readonly dir: string;
  readonly rootPem: string;

  private constructor(dir: string, rootPem: string) {
    this.dir = dir;
    this.rootPem = rootPem;
  }

  static async create(dir: string, subject = '/CN=certprov test root CA/O=Example'): Promise<OpensslParentCa> {
    await run(dir, [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'root.key',
      '-out',
      'root.pem',
      '-days',
      '3650',
      '-subj',
      subject,
      '-addext',
      'basicConstraints=critical,CA:true',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    await writeFile(path.join(dir, 'parent.cnf'), PARENT_CA_CONFIG);
    await writeFile(path.join(dir, 'index.txt'), '');
    return new OpensslParentCa(dir, await readFile(path.join(dir, 'root.pem'), 'utf8'));
  }

  /**
   * Signs a CSR. `ca: true` (default) makes the issuing CA certificate: basicConstraints critical CA:true
   * pathlen:0, keyUsage keyCertSign + cRLSign, SKI and AKI. Valid from an hour ago (`openssl ca -startdate`; the
   * 3.0 `x509 -req` cannot backdate) so leaves can be backdated for clock skew, for `days` days. `extensions`
   * replaces the extension file (a CA certificate that cannot issue, for the refusal tests).
   */
  async sign(csrPem: string, options: { days?: number; ca?: boolean; extensions?: string } = {}): Promise<string> {
    const name = `issued-${Date.now()}-${Math.random().toString(16).slice(2)}`;
    await writeFile(path.join(this.dir, `${name}.csr`), csrPem);
    await writeFile(
      path.join(this.dir, `${name}.ext`),
      options.extensions ??
        ((options.ca ?? true)
          ? 'basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n'
          : 'basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n'),
    );
    const at = (ms: number) =>
      new Date(ms)
        .toISOString()
        .replace(/[-:T]/g, '')
        .replace(/\.\d+Z$/, 'Z');
    const now = Date.now();
    await run(this.dir, [
      'ca',
      '-batch',
      '-config',
      'parent.cnf',
      '-preserveDN',
      '-notext',
      '-in',
      `${name}.csr`,
      '-out',
      `${name}.pem`,
      '-startdate',
      at(now - 3_600_000),
      '-enddate',
      at(now + (options.days ?? 730) * 86_400_000),
      '-extfile',
      `${name}.ext`,
    ]);
    return readFile(path.join(this.dir, `${name}.pem`), 'utf8');
  }
}

/** A minimal `openssl ca` configuration: any subject, random serials, extensions only from -extfile. */
const PARENT_CA_CONFIG = `[ ca ]
default_ca = parent
[ parent ]
database = index.txt
new_certs_dir = .
certificate = root.pem
private_key = root.key
rand_serial = yes
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[ any ]
commonName = optional
`;

export interface IssuingCaFixture {
  readonly fake: FakeKeyVault;
  readonly parent: OpensslParentCa;
  /** Scratch directory: token file, parent CA files, config files. */
  readonly dir: string;
  readonly certificateName: string;
  /** The merged, pinned version. */
  readonly version: string;
  /** The Key Vault CA certificate (PEM). */
  readonly caPem: string;
  /** Lifecycle commands against the fake (in-process credential). */
  readonly lifecycle: KeyVaultCaLifecycle;
  /** A `type: azure-key-vault` connection block for this CA (static-token credential from a file in `dir`). */
  connection(overrides?: Record<string, unknown>): Record<string, unknown>;
  /** Creates and merges a new version (rotation); returns it and its CA certificate. */
  rotate(key?: CaKeySpec): Promise<{ version: string; caPem: string }>;
  close(): Promise<void>;
}

export function lifecycleFor(
  fake: FakeKeyVault,
  certificateName: string,
  credential: TokenCredential = fakeVaultCredential,
) {
  const settings = {
    vaultUrl: fake.url,
    apiVersion: '7.5' as const,
    allowInsecureConnection: true,
    disableChallengeResourceVerification: true,
  };
  return new KeyVaultCaLifecycle({
    client: createCertificateClient(settings, credential),
    keys: createKeyClient(settings, credential),
    certificateName,
    signal: new AbortController().signal,
    env: {
      vaultUrl: fake.url,
      policy: { attempts: 3, initialDelayMs: 5, maxDelayMs: 20, maxRetryAfterMs: 1_000 },
      timeoutMs: 10_000,
      metrics: new Metrics({ defaultMetrics: false }),
      log: silentLogger(),
    },
  });
}

/** Creates (in `fake`) and enrolls an issuing CA certificate under `certificateName`. */
export async function createIssuingCa(
  fake: FakeKeyVault,
  options: { certificateName?: string; key?: CaKeySpec; subject?: string; days?: number } = {},
): Promise<IssuingCaFixture> {
  const dir = await mkdtemp(path.join(tmpdir(), 'certprov-kv-'));
  const certificateName = options.certificateName ?? 'issuing-ca';
  await writeFile(path.join(dir, 'kv-token'), `${FAKE_KEY_VAULT_TOKEN}\n`, { mode: 0o600 });
  const parent = await OpensslParentCa.create(dir);
  const lifecycle = lifecycleFor(fake, certificateName);
  const enroll = async (key: CaKeySpec) => {
    const pending = await lifecycle.create({
      subject: options.subject ?? 'CN=certprov test issuing CA,O=Example',
      key,
    });
    const caPem = await parent.sign(pending.csrPem ?? '', { days: options.days ?? 730 });
    const merged = await lifecycle.merge(parseChain(caPem + parent.rootPem));
    return { version: merged.version, caPem };
  };
  const first = await enroll(options.key ?? { type: 'ec' });
  return {
    fake,
    parent,
    dir,
    certificateName,
    version: first.version,
    caPem: first.caPem,
    lifecycle,
    connection: (overrides = {}) => ({
      type: 'azure-key-vault',
      vaultUrl: fake.url,
      certificateName,
      certificateVersion: first.version,
      allowInsecureConnection: true,
      disableChallengeResourceVerification: true,
      credential: { type: 'static-token', token: { file: path.join(dir, 'kv-token') } },
      retry: { initialDelay: '10ms', maxDelay: '80ms' },
      ...overrides,
    }),
    rotate: (key) => enroll(key ?? options.key ?? { type: 'ec' }),
    close: () => rm(dir, { recursive: true, force: true }),
  };
}
