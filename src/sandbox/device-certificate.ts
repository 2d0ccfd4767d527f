/**
 * What the simulated ChromeOS client does with certificates: check an uploaded PEM the way the real client does
 * (exactly one certificate, parseable, SPKI equal to the device key byte for byte; chrome-cert-provisioning-api.md
 * "uploadCertificate"), and make a certificate for processes created already finished.
 */
import { X509Certificate, randomBytes, sign, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AttributeTypeAndValue,
  AttributeValue,
  Certificate,
  Name,
  RelativeDistinguishedName,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
} from '@peculiar/asn1-x509';
import { sha256WithRSAEncryption } from '@peculiar/asn1-rsa';
import { ecdsaWithSHA256 } from '@peculiar/asn1-ecc';
import type { DeviceKey } from './key-pool.ts';
import { DAY_MS } from '../time.ts';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Why the device refused an uploaded certificate; undefined when it accepts it. */
export type UploadRejection = 'not-exactly-one-certificate' | 'unparseable' | 'spki-mismatch';

interface Tlv {
  readonly tag: number;
  /** Offset of the first content byte. */
  readonly contentStart: number;
  /** Offset just past the element. */
  readonly end: number;
}

/** Reads one DER TLV (definite lengths only, as DER requires). */
function readTlv(der: Uint8Array, offset: number): Tlv {
  const tag = der[offset];
  let lengthByte = der[offset + 1];
  if (tag === undefined || lengthByte === undefined) throw new Error('truncated DER');
  let contentStart = offset + 2;
  let length = lengthByte;
  if (lengthByte & 0x80) {
    const octets = lengthByte & 0x7f;
    if (octets === 0 || octets > 4) throw new Error('unsupported DER length');
    length = 0;
    for (let i = 0; i < octets; i += 1) {
      lengthByte = der[contentStart + i];
      if (lengthByte === undefined) throw new Error('truncated DER');
      length = length * 256 + lengthByte;
    }
    contentStart += octets;
  }
  const end = contentStart + length;
  if (end > der.length) throw new Error('truncated DER');
  return { tag, contentStart, end };
}

/**
 * The SubjectPublicKeyInfo of a certificate exactly as encoded in it. Re-exporting the parsed key could normalise
 * the encoding; the device compares the bytes it holds with the bytes in the certificate, so we slice them out.
 */
export function rawSpkiOfCertificate(certificateDer: Uint8Array): Uint8Array {
  const certificate = readTlv(certificateDer, 0);
  const tbs = readTlv(certificateDer, certificate.contentStart);
  let cursor = tbs.contentStart;
  let element = readTlv(certificateDer, cursor);
  // version [0] EXPLICIT is optional (absent in v1 certificates)
  if (element.tag === 0xa0) {
    cursor = element.end;
    element = readTlv(certificateDer, cursor);
  }
  // serialNumber, signature, issuer, validity, subject — then subjectPublicKeyInfo
  for (let i = 0; i < 5; i += 1) {
    cursor = element.end;
    element = readTlv(certificateDer, cursor);
  }
  if (element.tag !== 0x30) throw new Error('subjectPublicKeyInfo is not a SEQUENCE');
  return certificateDer.subarray(cursor, element.end);
}

/** Runs the device's checks on an uploaded PEM; returns why it refused it, or undefined if it accepts it. */
export function checkUploadedCertificate(
  certificatePem: string,
  deviceSpkiDer: Uint8Array,
): UploadRejection | undefined {
  const blocks = certificatePem.match(PEM_CERTIFICATE);
  if (blocks === null || blocks.length !== 1) return 'not-exactly-one-certificate';
  let der: Uint8Array;
  try {
    der = new X509Certificate(blocks[0]).raw;
  } catch {
    return 'unparseable';
  }
  let spki: Uint8Array;
  try {
    spki = rawSpkiOfCertificate(der);
  } catch {
    return 'unparseable';
  }
  return Buffer.compare(spki, deviceSpkiDer) === 0 ? undefined : 'spki-mismatch';
}

function commonName(value: string): Name {
  return new Name([
    new RelativeDistinguishedName([
      new AttributeTypeAndValue({ type: '2.5.4.3', value: new AttributeValue({ utf8String: value }) }),
    ]),
  ]);
}

function toPem(der: Uint8Array): string {
  const lines =
    Buffer.from(der)
      .toString('base64')
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/**
 * A self-signed certificate for the device key, built synchronously (asn1 schemas + node:crypto sign) so that
 * `createProcess({ finished: 'issued' })` can stay synchronous. It stands for a certificate uploaded earlier.
 */
export function selfSignedDeviceCertificate(key: DeviceKey, cn: string): string {
  const isEc = key.type === 'ec-p256';
  const algorithm = isEc ? ecdsaWithSHA256 : sha256WithRSAEncryption;
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 1) & 0x7f) | 0x01; // positive and without a leading zero octet
  const now = Date.now();
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: new Uint8Array(serial).buffer,
    signature: algorithm,
    issuer: commonName(cn),
    validity: new Validity({ notBefore: new Date(now - 5 * 60_000), notAfter: new Date(now + 365 * DAY_MS) }),
    subject: commonName(cn),
    subjectPublicKeyInfo: AsnConvert.parse(key.spkiDer, SubjectPublicKeyInfo),
  });
  const tbsDer = AsnConvert.serialize(tbs);
  // ECDSA in X.509 is DER-encoded (node's default dsaEncoding); RSA is PKCS#1 v1.5 (node's default padding).
  const signature = sign('sha256', Buffer.from(tbsDer), key.privateKey satisfies KeyObject);
  const certificate = new Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: algorithm,
    signatureValue: new Uint8Array(signature).buffer,
  });
  return toPem(new Uint8Array(AsnConvert.serialize(certificate)));
}
