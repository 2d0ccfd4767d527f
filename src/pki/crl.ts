/**
 * X.509 v2 certificate revocation lists (RFC 5280 §5), signed through a {@link TbsSigner} — the local key, or one
 * remote sign call per CRL for a Key Vault or Cloud KMS key (the TBSCertList is hashed locally, like a certificate).
 *
 * TBSCertList ::= SEQUENCE { version v2, signature, issuer, thisUpdate, nextUpdate, revokedCertificates,
 *   crlExtensions [0] { authorityKeyIdentifier, cRLNumber } }; each entry carries its reasonCode (§5.3.1) unless the
 * reason is `unspecified`, which RFC 5280 says to leave out.
 */
import {
  DerError,
  TAG,
  concatBytes,
  contextConstructed,
  encodeLength,
  sequence,
  smallInteger,
  tlv,
  unsignedInteger,
  x509Time,
} from './der.ts';
import { EXTENSION_OIDS, authorityKeyIdentifierExtension, encodeExtension, keyIdentifierOf } from './extensions.ts';
import type { ParsedCertificate } from './certificate.ts';
import { CRL_REASONS, type CrlReason } from './crl-reason.ts';
import { signAndVerify, type TbsSigner } from './signer.ts';
import { signatureAlgorithmIdentifier } from './signature-algorithms.ts';

/** One revoked certificate on the list. */
export interface CrlEntry {
  /** Serial number, hex (any case, no separators). */
  readonly serialHex: string;
  readonly revokedAt: Date;
  readonly reason: CrlReason;
}

export interface CrlOptions {
  /** The CA certificate whose key signs: its subject becomes the CRL issuer, its key identifier the AKI. */
  readonly issuer: ParsedCertificate;
  readonly signer: TbsSigner;
  /** cRLNumber: grows with every CRL the CA issues (RFC 5280 §5.2.3). */
  readonly crlNumber: number;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly entries: readonly CrlEntry[];
  readonly signal?: AbortSignal;
}

const ENUMERATED = 0x0a;

function serialBytes(hex: string): Uint8Array {
  const clean = hex.toLowerCase();
  if (!/^[0-9a-f]{1,40}$/.test(clean)) throw new DerError(`serial number ${hex} is not 1–20 octets of hex`);
  return Uint8Array.from(Buffer.from(clean.length % 2 === 0 ? clean : `0${clean}`, 'hex'));
}

/** reasonCode entry extension: `ENUMERATED`, not critical. */
function reasonCodeExtension(reason: CrlReason): Uint8Array {
  return encodeExtension(EXTENSION_OIDS.reasonCode, false, tlv(ENUMERATED, Uint8Array.of(CRL_REASONS[reason])));
}

function revokedCertificate(entry: CrlEntry): Uint8Array {
  return sequence(
    unsignedInteger(serialBytes(entry.serialHex)),
    x509Time(entry.revokedAt),
    ...(entry.reason === 'unspecified' ? [] : [sequence(reasonCodeExtension(entry.reason))]),
  );
}

/** The TBSCertList DER. The entries are encoded one by one and joined once: 100,000 entries are ~4 MB. */
export function buildTbsCertList(
  options: Omit<CrlOptions, 'signer' | 'signal'> & { signer: Pick<TbsSigner, 'algorithm'> },
): Uint8Array {
  if (!(options.nextUpdate.getTime() > options.thisUpdate.getTime())) {
    throw new DerError('nextUpdate must be after thisUpdate');
  }
  const entries = concatBytes(options.entries.map(revokedCertificate));
  const revoked =
    options.entries.length === 0
      ? [] // RFC 5280 §5.1.2.6: absent when no certificate is revoked
      : [concatBytes([Uint8Array.of(TAG.SEQUENCE), encodeLength(entries.length), entries])];
  const issuer = options.issuer;
  return sequence(
    smallInteger(1), // v2
    signatureAlgorithmIdentifier(options.signer.algorithm),
    issuer.subjectNameDer,
    x509Time(options.thisUpdate),
    x509Time(options.nextUpdate),
    ...revoked,
    tlv(
      contextConstructed(0),
      sequence(
        authorityKeyIdentifierExtension(issuer.subjectKeyIdentifier ?? keyIdentifierOf(issuer.spkiDer)),
        encodeExtension(EXTENSION_OIDS.cRLNumber, false, smallInteger(options.crlNumber)),
      ),
    ),
  );
}

/**
 * Builds and signs a CRL; the signature is verified against the issuer's key before the DER is returned.
 * @throws SignatureMismatchError when the signer's key is not the CA certificate's; DerError for a bad value.
 */
export async function buildCrl(options: CrlOptions): Promise<Uint8Array> {
  const tbs = buildTbsCertList(options);
  const signed = await signAndVerify(tbs, options.signer, options.issuer.spkiDer, options.signal);
  return signed.der;
}
