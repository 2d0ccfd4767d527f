/**
 * `certprov local-ca init`: creates the key and self-signed certificate of a file-backed CA for trials, the demo
 * and tests. The key is written as unencrypted PKCS#8 with mode 0600 — this CA is not meant to protect anything
 * valuable; production uses DigiCert or a Key Vault-held CA.
 */
import { createPublicKey, generateKeyPair, randomBytes, type KeyObject } from 'node:crypto';
import { link, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildSelfSignedCaCertificate, signerFromPrivateKey } from '../../pki/certificate-builder.ts';
import { parseSubjectTemplate, renderSubject } from '../../pki/subject-template.ts';
import type { DistinguishedName } from '../../pki/types.ts';
import { DAY_MS } from '../../time.ts';

const generateKeyPairAsync = promisify(generateKeyPair);

/** File names inside a local CA directory. */
export const LOCAL_CA_FILES = {
  key: 'ca.key.pem',
  certificate: 'ca.cert.pem',
  journal: 'issued.jsonl',
} as const;

export type LocalCaKeyType = 'ec' | 'rsa';

export interface InitLocalCaOptions {
  /** Directory to create the CA in; created (mode 0700) when missing. */
  readonly directory: string;
  /** `ec` (P-256, ES256) or `rsa` (3072 bits, RS256). Default `ec`. */
  readonly keyType?: LocalCaKeyType;
  /**
   * The CA's subject as a DN (`CN=Example Trial CA,O=Example`, no placeholders) or already parsed.
   * Default `CN=certprov local CA <8 random hex digits>` (unique, so several trial CAs do not share a name).
   */
  readonly subject?: string | DistinguishedName;
  /** Lifetime of the CA certificate in days. Default 3650. */
  readonly validityDays?: number;
  /** Replace an existing CA in the directory. Default false: refuse. */
  readonly force?: boolean;
  /** Issuance time. Default: now. */
  readonly now?: Date;
}

export interface InitLocalCaResult {
  readonly keyPath: string;
  readonly certificatePath: string;
  readonly certificatePem: string;
  readonly keyType: LocalCaKeyType;
  readonly serialHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** The directory already holds a CA and `force` was not given. */
export class LocalCaExistsError extends Error {
  constructor(directory: string, file: string) {
    super(`${directory} already holds a local CA (${file} exists); pass --force to replace it`);
    this.name = 'LocalCaExistsError';
  }
}

export const DEFAULT_CA_VALIDITY_DAYS = 3650;
const RSA_CA_BITS = 3072;

function resolveSubject(subject: InitLocalCaOptions['subject']): DistinguishedName {
  const source = subject ?? `CN=certprov local CA ${randomBytes(4).toString('hex')}`;
  if (typeof source !== 'string') return source;
  const template = parseSubjectTemplate(source);
  if (template.some((rdn) => rdn.some((attribute) => attribute.value.variables.length > 0))) {
    throw new Error('the CA subject cannot contain {{placeholders}}');
  }
  // No placeholders, so rendering only validates lengths and string types; the variables are never read.
  return renderSubject(template, { process: { id: '', customer: '' } }, 'local CA subject');
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Writes `data` to `file` with `mode` through a temp file, so a reader never sees half a file. Without `replace`
 * the temp file is hard-linked into place, which fails with EEXIST if `file` appeared meanwhile (no silent
 * overwrite even when two inits race); with `replace` it is renamed over the old file.
 */
async function writeNew(file: string, data: string, mode: number, replace: boolean): Promise<void> {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  // 'wx' plus an explicit mode: the key is never readable by others, not even for a moment.
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    if (replace) {
      await rename(temp, file);
    } else {
      await link(temp, file).catch((error: unknown) => {
        throw (error as NodeJS.ErrnoException).code === 'EEXIST'
          ? new LocalCaExistsError(path.dirname(file), path.basename(file))
          : error;
      });
    }
  } finally {
    await rm(temp, { force: true });
  }
}

/**
 * Creates a CA key and a self-signed CA certificate (basicConstraints CA:true pathlen:0, keyUsage keyCertSign +
 * cRLSign, SKI) in `directory`, as `ca.key.pem` (PKCS#8, mode 0600) and `ca.cert.pem`.
 * @throws LocalCaExistsError when either file exists and `force` is not set.
 */
export async function initLocalCa(options: InitLocalCaOptions): Promise<InitLocalCaResult> {
  const directory = path.resolve(options.directory);
  const keyPath = path.join(directory, LOCAL_CA_FILES.key);
  const certificatePath = path.join(directory, LOCAL_CA_FILES.certificate);
  const force = options.force ?? false;
  const keyType = options.keyType ?? 'ec';
  const validityDays = options.validityDays ?? DEFAULT_CA_VALIDITY_DAYS;
  if (!Number.isInteger(validityDays) || validityDays <= 0)
    throw new Error(`validityDays must be a positive integer, got ${validityDays}`);
  const subject = resolveSubject(options.subject);

  await mkdir(directory, { recursive: true, mode: 0o700 });
  if (!force) {
    for (const file of [keyPath, certificatePath]) {
      if (await exists(file)) throw new LocalCaExistsError(directory, path.basename(file));
    }
  }

  const { privateKey } =
    keyType === 'ec'
      ? await generateKeyPairAsync('ec', { namedCurve: 'P-256' })
      : await generateKeyPairAsync('rsa', { modulusLength: RSA_CA_BITS });
  const certificate = await buildSelfSignedCaCertificate({
    subject,
    spkiDer: spkiOf(privateKey),
    signer: signerFromPrivateKey(privateKey),
    validityMs: validityDays * DAY_MS,
    now: options.now,
  });

  await writeNew(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600, force);
  await writeNew(certificatePath, certificate.pem, 0o644, force);
  return {
    keyPath,
    certificatePath,
    certificatePem: certificate.pem,
    keyType,
    serialHex: certificate.serialHex,
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
  };
}

function spkiOf(privateKey: KeyObject): Uint8Array {
  return new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
}
