/**
 * `certprov local-ca init`: creates the key and self-signed certificate of a file-backed CA for trials, the demo
 * and tests. The key is written as unencrypted PKCS#8 with mode 0600 — this CA is not meant to protect anything
 * valuable; production uses DigiCert or a Key Vault-held CA.
 *
 * With `intermediate`, the production shape for a lab: a root (pathLen 1) signs an issuing CA (pathLen 0), and
 * leaves chain root → issuing → leaf. The issuing CA takes the usual file names, so a `type: local` connection
 * issues from it unchanged; the root's key is only needed to sign a new issuing CA, and belongs offline.
 */
import { createPublicKey, generateKeyPair, randomBytes, type KeyObject } from 'node:crypto';
import { link, open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildCaCertificate, signerFromPrivateKey } from '../../pki/certificate-builder.ts';
import { makeDirectorySync } from '../../make-directory.ts';
import { parseCertificate } from '../../pki/certificate.ts';
import { parseSubjectTemplate, renderSubject } from '../../pki/subject-template.ts';
import type { DistinguishedName } from '../../pki/types.ts';
import { DAY_MS } from '../../time.ts';

const generateKeyPairAsync = promisify(generateKeyPair);

/** File names inside a local CA directory. */
export const LOCAL_CA_FILES = {
  key: 'ca.key.pem',
  certificate: 'ca.cert.pem',
  journal: 'issued.jsonl',
  /** With `--intermediate`: the root that signed the issuing CA (never read by the adapter). */
  rootKey: 'root.key.pem',
  rootCertificate: 'root.cert.pem',
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
  /**
   * Create a root and an issuing CA signed by it (pathLen 0) instead of one self-signed CA. The root lives twice
   * `validityDays`. Default false.
   */
  readonly intermediate?: boolean;
  /** The root's subject with `intermediate`. Default `CN=certprov local root CA <8 random hex digits>`. */
  readonly rootSubject?: string | DistinguishedName;
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
  /** With `intermediate`: the root that signed the issuing CA above. */
  readonly root?: {
    readonly keyPath: string;
    readonly certificatePath: string;
    readonly certificatePem: string;
    readonly serialHex: string;
    readonly notBefore: Date;
    readonly notAfter: Date;
  };
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

function resolveSubject(subject: InitLocalCaOptions['subject'], kind = 'local CA'): DistinguishedName {
  const source = subject ?? `CN=certprov ${kind} ${randomBytes(4).toString('hex')}`;
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
 * cRLSign, SKI) in `directory`, as `ca.key.pem` (PKCS#8, mode 0600) and `ca.cert.pem`. With `intermediate`, that
 * CA is an issuing CA signed by a new root (pathlen:1) written beside it as `root.key.pem` and `root.cert.pem`.
 * @throws LocalCaExistsError when any of the files exists and `force` is not set.
 */
export async function initLocalCa(options: InitLocalCaOptions): Promise<InitLocalCaResult> {
  const directory = path.resolve(options.directory);
  const keyPath = path.join(directory, LOCAL_CA_FILES.key);
  const certificatePath = path.join(directory, LOCAL_CA_FILES.certificate);
  const rootKeyPath = path.join(directory, LOCAL_CA_FILES.rootKey);
  const rootCertificatePath = path.join(directory, LOCAL_CA_FILES.rootCertificate);
  const force = options.force ?? false;
  const intermediate = options.intermediate ?? false;
  const keyType = options.keyType ?? 'ec';
  const validityDays = options.validityDays ?? DEFAULT_CA_VALIDITY_DAYS;
  if (!Number.isInteger(validityDays) || validityDays <= 0)
    throw new Error(`validityDays must be a positive integer, got ${validityDays}`);
  const subject = resolveSubject(options.subject, intermediate ? 'local issuing CA' : 'local CA');
  const rootSubject = intermediate ? resolveSubject(options.rootSubject, 'local root CA') : undefined;

  makeDirectorySync(directory, 0o700);
  if (!force) {
    for (const file of intermediate
      ? [keyPath, certificatePath, rootKeyPath, rootCertificatePath]
      : [keyPath, certificatePath]) {
      if (await exists(file)) throw new LocalCaExistsError(directory, path.basename(file));
    }
  }

  const privateKey = await newCaKey(keyType);
  let root: { key: KeyObject; built: Awaited<ReturnType<typeof buildCaCertificate>> } | undefined;
  if (rootSubject !== undefined) {
    const rootKey = await newCaKey(keyType);
    const built = await buildCaCertificate({
      subject: rootSubject,
      spkiDer: spkiOf(rootKey),
      signer: signerFromPrivateKey(rootKey),
      validityMs: 2 * validityDays * DAY_MS,
      // One CA below the root: the issuing CA, which itself issues only leaves.
      pathLength: 1,
      now: options.now,
    });
    root = { key: rootKey, built };
  }
  const certificate = await buildCaCertificate({
    subject,
    spkiDer: spkiOf(privateKey),
    signer: signerFromPrivateKey(root?.key ?? privateKey),
    validityMs: validityDays * DAY_MS,
    now: options.now,
    ...(root === undefined ? {} : { issuer: parseCertificate(root.built.pem) }),
  });

  if (root !== undefined) {
    await writeNew(rootKeyPath, root.key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600, force);
    await writeNew(rootCertificatePath, root.built.pem, 0o644, force);
  }
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
    ...(root === undefined
      ? {}
      : {
          root: {
            keyPath: rootKeyPath,
            certificatePath: rootCertificatePath,
            certificatePem: root.built.pem,
            serialHex: root.built.serialHex,
            notBefore: root.built.notBefore,
            notAfter: root.built.notAfter,
          },
        }),
  };
}

async function newCaKey(keyType: LocalCaKeyType): Promise<KeyObject> {
  const { privateKey } =
    keyType === 'ec'
      ? await generateKeyPairAsync('ec', { namedCurve: 'P-256' })
      : await generateKeyPairAsync('rsa', { modulusLength: RSA_CA_BITS });
  return privateKey;
}

function spkiOf(privateKey: KeyObject): Uint8Array {
  return new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
}
