/**
 * Whether a CA certificate (and its parents) can issue the profile's leaves, with the wrong field named:
 * keyUsage keyCertSign, a parent's pathLenConstraint that leaves room for the CA below it, and no EKU on a CA
 * certificate that excludes the leaves' (clientAuth). The chains are made with @peculiar/x509, and openssl
 * confirms that the flagged chains really fail verification of a leaf.
 */
import { webcrypto } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseCertificate } from '../../../src/pki/certificate.ts';
import { EXTENDED_KEY_USAGES } from '../../../src/pki/extended-key-usage.ts';
import { issuingCaProblems } from '../../../src/pki/issuing-ca-checks.ts';
import { x509 } from '../../fakes/digicert/x509.ts';
import { verifyCertificate } from '../../support/openssl.ts';

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const CLIENT_AUTH = EXTENDED_KEY_USAGES.clientAuth as string;
const SERVER_AUTH = EXTENDED_KEY_USAGES.serverAuth as string;
const CA_USAGE = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;

interface Made {
  readonly pem: string;
  readonly keys: webcrypto.CryptoKeyPair;
  readonly name: string;
}

async function make(
  name: string,
  issuer: Made | undefined,
  options: { ca: boolean; pathLen?: number; usage?: number; ekus?: readonly string[] },
): Promise<Made> {
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(options.ca, options.pathLen, true),
    new x509.KeyUsagesExtension(options.usage ?? (options.ca ? CA_USAGE : x509.KeyUsageFlags.digitalSignature), true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (options.ekus !== undefined) extensions.push(new x509.ExtendedKeyUsageExtension([...options.ekus]));
  if (issuer !== undefined) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey));
  const common = {
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8)))
      .toString('hex')
      .replace(/^./, '1'),
    subject: name,
    notBefore: new Date(Date.now() - 86_400_000),
    notAfter: new Date(Date.now() + 365 * 86_400_000),
    signingAlgorithm: ALGORITHM,
    extensions,
  };
  const certificate =
    issuer === undefined
      ? await x509.X509CertificateGenerator.createSelfSigned({ ...common, name, keys })
      : await x509.X509CertificateGenerator.create({
          ...common,
          issuer: issuer.name,
          publicKey: keys.publicKey,
          signingKey: issuer.keys.privateKey,
        });
  return { pem: certificate.toString('pem'), keys, name };
}

async function chainOf(options: {
  root?: { pathLen?: number; ekus?: readonly string[] };
  ca?: { usage?: number; ekus?: readonly string[] };
}) {
  const root = await make('CN=Test Root', undefined, { ca: true, pathLen: 1, ...options.root });
  const ca = await make('CN=Test Issuing CA', root, { ca: true, pathLen: 0, ...options.ca });
  const leaf = await make('CN=device', ca, { ca: false, ekus: [CLIENT_AUTH] });
  return { root, ca, leaf, chain: [parseCertificate(ca.pem), parseCertificate(root.pem)] };
}

describe('issuingCaProblems', () => {
  it('a CA with keyCertSign under a root with room for it, no EKUs: no problem, and openssl agrees', async () => {
    const { root, ca, leaf, chain } = await chainOf({});
    expect(issuingCaProblems(chain, [CLIENT_AUTH])).toEqual([]);
    const verdict = await verifyCertificate(leaf.pem, root.pem, { untrusted: [ca.pem], purpose: 'sslclient' });
    expect(verdict.ok, verdict.stderr).toBe(true);
  });

  it('names keyUsage when the CA certificate lacks keyCertSign', async () => {
    const { chain } = await chainOf({ ca: { usage: x509.KeyUsageFlags.digitalSignature } });
    expect(issuingCaProblems(chain, [CLIENT_AUTH])).toEqual([
      expect.stringMatching(/the CA certificate: keyUsage lacks keyCertSign/),
    ]);
  });

  it("names the parent's pathLenConstraint when it leaves no room for the CA below it; openssl rejects the leaf", async () => {
    const { root, ca, leaf, chain } = await chainOf({ root: { pathLen: 0 } });
    expect(issuingCaProblems(chain, [CLIENT_AUTH])).toEqual([
      expect.stringMatching(
        /certificate 2 of 2 .*issuer.*: basicConstraints pathLenConstraint 0 allows 0 .* the chain has 1/,
      ),
    ]);
    const verdict = await verifyCertificate(leaf.pem, root.pem, { untrusted: [ca.pem], purpose: 'sslclient' });
    expect(verdict.ok).toBe(false);
    expect(verdict.stdout + verdict.stderr).toMatch(/path length/i);
  });

  it('names extendedKeyUsage when a CA certificate excludes clientAuth; openssl rejects the leaf too', async () => {
    const { root, ca, leaf, chain } = await chainOf({ ca: { ekus: [SERVER_AUTH] } });
    expect(issuingCaProblems(chain, [CLIENT_AUTH])).toEqual([
      expect.stringMatching(/the CA certificate: extendedKeyUsage \(serverAuth\) excludes clientAuth/),
    ]);
    const verdict = await verifyCertificate(leaf.pem, root.pem, { untrusted: [ca.pem], purpose: 'sslclient' });
    expect(verdict.ok).toBe(false);
    expect(verdict.stdout + verdict.stderr).toMatch(/purpose/i);
  });

  it('a CA certificate whose EKUs include clientAuth (or anyExtendedKeyUsage) is fine', async () => {
    for (const ekus of [[CLIENT_AUTH, SERVER_AUTH], ['2.5.29.37.0']]) {
      const { chain } = await chainOf({ ca: { ekus } });
      expect(issuingCaProblems(chain, [CLIENT_AUTH])).toEqual([]);
    }
  });
});
