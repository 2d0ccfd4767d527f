/**
 * `certprov local-ca init` says plainly that a self-signed root issuing leaves directly is for trials and labs (on
 * stderr), while stdout stays the JSON result scripts read; `--intermediate` creates the production shape, a root
 * and an issuing CA with pathLen 0, and the leaves the local CA then issues chain root → issuing → leaf (openssl
 * judges).
 */
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { INTERMEDIATE_NOTE, LAB_ONLY_WARNING, localCaCommand } from '../../../src/cli/local-ca.ts';
import { localCaConfigSchema } from '../../../src/ca/local/config.ts';
import { LocalCa } from '../../../src/ca/local/local-ca.ts';
import { UsageError } from '../../../src/cli/command.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { EXTENDED_KEY_USAGES } from '../../../src/pki/extended-key-usage.ts';
import { issueRequestFor, subjectAttribute } from '../../support/issue-request.ts';
import { testKeyPool } from '../../support/keys.ts';
import { certificateText, verifyCertificate } from '../../support/openssl.ts';

const dirs: string[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A fresh directory, and stdout/stderr lines of the command captured. */
async function capturedRun(): Promise<{ dir: string; out: string[]; err: string[] }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'certprov-local-ca-init-'));
  dirs.push(dir);
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((line: string) => void out.push(line));
  vi.spyOn(console, 'error').mockImplementation((line: string) => void err.push(line));
  return { dir, out, err };
}

describe('local-ca init', () => {
  it('warns on stderr that it is for trials and labs; stdout is the JSON result', async () => {
    const { dir, out, err } = await capturedRun();
    expect(await localCaCommand.run(['init', '--dir', path.join(dir, 'ca')])).toBe(0);
    expect(() => JSON.parse(out.join('\n')) as unknown).not.toThrow();
    expect(err).toEqual([LAB_ONLY_WARNING]);
    expect(LAB_ONLY_WARNING).toMatch(
      /self-signed root that issues device certificates directly — for trials and labs only/,
    );
    expect(localCaCommand.help).toMatch(/For trials and labs only/);
    expect(LAB_ONLY_WARNING).toContain('--intermediate');
  });

  it('--intermediate: a root and an issuing CA (pathLen 0, keyCertSign/cRLSign); leaves chain root → issuing → leaf', async () => {
    const { dir, out, err } = await capturedRun();
    const caDir = path.join(dir, 'ca');
    const args = ['init', '--dir', caDir, '--intermediate', '--subject', 'CN=Lab Issuing CA,O=Example'];
    expect(await localCaCommand.run([...args, '--root-subject', 'CN=Lab Root CA,O=Example'])).toBe(0);
    expect(err).toEqual([INTERMEDIATE_NOTE]);
    const result = JSON.parse(out.join('\n')) as { root?: { certificatePath: string }; certificatePath: string };
    expect(result.root?.certificatePath).toBe(path.join(caDir, 'root.cert.pem'));
    expect((await readdir(caDir)).sort()).toEqual(['ca.cert.pem', 'ca.key.pem', 'root.cert.pem', 'root.key.pem']);
    expect((await stat(path.join(caDir, 'root.key.pem'))).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(caDir, 'ca.key.pem'))).mode & 0o777).toBe(0o600);

    const rootPem = await readFile(path.join(caDir, 'root.cert.pem'), 'utf8');
    const issuingPem = await readFile(path.join(caDir, 'ca.cert.pem'), 'utf8');
    const issuingText = await certificateText(issuingPem);
    expect(issuingText).toMatch(/Issuer: O=Example,CN=Lab Root CA\n/);
    expect(issuingText).toMatch(/Subject: O=Example,CN=Lab Issuing CA\n/);
    expect(issuingText).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(issuingText).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(issuingText).toMatch(/Authority Key Identifier/);
    expect(await certificateText(rootPem)).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:1/);
    // The issuing CA itself verifies under the root.
    expect((await verifyCertificate(issuingPem, rootPem)).ok).toBe(true);

    // A `type: local` connection on the directory issues from the issuing CA.
    const ca = await LocalCa.open('lab', localCaConfigSchema.parse({ type: 'local', directory: caDir }), {
      log: silentLogger(),
      metrics: new Metrics({ defaultMetrics: false }),
      baseDir: dir,
    });
    const pool = await testKeyPool();
    const email = 'lab.user@example.com';
    const request = issueRequestFor(pool.next('ec-p256'), {
      name: 'user_profile',
      subject: [[subjectAttribute('CN', email)]],
      subjectAltNames: [{ type: 'email', value: email }],
      validityMs: 30 * 86_400_000,
      extendedKeyUsages: [EXTENDED_KEY_USAGES.clientAuth as string],
    });
    const issued = await ca.issue(request, { signal: new AbortController().signal, log: silentLogger() });
    if (issued.status !== 'issued') throw new Error(`expected issued, got ${issued.status}`);
    const chained = await verifyCertificate(issued.certificatePem, rootPem, {
      untrusted: [issuingPem],
      purpose: 'sslclient',
    });
    expect(chained.ok, chained.stderr).toBe(true);
    // The root alone does not vouch for the leaf: the issuing CA is a real link of the chain.
    expect((await verifyCertificate(issued.certificatePem, rootPem)).ok).toBe(false);
  });

  it('--root-subject without --intermediate is a usage error', async () => {
    const { dir } = await capturedRun();
    await expect(
      localCaCommand.run(['init', '--dir', path.join(dir, 'ca'), '--root-subject', 'CN=Root']),
    ).rejects.toBeInstanceOf(UsageError);
  });
});
