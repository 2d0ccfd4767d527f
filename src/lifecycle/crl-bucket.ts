/**
 * The Cloud Storage copy of a connection's CRL (`crl.bucket`, DESIGN.md §9): the replica that signed a CRL uploads
 * its DER, under the CRL lease, to `gs://<bucket>/<object>` with the official client and Application Default
 * Credentials. The store stays the source of truth: a failed upload loses nothing (the CRL is stored and served at
 * `/crl/<connection>.crl`); it is logged as a deployment fault naming the role to grant, the object is reported stale
 * at every check, and the upload is tried again at the next check interval.
 *
 * The Cloud Storage client (with its dependencies, several MB) is imported at the first upload: a deployment without
 * `crl.bucket` never loads it.
 */
import type { Storage, StorageOptions } from '@google-cloud/storage';
import { describeError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { StoredCrl } from '../store/inventory.ts';

/** Relying parties and CDNs may keep the object this long; a new CRL replaces it well before nextUpdate. */
export const CRL_OBJECT_CACHE_CONTROL = 'public, max-age=300';

export const CRL_CONTENT_TYPE = 'application/pkix-crl';

/** What the uploader needs of a CRL publication (src/lifecycle/crl.ts). */
export interface CrlObjectTarget {
  readonly connection: string;
  readonly settings: { readonly bucket?: string | undefined; readonly object?: string | undefined };
}

/** Where the CRL of `target` goes, or undefined without a bucket. */
export function crlObjectOf(target: CrlObjectTarget): { bucket: string; object: string } | undefined {
  const { bucket, object } = target.settings;
  return bucket === undefined ? undefined : { bucket, object: object ?? `${target.connection}.crl` };
}

/** HTTP statuses that mean the deployment, not the moment, is wrong: the bucket or the service account's role. */
const DEPLOYMENT_STATUSES = new Set([401, 403, 404]);

export class CrlBucketUploader {
  readonly #options: StorageOptions;
  #storage: Promise<Storage> | undefined;
  readonly #log: Logger;
  /** connection → the number of the stored CRL whose upload failed (the object holds an older one). */
  readonly #stale = new Map<string, number>();

  /** `options` are for tests (`apiEndpoint`, `authClient`); production uses Application Default Credentials. */
  constructor(log: Logger, options: StorageOptions = {}) {
    this.#log = log;
    this.#options = options;
  }

  /** The client, made at the first upload. */
  #client(): Promise<Storage> {
    this.#storage ??= import('@google-cloud/storage').then(({ Storage }) => new Storage(this.#options));
    return this.#storage;
  }

  /** The connection's object holds an older CRL than the store since an upload failed. */
  isStale(connection: string): boolean {
    return this.#stale.has(connection);
  }

  /** Uploads `crl` when `target` has a bucket. Never throws: a failure is logged and the object marked stale. */
  async upload(crl: StoredCrl, target: CrlObjectTarget, signal: AbortSignal): Promise<boolean> {
    const where = crlObjectOf(target);
    if (where === undefined) return true;
    const fields = {
      caConnection: target.connection,
      crlNumber: crl.crlNumber,
      bucket: where.bucket,
      object: where.object,
    };
    try {
      signal.throwIfAborted();
      const storage = await this.#client();
      signal.throwIfAborted();
      await storage
        .bucket(where.bucket)
        .file(where.object)
        .save(Buffer.from(crl.der), {
          resumable: false,
          validation: 'md5',
          contentType: CRL_CONTENT_TYPE,
          metadata: { contentType: CRL_CONTENT_TYPE, cacheControl: CRL_OBJECT_CACHE_CONTROL },
        });
      if (this.#stale.delete(target.connection)) this.#log.info(fields, 'CRL object up to date again');
      else this.#log.info(fields, 'CRL uploaded to Cloud Storage');
      return true;
    } catch (error) {
      if (signal.aborted) return false;
      this.#stale.set(target.connection, crl.crlNumber);
      const status = (error as { code?: unknown }).code;
      const deployment = typeof status === 'number' && DEPLOYMENT_STATUSES.has(status);
      this.#log.error(
        {
          ...fields,
          errorClass: deployment ? 'deployment' : 'retryable',
          component: 'gcs',
          error: describeError(error),
          hint: `the bucket must exist and the adapter's service account needs roles/storage.objectCreator (or roles/storage.objectUser) on gs://${where.bucket}`,
        },
        'could not upload the CRL to Cloud Storage; the object is stale (the CRL is stored and served); trying again at the next check',
      );
      return false;
    }
  }
}

/** An uploader when one of `targets` has a bucket (no Google client is made otherwise). */
export function crlBucketUploaderFor(targets: readonly CrlObjectTarget[], log: Logger): CrlBucketUploader | undefined {
  return targets.some((t) => crlObjectOf(t) !== undefined) ? new CrlBucketUploader(log) : undefined;
}
