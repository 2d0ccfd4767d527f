/**
 * The narrow slice of Cloud KMS this backend uses, over the official client `@google-cloud/kms` on its REST
 * transport (src/ca/google-cloud.ts): read a key version's public key, sign a digest. The SDK is imported
 * when a connection is created, so deployments without a KMS connection never load it.
 *
 * Integrity (cloud.google.com/kms/docs/data-integrity-guidelines): every request that carries bytes carries their
 * CRC32C, and every answer's checksum is verified here before anything uses the bytes — `verifiedDigestCrc32c`
 * must be true (KMS saw the digest we sent), the signature's CRC32C must match `signatureCrc32c`, the name must be
 * the key version asked for, and the public key PEM must match `pemCrc32c`. A mismatch is corruption in transit:
 * retryable (signing again is safe, DESIGN.md §5).
 */
import { RetryableError } from '../../errors.ts';
import { abortable, googleClientOptions, type GoogleAuthLike } from '../google-cloud.ts';
import { crc32c } from './crc32c.ts';

export type KmsDigest =
  { readonly sha256: Uint8Array } | { readonly sha384: Uint8Array } | { readonly sha512: Uint8Array };

export interface KmsPublicKey {
  readonly pem: string;
  /** CryptoKeyVersionAlgorithm, e.g. `EC_SIGN_P256_SHA256`. */
  readonly algorithm: string;
  /** `SOFTWARE`, `HSM`, `EXTERNAL`, … */
  readonly protectionLevel: string;
}

/** What this backend asks of Cloud KMS. */
export interface KmsClient {
  getPublicKey(name: string, signal: AbortSignal): Promise<KmsPublicKey>;
  /** One `AsymmetricSign` of a precomputed digest; the integrity fields are checked both ways. */
  asymmetricSign(name: string, digest: KmsDigest, signal: AbortSignal): Promise<Uint8Array>;
  close(): Promise<void>;
}

export interface KmsClientOptions {
  /** Endpoint origin; default Google's. */
  readonly endpoint?: string;
  /** Credentials; default Application Default Credentials. */
  readonly auth?: GoogleAuthLike;
  /** Per-call deadline (ms). */
  readonly timeoutMs: number;
}

/** A checksum in an answer did not match: the bytes were corrupted between KMS and us. */
export class KmsIntegrityError extends RetryableError {}

/** `Int64Value` as the client hands it back (a string on REST, a number or Long on gRPC). */
function int64(value: { value?: unknown } | null | undefined): number | undefined {
  const raw = value?.value;
  if (raw === undefined || raw === null) return undefined;
  // A Long (gRPC transport) converts through its own toString().
  const n = Number(typeof raw === 'object' ? (raw as { toString(): string }).toString() : raw);
  return Number.isFinite(n) ? n : undefined;
}

function bytesOf(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return new Uint8Array(Buffer.from(value, 'base64'));
  return new Uint8Array(0);
}

/** Connects the official client (no request is sent yet). */
export async function createKmsClient(options: KmsClientOptions): Promise<KmsClient> {
  const { KeyManagementServiceClient } = await import('@google-cloud/kms');
  const client = new KeyManagementServiceClient(
    // The auth client type is the SDK's own copy of google-auth-library's; ours is structurally the same.
    googleClientOptions(options.endpoint, options.auth) as ConstructorParameters<typeof KeyManagementServiceClient>[0],
  );
  // Both calls are safe to repeat; gax retries UNAVAILABLE and DEADLINE_EXCEEDED at most twice (its default would
  // keep trying for 10 minutes), then the workflow's own backoff takes over.
  const callOptions = { timeout: options.timeoutMs, maxRetries: 2 };
  return {
    async getPublicKey(name, signal) {
      const [key] = await abortable(client.getPublicKey({ name }, callOptions), signal);
      const pem = key.pem ?? '';
      const expected = int64(key.pemCrc32c);
      if (expected !== undefined && crc32c(Buffer.from(pem, 'utf8')) !== expected) {
        throw new KmsIntegrityError(`Cloud KMS GetPublicKey of ${name}: the PEM does not match its pemCrc32c`);
      }
      return {
        pem,
        algorithm: String(key.algorithm ?? ''),
        protectionLevel: String(key.protectionLevel ?? ''),
      };
    },
    async asymmetricSign(name, digest, signal) {
      const digestBytes = Object.values(digest)[0] as Uint8Array;
      const [response] = await abortable(
        client.asymmetricSign(
          { name, digest: { ...digest }, digestCrc32c: { value: crc32c(digestBytes) } },
          callOptions,
        ),
        signal,
      );
      const signature = bytesOf(response.signature);
      if (response.verifiedDigestCrc32c !== true) {
        throw new KmsIntegrityError(`Cloud KMS AsymmetricSign on ${name}: the digest was not verified by its CRC32C`);
      }
      if (response.name !== name) {
        throw new KmsIntegrityError(`Cloud KMS AsymmetricSign on ${name}: the answer names ${String(response.name)}`);
      }
      if (int64(response.signatureCrc32c) !== crc32c(signature)) {
        throw new KmsIntegrityError(`Cloud KMS AsymmetricSign on ${name}: the signature does not match its CRC32C`);
      }
      return signature;
    },
    close: () => client.close(),
  };
}
