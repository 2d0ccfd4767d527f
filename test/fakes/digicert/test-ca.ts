/**
 * The fake CertCentral's CA hierarchy: a root and an issuing intermediate (EC P-256, made once per fake), so a
 * `pem_all` download carries leaf, intermediate and root as DigiCert's does, and `openssl verify` needs the chain.
 *
 * Root and intermediate are made with @peculiar/x509 (the fake has no business reusing the adapter's code to build
 * its CA); leaves come from the shared certificate builder, signed by the intermediate's key.
 */
import { webcrypto } from 'node:crypto';
import { x509 } from './x509.ts';
import {
  buildLeafCertificate,
  parseCertificate,
  signerFromPrivateKey,
  type BuiltCertificate,
  type ParsedCertificate,
} from '../../../src/pki/certificate-builder.ts';
import type { DistinguishedName, SubjectAltName } from '../../../src/pki/types.ts';

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const YEAR_MS = 365 * 86_400_000;

export interface LeafRequest {
  readonly subject: DistinguishedName;
  readonly subjectAltNames: readonly SubjectAltName[];
  readonly spkiDer: Uint8Array;
  readonly validityMs: number;
  readonly extendedKeyUsages: readonly string[];
}

export class FakeDigicertCa {
  readonly rootPem: string;
  readonly intermediatePem: string;
  private readonly intermediate: ParsedCertificate;
  private readonly intermediateKey: webcrypto.CryptoKey;

  private constructor(rootPem: string, intermediatePem: string, intermediateKey: webcrypto.CryptoKey) {
    this.rootPem = rootPem;
    this.intermediatePem = intermediatePem;
    this.intermediate = parseCertificate(intermediatePem);
    this.intermediateKey = intermediateKey;
  }

  /** `validityYears`: of the root and the intermediate (default 10). */
  static async create(validityYears = 10): Promise<FakeDigicertCa> {
    const now = Date.now();
    const notBefore = new Date(now - 86_400_000);
    const notAfter = new Date(now + validityYears * YEAR_MS);
    const rootKeys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'CN=Fake DigiCert Test Root G5,O=Fake DigiCert Inc,C=US',
      keys: rootKeys,
      notBefore,
      notAfter,
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
    const interKeys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
    const intermediate = await x509.X509CertificateGenerator.create({
      subject: 'CN=Fake DigiCert Test Client CA G2,O=Fake DigiCert Inc,C=US',
      issuer: root.subject,
      publicKey: interKeys.publicKey,
      signingKey: rootKeys.privateKey,
      notBefore,
      notAfter: new Date(notAfter.getTime() - 86_400_000),
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(interKeys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
    // One PEM block per line-terminated text, as DigiCert's downloads are (peculiar writes no final newline).
    const pem = (certificate: x509.X509Certificate) => `${certificate.toString('pem').trimEnd()}\n`;
    return new FakeDigicertCa(pem(root), pem(intermediate), interKeys.privateKey);
  }

  /** A leaf for the CSR's key, signed by the intermediate (backdated 5 minutes, as the builder does). */
  issueLeaf(request: LeafRequest): Promise<BuiltCertificate> {
    return buildLeafCertificate({
      issuer: this.intermediate,
      spkiDer: request.spkiDer,
      profile: {
        subject: request.subject,
        subjectAltNames: request.subjectAltNames,
        validityMs: request.validityMs,
        extendedKeyUsages: request.extendedKeyUsages,
      },
      signer: signerFromPrivateKey(this.intermediateKey),
    });
  }
}
