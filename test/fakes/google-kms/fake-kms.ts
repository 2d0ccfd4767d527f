/**
 * A loopback fake of Cloud KMS (v1 REST, as `@google-cloud/kms` sends it on its REST transport), faithful to what
 * the adapter uses and to how the real service refuses:
 *
 * - `GET /v1/{cryptoKeyVersion}/publicKey` → `{pem, pemCrc32c, algorithm, protectionLevel, name}`;
 * - `POST /v1/{cryptoKeyVersion}:asymmetricSign` `{digest: {sha256|sha384|sha512}, digestCrc32c}` → signs the
 *   digest (never hashing again) with a real key of the version's algorithm — ECDSA answers are DER, as KMS's are —
 *   and answers `{signature, signatureCrc32c, verifiedDigestCrc32c: true, name, protectionLevel}`;
 * - refusals: unknown version 404 NOT_FOUND, a version not ENABLED 400 FAILED_PRECONDITION, a digest of the wrong
 *   hash or length 400 INVALID_ARGUMENT, a digestCrc32c that does not match 400 INVALID_ARGUMENT, a caller without
 *   the sign permission 403 PERMISSION_DENIED.
 * - faults for the integrity checks: a corrupted signature checksum, `verifiedDigestCrc32c: false`.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { crc32c } from '../../../src/ca/google-kms/crc32c.ts';
import { ecdsaRawToDer } from '../../../src/pki/proof-of-possession.ts';
import { signDigest, type DigestAlgorithm } from '../key-vault/digest-signing.ts';
import { GoogleApiError, GoogleRestServer, type GoogleRestRequest } from '../google/google-rest.ts';

/** CryptoKeyVersionAlgorithm numbers (google/cloud/kms/v1/resources.proto) of the signing algorithms we fake. */
const ALGORITHMS: Readonly<Record<string, { number: number; sign: DigestAlgorithm; digest: string }>> = {
  EC_SIGN_P256_SHA256: { number: 12, sign: 'ES256', digest: 'sha256' },
  EC_SIGN_P384_SHA384: { number: 13, sign: 'ES384', digest: 'sha384' },
  RSA_SIGN_PKCS1_2048_SHA256: { number: 5, sign: 'RS256', digest: 'sha256' },
  RSA_SIGN_PKCS1_3072_SHA256: { number: 6, sign: 'RS256', digest: 'sha256' },
  RSA_SIGN_PSS_2048_SHA256: { number: 2, sign: 'PS256', digest: 'sha256' },
  RSA_SIGN_PKCS1_4096_SHA512: { number: 16, sign: 'RS512', digest: 'sha512' },
  // Not usable for certificates; here so the adapter's refusal can be tested.
  EC_SIGN_SECP256K1_SHA256: { number: 31, sign: 'ES256', digest: 'sha256' },
};
const PROTECTION_LEVELS: Readonly<Record<string, number>> = { SOFTWARE: 1, HSM: 2 };
const DIGEST_BYTES: Readonly<Record<string, number>> = { sha256: 32, sha384: 48, sha512: 64 };

export type KmsAlgorithm = keyof typeof ALGORITHMS;

interface FakeKeyVersion {
  readonly name: string;
  readonly algorithm: string;
  readonly protectionLevel: string;
  readonly privateKey: KeyObject;
  state: 'ENABLED' | 'DISABLED' | 'DESTROYED';
}

export interface FakeKmsOptions {
  /** Supplies RSA keys (generating RSA is slow; tests pass the pool's). Default: generate. */
  readonly rsaKey?: (bits: number) => KeyObject;
}

export interface CreateKeyOptions {
  readonly algorithm?: KmsAlgorithm;
  readonly protectionLevel?: 'SOFTWARE' | 'HSM';
  /** Default `projects/certprov-test/locations/europe-west1/keyRings/ca/cryptoKeys/issuing-ca`. */
  readonly cryptoKey?: string;
}

export class FakeKms {
  readonly #server: GoogleRestServer;
  readonly #versions = new Map<string, FakeKeyVersion>();
  readonly #options: FakeKmsOptions;
  /** Tokens allowed to sign; empty = every token. */
  readonly signers = new Set<string>();
  #signCalls = 0;
  #tamper: 'signatureCrc32c' | 'verifiedDigest' | 'name' | undefined;

  private constructor(server: GoogleRestServer, options: FakeKmsOptions) {
    this.#server = server;
    this.#options = options;
  }

  static async start(options: FakeKmsOptions = {}): Promise<FakeKms> {
    const holder: { fake?: FakeKms } = {};
    const server = await GoogleRestServer.start((request) => holder.fake!.handle(request));
    holder.fake = new FakeKms(server, options);
    return holder.fake;
  }

  get url(): string {
    return this.#server.url;
  }

  get server(): GoogleRestServer {
    return this.#server;
  }

  /** AsymmetricSign requests received (refused ones included). */
  get signCalls(): number {
    return this.#signCalls;
  }

  /** Creates the next version of a crypto key with a fresh key of `algorithm`; returns its resource name. */
  createKeyVersion(options: CreateKeyOptions = {}): string {
    const algorithm = options.algorithm ?? 'EC_SIGN_P256_SHA256';
    const cryptoKey =
      options.cryptoKey ?? 'projects/certprov-test/locations/europe-west1/keyRings/ca/cryptoKeys/issuing-ca';
    const existing = [...this.#versions.keys()].filter((n) => n.startsWith(`${cryptoKey}/cryptoKeyVersions/`));
    const name = `${cryptoKey}/cryptoKeyVersions/${existing.length + 1}`;
    this.#versions.set(name, {
      name,
      algorithm,
      protectionLevel: options.protectionLevel ?? 'HSM',
      privateKey: this.#keyFor(algorithm),
      state: 'ENABLED',
    });
    return name;
  }

  #keyFor(algorithm: string): KeyObject {
    if (algorithm.startsWith('EC_')) {
      const namedCurve = algorithm.includes('P384') ? 'P-384' : algorithm.includes('SECP256K1') ? 'secp256k1' : 'P-256';
      return generateKeyPairSync('ec', { namedCurve }).privateKey;
    }
    const bits = Number(/_(\d{4})_/.exec(algorithm)?.[1] ?? 2048);
    return this.#options.rsaKey?.(bits) ?? generateKeyPairSync('rsa', { modulusLength: bits }).privateKey;
  }

  /** The public key (PEM) of a version, as GetPublicKey returns it. */
  publicKeyPem(name: string): string {
    const version = this.#versions.get(name);
    if (version === undefined) throw new Error(`no key version ${name}`);
    return createPublicKey(version.privateKey).export({ type: 'spki', format: 'pem' }) as string;
  }

  /** The private key (tests that play the parent CA need none; the fixture uses it to check nothing leaks). */
  privateKeyOf(name: string): KeyObject | undefined {
    return this.#versions.get(name)?.privateKey;
  }

  setState(name: string, state: FakeKeyVersion['state']): void {
    const version = this.#versions.get(name);
    if (version === undefined) throw new Error(`no key version ${name}`);
    version.state = state;
  }

  /** The next AsymmetricSign answer is corrupted in one integrity field. */
  tamperNext(field: 'signatureCrc32c' | 'verifiedDigest' | 'name'): void {
    this.#tamper = field;
  }

  async close(): Promise<void> {
    await this.#server.close();
  }

  #enum(request: GoogleRestRequest, table: Readonly<Record<string, number>>, name: string): string | number {
    return request.numericEnums ? (table[name] ?? 0) : name;
  }

  #version(name: string): FakeKeyVersion {
    const version = this.#versions.get(name);
    if (version === undefined) throw new GoogleApiError('NOT_FOUND', `CryptoKeyVersion ${name} not found.`);
    return version;
  }

  handle(request: GoogleRestRequest): unknown {
    const algorithmNumbers = Object.fromEntries(Object.entries(ALGORITHMS).map(([k, v]) => [k, v.number]));
    const publicKey = /^\/v1\/(.+\/cryptoKeyVersions\/[^/:]+)\/publicKey$/.exec(request.path);
    if (request.method === 'GET' && publicKey !== null) {
      const version = this.#version(publicKey[1]!);
      if (version.state !== 'ENABLED') {
        throw new GoogleApiError(
          'FAILED_PRECONDITION',
          `${version.name} is not enabled, current state is: ${version.state}.`,
        );
      }
      const pem = this.publicKeyPem(version.name);
      return {
        pem,
        algorithm: this.#enum(request, algorithmNumbers, version.algorithm),
        pemCrc32c: String(crc32c(Buffer.from(pem, 'utf8'))),
        name: version.name,
        protectionLevel: this.#enum(request, PROTECTION_LEVELS, version.protectionLevel),
      };
    }
    const sign = /^\/v1\/(.+\/cryptoKeyVersions\/[^/:]+):asymmetricSign$/.exec(request.path);
    if (request.method === 'POST' && sign !== null) {
      this.#signCalls += 1;
      const version = this.#version(sign[1]!);
      if (this.signers.size > 0 && !this.signers.has(request.token)) {
        throw new GoogleApiError(
          'PERMISSION_DENIED',
          `Permission 'cloudkms.cryptoKeyVersions.useToSign' denied on resource '${version.name}' (or it may not exist).`,
        );
      }
      if (version.state !== 'ENABLED') {
        throw new GoogleApiError(
          'FAILED_PRECONDITION',
          `${version.name} is not enabled, current state is: ${version.state}.`,
        );
      }
      const spec = ALGORITHMS[version.algorithm]!;
      const digestField = (request.body.digest ?? {}) as Record<string, unknown>;
      const kinds = Object.keys(digestField);
      if (kinds.length !== 1 || kinds[0] !== spec.digest) {
        throw new GoogleApiError(
          'INVALID_ARGUMENT',
          `The request digest type (${kinds.join(',') || 'none'}) does not match the key algorithm ${version.algorithm}.`,
        );
      }
      const digest = Buffer.from(String(digestField[spec.digest]), 'base64');
      if (digest.length !== DIGEST_BYTES[spec.digest]) {
        throw new GoogleApiError('INVALID_ARGUMENT', `Digest length ${digest.length} is invalid for ${spec.digest}.`);
      }
      const sentCrc = request.body.digestCrc32c;
      if (sentCrc !== undefined && Number(sentCrc) !== crc32c(digest)) {
        throw new GoogleApiError(
          'INVALID_ARGUMENT',
          'The checksum in field digest_crc32c did not match the data in field digest.',
        );
      }
      let signature: Uint8Array = new Uint8Array(signDigest(spec.sign, version.privateKey, digest));
      if (spec.sign.startsWith('ES')) signature = ecdsaRawToDer(signature);
      const tamper = this.#tamper;
      this.#tamper = undefined;
      return {
        signature: Buffer.from(signature).toString('base64'),
        signatureCrc32c: String((crc32c(signature) + (tamper === 'signatureCrc32c' ? 1 : 0)) >>> 0),
        verifiedDigestCrc32c: sentCrc !== undefined && tamper !== 'verifiedDigest',
        name: tamper === 'name' ? `${version.name}0` : version.name,
        protectionLevel: this.#enum(request, PROTECTION_LEVELS, version.protectionLevel),
      };
    }
    throw new GoogleApiError('NOT_FOUND', `no route for ${request.method} ${request.path}`);
  }
}
