/**
 * The independent judge (DESIGN.md §7): certificates and CSRs the adapter produces are checked with the `openssl`
 * command line, not only with the library that made them. Every helper writes its inputs to a fresh temp dir.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface OpensslResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `openssl ...args` (never throws for a non-zero exit; the caller reads `code`). */
export function openssl(args: readonly string[], options: { cwd?: string } = {}): Promise<OpensslResult> {
  return new Promise((resolve, reject) => {
    execFile(
      'openssl',
      [...args],
      { cwd: options.cwd, encoding: 'utf8', maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number') {
          // Not an exit status: openssl could not be started at all (ENOENT) — a broken test machine.
          reject(new Error(`openssl could not be run: ${error.message}`, { cause: error }));
          return;
        }
        resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr });
      },
    );
  });
}

/** Runs `fn` with a fresh temp directory, removed afterwards. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'certprov-openssl-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

type Input = string | Uint8Array;

/** Writes PEM text as-is or DER bytes; returns the file path and the `-inform` value. */
async function writeInput(dir: string, name: string, input: Input): Promise<{ file: string; form: 'PEM' | 'DER' }> {
  const file = path.join(dir, name);
  await writeFile(file, input);
  return { file, form: typeof input === 'string' ? 'PEM' : 'DER' };
}

export interface VerifyCertificateOptions {
  /** Intermediate certificates (PEM), passed with `-untrusted`. */
  readonly untrusted?: readonly string[];
  /** `-purpose` (e.g. `sslclient`: checks keyUsage/EKU fit client authentication). */
  readonly purpose?: string;
  /** `-x509_strict`: RFC 5280 conformance checks on top of the chain. Default true. */
  readonly strict?: boolean;
  /** `-attime` (seconds since the epoch). */
  readonly atTime?: number;
}

/** `openssl verify -CAfile ca.pem [-untrusted chain.pem] leaf.pem`; ok only when the output says OK. */
export async function verifyCertificate(
  leafPem: string,
  caPem: string,
  options: VerifyCertificateOptions = {},
): Promise<OpensslResult & { ok: boolean }> {
  return withTempDir(async (dir) => {
    await writeFile(path.join(dir, 'ca.pem'), caPem);
    await writeFile(path.join(dir, 'leaf.pem'), leafPem);
    const args = ['verify', '-CAfile', 'ca.pem'];
    if (options.strict ?? true) args.push('-x509_strict');
    if (options.purpose !== undefined) args.push('-purpose', options.purpose);
    if (options.atTime !== undefined) args.push('-attime', String(options.atTime));
    if (options.untrusted !== undefined && options.untrusted.length > 0) {
      await writeFile(path.join(dir, 'untrusted.pem'), options.untrusted.join('\n'));
      args.push('-untrusted', 'untrusted.pem');
    }
    args.push('leaf.pem');
    const result = await openssl(args, { cwd: dir });
    return { ...result, ok: result.code === 0 && /^leaf\.pem: OK$/m.test(result.stdout) };
  });
}

/** `openssl req -verify -noout`: checks the CSR's self-signature; ok only when openssl says "verify OK". */
export async function verifyCsr(csr: Input): Promise<OpensslResult & { ok: boolean }> {
  return withTempDir(async (dir) => {
    const { file, form } = await writeInput(dir, 'csr', csr);
    const result = await openssl(['req', '-verify', '-noout', '-inform', form, '-in', file]);
    const said = `${result.stdout}\n${result.stderr}`;
    return { ...result, ok: result.code === 0 && /verify OK/i.test(said) && !/verify failure/i.test(said) };
  });
}

async function pubkeyToDer(dir: string, pubkeyPem: string): Promise<Buffer> {
  await writeFile(path.join(dir, 'pub.pem'), pubkeyPem);
  const result = await openssl(['pkey', '-pubin', '-in', 'pub.pem', '-outform', 'DER', '-out', 'pub.der'], {
    cwd: dir,
  });
  if (result.code !== 0) throw new Error(`openssl pkey failed: ${result.stderr}`);
  return readFile(path.join(dir, 'pub.der'));
}

/** The SubjectPublicKeyInfo (DER) of a certificate as openssl sees it (`x509 -pubkey` → `pkey -pubin -outform DER`). */
export async function spkiDerOfCertificate(certificate: Input): Promise<Buffer> {
  return withTempDir(async (dir) => {
    const { file, form } = await writeInput(dir, 'cert', certificate);
    const result = await openssl(['x509', '-inform', form, '-in', file, '-noout', '-pubkey']);
    if (result.code !== 0) throw new Error(`openssl x509 -pubkey failed: ${result.stderr}`);
    return pubkeyToDer(dir, result.stdout);
  });
}

/** The SubjectPublicKeyInfo (DER) of a CSR as openssl sees it (`req -pubkey` → `pkey -pubin -outform DER`). */
export async function spkiDerOfCsr(csr: Input): Promise<Buffer> {
  return withTempDir(async (dir) => {
    const { file, form } = await writeInput(dir, 'csr', csr);
    const result = await openssl(['req', '-inform', form, '-in', file, '-noout', '-pubkey']);
    if (result.code !== 0) throw new Error(`openssl req -pubkey failed: ${result.stderr}`);
    return pubkeyToDer(dir, result.stdout);
  });
}

/** `openssl x509 -text -noout` output. */
export async function certificateText(certificate: Input): Promise<string> {
  return withTempDir(async (dir) => {
    const { file, form } = await writeInput(dir, 'cert', certificate);
    const result = await openssl(['x509', '-inform', form, '-in', file, '-noout', '-text', '-nameopt', 'RFC2253']);
    if (result.code !== 0) throw new Error(`openssl x509 -text failed: ${result.stderr}`);
    return result.stdout;
  });
}

/** `openssl req -text -noout` output. */
export async function csrText(csr: Input): Promise<string> {
  return withTempDir(async (dir) => {
    const { file, form } = await writeInput(dir, 'csr', csr);
    const result = await openssl(['req', '-inform', form, '-in', file, '-noout', '-text', '-nameopt', 'RFC2253']);
    if (result.code !== 0) throw new Error(`openssl req -text failed: ${result.stderr}`);
    return result.stdout;
  });
}

/**
 * The subject of a certificate or CSR, one `TYPE=value` line per attribute (`-nameopt sep_multiline`, no
 * escaping), so tests can see exactly how many attributes openssl found.
 */
export async function subjectLines(input: Input, kind: 'x509' | 'req'): Promise<string[]> {
  return withTempDir(async (dir) => {
    const { file, form } = await writeInput(dir, 'in', input);
    const result = await openssl([
      kind,
      '-inform',
      form,
      '-in',
      file,
      '-noout',
      '-subject',
      '-nameopt',
      'sep_multiline,utf8,sname',
    ]);
    if (result.code !== 0) throw new Error(`openssl ${kind} -subject failed: ${result.stderr}`);
    return result.stdout
      .split('\n')
      .slice(1)
      .map((line) => line.trim())
      .filter((line) => line !== '');
  });
}
