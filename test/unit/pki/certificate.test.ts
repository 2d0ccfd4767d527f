/**
 * certificateSummary (the inventory's reading of every uploaded leaf) gives the same fields as the full parse,
 * and openssl agrees on serial and validity: v1 and v3 certificates, UTCTime and GeneralizedTime, with and
 * without an authority key identifier, serials with a sign octet, a multi-valued RDN in the issuer.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { certificateSummary, describeName, parseCertificate } from '../../../src/pki/certificate.ts';
import { DerError } from '../../../src/pki/der.ts';
import { openssl, withTempDir } from '../../support/openssl.ts';

async function run(dir: string, args: readonly string[]): Promise<string> {
  const result = await openssl(args, { cwd: dir });
  if (result.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

/** A CA and leaves signed by it, each named by what it exercises. */
async function certificates(dir: string): Promise<Record<string, string>> {
  await run(dir, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key',
    '-out', 'ca.pem', '-subj', '/C=DE/O=Example, Inc/CN=Test CA+OU=Unit', '-days', '30', '-set_serial', '0x80ab',
  ]); // prettier-ignore
  await run(dir, ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'leaf.key', '-subj', '/CN=leaf', '-out', 'leaf.csr']); // prettier-ignore
  const leaf = async (name: string, serial: string, days: string, extensions: string) => {
    await writeFile(path.join(dir, `${name}.ext`), extensions);
    await run(dir, [
      'x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', serial, '-days', days,
      '-extfile', `${name}.ext`, '-out', `${name}.pem`,
    ]); // prettier-ignore
  };
  await leaf('v3-aki-2067', '5', '15000', 'basicConstraints=CA:FALSE\nauthorityKeyIdentifier=keyid\n');
  await leaf('v3-aki-issuer', '0xff00', '10', 'authorityKeyIdentifier=keyid,issuer:always\n');
  await leaf(
    'v3-no-aki',
    '7',
    '10',
    'basicConstraints=CA:FALSE\nauthorityKeyIdentifier=none\nsubjectKeyIdentifier=none\n',
  );
  await leaf('v1', '6', '5', '');
  const names = ['ca', 'v3-aki-2067', 'v3-aki-issuer', 'v3-no-aki', 'v1'];
  const pems = await Promise.all(names.map((n) => readFile(path.join(dir, `${n}.pem`), 'utf8')));
  return Object.fromEntries(names.map((n, i) => [n, pems[i] as string]));
}

/** openssl's `-serial -startdate -enddate` as (lowercase hex serial, notBefore ms, notAfter ms). */
async function opensslView(dir: string, pem: string) {
  await writeFile(path.join(dir, 'view.pem'), pem);
  const out = await run(dir, ['x509', '-in', 'view.pem', '-noout', '-serial', '-startdate', '-enddate']);
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(out)?.[1] ?? '';
  return {
    serial: value('serial').toLowerCase(),
    notBefore: Date.parse(value('notBefore')),
    notAfter: Date.parse(value('notAfter')),
  };
}

describe('certificateSummary', () => {
  it('reads what parseCertificate reads, and openssl agrees on serial and validity', async () => {
    await withTempDir(async (dir) => {
      const all = await certificates(dir);
      for (const [name, pem] of Object.entries(all)) {
        const full = parseCertificate(pem);
        const summary = certificateSummary(pem);
        const judge = await opensslView(dir, pem);
        expect({ name, ...summary }).toEqual({
          name,
          serialHex: full.serialHex,
          issuer: describeName(full.asn1.tbsCertificate.issuer),
          notBefore: full.notBefore,
          notAfter: full.notAfter,
          spkiDer: full.spkiDer,
          authorityKeyIdentifier: full.authorityKeyIdentifier,
        });
        expect({ name, serial: summary.serialHex.padStart(judge.serial.length, '0') }).toEqual({
          name,
          serial: judge.serial,
        });
        expect(summary.notBefore.getTime()).toBe(judge.notBefore);
        expect(summary.notAfter.getTime()).toBe(judge.notAfter);
      }
      // The cases the comparison is meant to cover are really there.
      expect(certificateSummary(all['v3-aki-2067'] ?? '').notAfter.getUTCFullYear()).toBeGreaterThanOrEqual(2050);
      expect(certificateSummary(all['v3-aki-issuer'] ?? '').serialHex).toBe('ff00');
      expect(certificateSummary(all['v3-aki-issuer'] ?? '').authorityKeyIdentifier).toBeDefined();
      expect(certificateSummary(all['v3-no-aki'] ?? '').authorityKeyIdentifier).toBeUndefined();
      expect(certificateSummary(all.ca ?? '').issuer).toBe('C=DE, O=Example, Inc, OU=Unit+CN=Test CA');
    });
  }, 30_000);

  it('refuses a certificate whose validity is not a time', async () => {
    await withTempDir(async (dir) => {
      const der = Buffer.from((await certificates(dir))['v1']?.replace(/-----[^-]+-----|\s/g, '') ?? '', 'base64');
      // Turn notBefore (the first UTCTime: tag 0x17, 13 octets YYMMDDHHMMSSZ) into an OCTET STRING.
      const at = der.findIndex((b, i) => b === 0x17 && der[i + 1] === 13 && der[i + 14] === 0x5a);
      expect(at).toBeGreaterThan(0);
      der[at] = 0x04;
      expect(() => certificateSummary(new Uint8Array(der))).toThrow(DerError);
    });
  }, 30_000);
});
