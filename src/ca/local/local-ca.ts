/**
 * The file-backed CA (`type: local`): a key and a CA certificate in a directory (made by `certprov local-ca init`),
 * signing synchronously with the shared certificate builder. Signing is repeatable, so no order guard is needed
 * (DESIGN.md §5), but every issued certificate is recorded: one info log line, one line in `issued.jsonl`, and the
 * certificate itself in `issued/<serial>.pem` (like `openssl ca`'s newcerts). When the workflow says an earlier
 * `issue` for the process was started without its result being recorded (`priorAttempts` > 0: the replica died
 * between signing and writing the result), the certificate journaled for the process is returned instead of a new
 * one, so a crash does not leave two valid certificates for one device key.
 */
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { appendFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DeploymentFaultError, describeError } from '../../errors.ts';
import {
  certificateMatchesSpki,
  parseCertificate,
  signerFromPrivateKey,
  type BuiltCertificate,
  type ParsedCertificate,
  type TbsSigner,
} from '../../pki/certificate-builder.ts';
import { signWithKey, verifyWithKey } from '../../pki/signature-algorithms.ts';
import { issueLeaf, listOnOwnCrl, type IssuingCa } from '../issuing-core.ts';
import { revocationInfoOf, type CrlSettings } from '../crl-settings.ts';
import type {
  CaDependencies,
  CertificateAuthority,
  IssueRequest,
  IssueResult,
  Probe,
  Revocation,
  CrlIssuer,
  RevocationRequest,
  RevocationResult,
  StepContext,
} from '../types.ts';
import type { LocalCaConfig } from './config.ts';
import { LOCAL_CA_FILES } from './init.ts';
import { DAY_MS } from '../../time.ts';

/** Sub-directory holding every issued certificate as `<serial>.pem`. */
const ISSUED_DIRECTORY = 'issued';

/** One line of `issued.jsonl`. No personal data: the subject is not recorded, the process id is the audit key. */
export interface IssuedJournalEntry {
  readonly time: string;
  readonly processId: string;
  readonly correlationId: string;
  readonly serial: string;
  readonly notAfter: string;
}

export interface LocalCaOptions {
  /** Clock for issuance. Default: `() => new Date()`. */
  readonly now?: () => Date;
}

function fault(message: string, cause?: unknown, hint?: string): DeploymentFaultError {
  return new DeploymentFaultError(message, { component: 'local-ca', cause, hint });
}

async function readCaFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw fault(
      `local CA ${what} ${file} cannot be read (${code ?? describeError(error)})`,
      error,
      code === 'ENOENT'
        ? `create the CA with \`certprov local-ca init --dir ${path.dirname(file)}\``
        : 'check the file and its permissions',
    );
  }
}

/** Whether the private key belongs to the certificate: sign a random challenge, verify with the certificate's key. */
function keyMatchesCertificate(privateKey: KeyObject, signer: TbsSigner, certificate: ParsedCertificate): boolean {
  const challenge = randomBytes(32);
  const publicKey = createPublicKey({ key: Buffer.from(certificate.spkiDer), format: 'der', type: 'spki' });
  return verifyWithKey(signer.algorithm, publicKey, challenge, signWithKey(signer.algorithm, privateKey, challenge));
}

export class LocalCa implements CertificateAuthority, Probe, Revocation, CrlIssuer {
  readonly type = 'local';
  readonly name: string;
  /** Absolute path of the CA directory. */
  readonly directory: string;
  readonly certificate: ParsedCertificate;
  readonly certificatePem: string;
  private readonly signer: TbsSigner;
  private readonly config: LocalCaConfig;
  private readonly deps: CaDependencies;
  private readonly now: () => Date;
  private readonly journalPath: string;

  private constructor(
    name: string,
    directory: string,
    parts: { certificate: ParsedCertificate; certificatePem: string; signer: TbsSigner },
    config: LocalCaConfig,
    deps: CaDependencies,
    options: LocalCaOptions,
  ) {
    this.name = name;
    this.directory = directory;
    this.certificate = parts.certificate;
    this.certificatePem = parts.certificatePem;
    this.signer = parts.signer;
    this.config = config;
    this.deps = deps;
    this.now = options.now ?? (() => new Date());
    this.journalPath = path.join(directory, LOCAL_CA_FILES.journal);
  }

  /**
   * Loads `ca.key.pem` and `ca.cert.pem` from `config.directory` (relative to `deps.baseDir`).
   * @throws DeploymentFaultError (component `local-ca`) when a file is missing or unreadable, is not a key or a
   *   CA certificate, the key does not belong to the certificate, or the certificate has expired.
   */
  static async open(
    name: string,
    config: LocalCaConfig,
    deps: CaDependencies,
    options: LocalCaOptions = {},
  ): Promise<LocalCa> {
    const directory = path.resolve(deps.baseDir, config.directory);
    const keyPath = path.join(directory, LOCAL_CA_FILES.key);
    const certificatePath = path.join(directory, LOCAL_CA_FILES.certificate);
    const [keyPem, certificatePem] = await Promise.all([
      readCaFile(keyPath, 'key'),
      readCaFile(certificatePath, 'certificate'),
    ]);

    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(keyPem);
    } catch (error) {
      throw fault(`local CA key ${keyPath} is not a readable unencrypted private key`, error);
    }
    let certificate: ParsedCertificate;
    try {
      certificate = parseCertificate(certificatePem);
    } catch (error) {
      throw fault(
        `local CA certificate ${certificatePath} is not one PEM certificate (${describeError(error)})`,
        error,
      );
    }
    if (!certificate.isCa) throw fault(`${certificatePath} is not a CA certificate (basicConstraints cA is not set)`);

    let signer: TbsSigner;
    try {
      signer = signerFromPrivateKey(privateKey);
    } catch (error) {
      throw fault(`local CA key ${keyPath} cannot sign certificates (${describeError(error)})`, error);
    }
    if (!keyMatchesCertificate(privateKey, signer, certificate)) {
      throw fault(
        `local CA key ${keyPath} does not belong to the certificate ${certificatePath}`,
        undefined,
        'recreate the CA or restore the matching key',
      );
    }
    const now = (options.now ?? (() => new Date()))();
    if (certificate.notAfter.getTime() <= now.getTime()) {
      throw fault(`local CA certificate ${certificatePath} expired at ${certificate.notAfter.toISOString()}`);
    }
    const keyMode = (await stat(keyPath)).mode & 0o777;
    if ((keyMode & 0o077) !== 0) {
      deps.log.warn(
        { caConnection: name, keyPath, mode: keyMode.toString(8) },
        'local CA key is readable by group or others; chmod 600 it',
      );
    }
    return new LocalCa(name, directory, { certificate, certificatePem, signer }, config, deps, options);
  }

  /** Revocation lists the serial on this connection's CRL (signed by the adapter with the CA key). */
  revoke(request: RevocationRequest, ctx: StepContext): Promise<RevocationResult> {
    return Promise.resolve().then(() => {
      ctx.signal.throwIfAborted();
      return listOnOwnCrl(this.issuingCa(), request, 'local CA');
    });
  }

  crlSettings(): CrlSettings | undefined {
    return this.config.crl;
  }

  crlIssuer(): Promise<IssuingCa> {
    return Promise.resolve(this.issuingCa());
  }

  private issuingCa(): IssuingCa {
    return { certificate: this.certificate, chainPem: [this.certificatePem], signer: this.signer };
  }

  async issue(request: IssueRequest, ctx: StepContext): Promise<IssueResult> {
    ctx.signal.throwIfAborted();
    if (request.priorAttempts > 0) {
      const earlier = await this.issuedBefore(request);
      if (earlier !== undefined) {
        ctx.log.info(
          {
            caConnection: this.name,
            serial: earlier.serial,
            processId: request.processId,
            correlationId: request.correlationId,
          },
          'local CA: returning the certificate already issued for this process (an earlier attempt was interrupted)',
        );
        return { status: 'issued', certificatePem: earlier.pem, chainPem: [this.certificatePem] };
      }
    }
    return issueLeaf(request, ctx, this.issuingCa(), {
      connection: this.name,
      label: 'local CA',
      component: 'local-ca',
      maxValidityDays: this.config.maxValidityDays,
      backdateMs: this.config.backdate,
      revocationInfo: revocationInfoOf(this.config.crl),
      now: this.now(),
      record: (built) => this.journal(request, built),
    });
  }

  /**
   * Keeps the certificate in `issued/<serial>.pem` and a line in `issued.jsonl`: no certificate leaves without its
   * audit record; issuing again later is harmless (DESIGN.md §5).
   */
  private async journal(request: IssueRequest, built: BuiltCertificate): Promise<void> {
    const entry: IssuedJournalEntry = {
      time: this.now().toISOString(),
      processId: request.processId,
      correlationId: request.correlationId,
      serial: built.serialHex,
      notAfter: built.notAfter.toISOString(),
    };
    try {
      // The certificate first, then the journal line: a line always has its certificate (issuedBefore relies on it).
      await mkdir(path.join(this.directory, ISSUED_DIRECTORY), { recursive: true, mode: 0o700 });
      await writeFile(path.join(this.directory, ISSUED_DIRECTORY, `${built.serialHex}.pem`), built.pem, {
        mode: 0o600,
      });
      // One appendFile per line (a single O_APPEND write): several adapter processes may share the directory.
      await appendFile(this.journalPath, JSON.stringify(entry) + '\n', { encoding: 'utf8', mode: 0o600 });
    } catch (error) {
      throw fault(
        `local CA journal ${this.journalPath} cannot be written`,
        error,
        'check free space and permissions of the CA directory',
      );
    }
  }

  /**
   * The newest certificate journaled for the request's process that still fits it (the device key, not expired),
   * or undefined. Reads the whole journal: only done when an earlier attempt was interrupted.
   */
  private async issuedBefore(request: IssueRequest): Promise<{ pem: string; serial: string } | undefined> {
    let text: string;
    try {
      text = await readFile(this.journalPath, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw fault(
        `local CA journal ${this.journalPath} cannot be read`,
        error,
        'check the permissions of the CA directory',
      );
    }
    const entries: IssuedJournalEntry[] = [];
    for (const line of text.split('\n')) {
      if (!line.includes(request.processId)) continue;
      try {
        const entry = JSON.parse(line) as IssuedJournalEntry;
        if (entry.processId === request.processId) entries.push(entry);
      } catch {
        // a torn last line (crash mid-write): that attempt did not complete
      }
    }
    const now = this.now().getTime();
    for (const entry of entries.reverse()) {
      if (Date.parse(entry.notAfter) <= now || !/^[0-9a-fA-F]+$/.test(entry.serial)) continue;
      const pem = await readFile(path.join(this.directory, ISSUED_DIRECTORY, `${entry.serial}.pem`), 'utf8').catch(
        () => undefined,
      );
      if (pem !== undefined && certificateMatchesSpki(pem, request.spkiDer)) return { pem, serial: entry.serial };
    }
    return undefined;
  }

  /** Checks the CA is still usable (for `check-config --probe`); nothing is signed. */
  probe(ctx: StepContext): Promise<string> {
    ctx.signal.throwIfAborted();
    const remainingDays = Math.floor((this.certificate.notAfter.getTime() - this.now().getTime()) / DAY_MS);
    if (remainingDays < 0) {
      return Promise.reject(fault(`local CA certificate expired at ${this.certificate.notAfter.toISOString()}`));
    }
    return Promise.resolve(
      `local CA in ${this.directory}: ${this.signer.algorithm}, certificate valid until ${this.certificate.notAfter.toISOString()} (${remainingDays} days)`,
    );
  }
}
