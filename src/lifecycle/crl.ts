/**
 * The CRLs of the self-run CA connections (DESIGN.md §9): a connection with a `crl` block (src/ca/crl-settings.ts)
 * gets a v2 CRL of its revoked, unexpired inventory certificates, signed with the CA key through its CrlIssuer
 * ability — the local key, or one remote sign call per CRL (Key Vault, Cloud KMS).
 *
 * One replica at a time signs: a named lease `crl:<connection>` in the store. The stored CRL's number only grows
 * (the store's putCrl is a compare-and-set on it), so a replica that lost its lease while signing cannot put an older
 * list back. Every replica serves the stored CRL at `/crl/<connection>.crl` (src/observability/server.ts).
 *
 * When a new CRL is signed: right after a revocation (`certprov revoke`, revoke-after-grace), when none exists yet,
 * once half of `validity` has passed since thisUpdate — relying parties never hold an expired CRL while one replica
 * runs — and when the store counted a revocation the current CRL does not list ({@link due}): a revocation whose own
 * signing failed (KMS or Key Vault down, the lease busy past its wait, the CLI killed after recording it) reaches the
 * CRL at the next check of a running replica, within `checkInterval`, not half a validity later.
 *
 * With `crl.bucket`, the replica that signed a CRL also uploads it to Cloud Storage under the same lease; a failed
 * upload is tried again at the next check (src/lifecycle/crl-bucket.ts).
 */
import { describeError } from '../errors.ts';
import type { CrlIssuer } from '../ca/types.ts';
import type { CrlSettings } from '../ca/crl-settings.ts';
import type { Logger } from '../observability/logger.ts';
import type { CrlBucketUploader } from './crl-bucket.ts';
import { buildCrl, type CrlEntry } from '../pki/crl.ts';
import type { StoredCrl } from '../store/inventory.ts';
import type { ProcessStore } from '../store/types.ts';

export const CRL_LEASE = {
  /** Long enough for one remote signature with its retries; a dead holder's lease frees up after it. */
  ttlMs: 120_000,
  /** How often, and how long, a forced publication waits for another replica's lease. */
  retryMs: 500,
  attempts: 20,
} as const;

/** A connection that publishes a CRL: its name, its CrlIssuer ability, its `crl` settings. */
export interface CrlPublication {
  readonly connection: string;
  readonly issuer: CrlIssuer;
  readonly settings: CrlSettings;
}

export interface CrlDependencies {
  readonly store: ProcessStore;
  /** Lease owner (the replica id, or the CLI's own). */
  readonly owner: string;
  readonly log: Logger;
  readonly now: () => number;
  readonly signal: AbortSignal;
  /** Uploads each new CRL, once stored, to the connection's `crl.bucket` (src/lifecycle/crl-bucket.ts). */
  readonly bucket?: Pick<CrlBucketUploader, 'upload' | 'isStale'>;
}

export type PublishOutcome =
  | { readonly status: 'published'; readonly crl: StoredCrl; readonly buildMs: number }
  | { readonly status: 'not_due' }
  /** Another replica holds the lease (it is signing now). */
  | { readonly status: 'busy' }
  /** Another replica stored a newer CRL while this one signed. */
  | { readonly status: 'superseded' };

/** The connections of `connections` that publish a CRL. */
export function crlPublications(
  connections: Iterable<{ readonly name: string; readonly abilities: { readonly crlIssuer?: CrlIssuer } }>,
): CrlPublication[] {
  const out: CrlPublication[] = [];
  for (const { name, abilities } of connections) {
    const settings = abilities.crlIssuer?.crlSettings();
    if (abilities.crlIssuer !== undefined && settings !== undefined) {
      out.push({ connection: name, issuer: abilities.crlIssuer, settings });
    }
  }
  return out;
}

/**
 * Whether a new CRL is due — the one rule of every caller: none stored yet, half its validity passed, or a revocation
 * recorded after its entries were read (the store's revocation count is above the count the CRL was read at; the
 * count rises in the same write as the certificate's status, so it cannot miss one, and it does not rise with
 * nothing new, so a check with nothing new signs nothing).
 */
export function due(
  current: StoredCrl | undefined,
  revocations: number,
  settings: Pick<CrlSettings, 'validity'>,
  now: number,
): boolean {
  return (
    current === undefined ||
    now >= current.thisUpdate + settings.validity / 2 ||
    revocations > current.revocationsListed
  );
}

/** {@link due} on what the store holds now: the stored CRL and the connection's revocation count. */
async function dueNow(store: ProcessStore, publication: CrlPublication, now: () => number): Promise<boolean> {
  const [current, revocations] = await Promise.all([
    store.getCrl(publication.connection),
    store.revocationCount(publication.connection),
  ]);
  return due(current, revocations, publication.settings, now());
}

/** The CRL entries of a connection: its revoked certificates that have not expired (RFC 5280 §3.3 lets them go). */
async function revokedEntries(store: ProcessStore, connection: string, now: number): Promise<CrlEntry[]> {
  const revoked = await store.findCertificates({ caConnection: connection, status: 'revoked', notAfterFrom: now });
  return revoked.map((r) => ({
    serialHex: r.serial,
    revokedAt: new Date(r.revocation?.at ?? r.statusChangedAt),
    reason: r.revocation?.reason ?? 'unspecified',
  }));
}

/**
 * Signs and stores a new CRL for `publication` when it is due, or always with `force` (after a revocation).
 * Takes the connection's CRL lease first; answers `busy` when another replica holds it.
 */
export async function publishCrl(
  deps: CrlDependencies,
  publication: CrlPublication,
  options: { force?: boolean } = {},
): Promise<PublishOutcome> {
  const { store, owner, signal } = deps;
  const { connection, settings } = publication;
  if (!options.force && !(await dueNow(store, publication, deps.now))) return { status: 'not_due' };
  const lease = `crl:${connection}`;
  if (!(await store.tryNamedLease(lease, owner, CRL_LEASE.ttlMs))) return { status: 'busy' };
  try {
    const started = performance.now();
    // The count before the entries: a revocation the entries miss was recorded after it, so it raises the count.
    const [current, revocationsListed] = await Promise.all([
      store.getCrl(connection),
      store.revocationCount(connection),
    ]);
    const now = deps.now();
    if (!options.force && !due(current, revocationsListed, settings, now)) return { status: 'not_due' };
    const entries = await revokedEntries(store, connection, now);
    const ca = await publication.issuer.crlIssuer(signal);
    const thisUpdate = Math.floor(now / 1000) * 1000;
    const crlNumber = (current?.crlNumber ?? 0) + 1;
    const der = await buildCrl({
      issuer: ca.certificate,
      signer: ca.signer,
      crlNumber,
      thisUpdate: new Date(thisUpdate),
      nextUpdate: new Date(thisUpdate + settings.validity),
      entries,
      signal,
    });
    const crl: StoredCrl = {
      caConnection: connection,
      crlNumber,
      thisUpdate,
      nextUpdate: thisUpdate + settings.validity,
      entries: entries.length,
      der,
      revocationsListed,
    };
    if (!(await store.putCrl(crl))) return { status: 'superseded' };
    const buildMs = performance.now() - started;
    deps.log.info(
      {
        caConnection: connection,
        crlNumber,
        entries: entries.length,
        bytes: der.length,
        nextUpdate: new Date(crl.nextUpdate).toISOString(),
        ms: Math.round(buildMs),
      },
      'CRL signed',
    );
    await deps.bucket?.upload(crl, publication, signal);
    return { status: 'published', crl, buildMs };
  } finally {
    await store.releaseNamedLease(lease, owner).catch(() => undefined);
  }
}

/**
 * Uploads the stored CRL again after a failed upload (the object is stale), under the connection's CRL lease so that
 * it cannot overwrite a newer CRL another replica uploads meanwhile. Answers whether it uploaded.
 */
export async function retryCrlUpload(deps: CrlDependencies, publication: CrlPublication): Promise<boolean> {
  const { store, owner } = deps;
  const lease = `crl:${publication.connection}`;
  if (deps.bucket === undefined || !(await store.tryNamedLease(lease, owner, CRL_LEASE.ttlMs))) return false;
  try {
    const current = await store.getCrl(publication.connection);
    return current !== undefined && (await deps.bucket.upload(current, publication, deps.signal));
  } finally {
    await store.releaseNamedLease(lease, owner).catch(() => undefined);
  }
}

/**
 * Publishes now (after a revocation), waiting for another replica's lease to end: the replica that held it may have
 * read the revocations before this one was recorded, so its CRL is not enough.
 */
export async function publishCrlNow(deps: CrlDependencies, publication: CrlPublication): Promise<PublishOutcome> {
  for (let attempt = 1; ; attempt += 1) {
    const outcome = await publishCrl(deps, publication, { force: true });
    if (outcome.status !== 'busy' || attempt >= CRL_LEASE.attempts) return outcome;
    await new Promise((resolve) => setTimeout(resolve, CRL_LEASE.retryMs));
    deps.signal.throwIfAborted();
  }
}

/**
 * The background side in `run`: every `checkInterval`, each publishing connection is looked at (the stored CRL and
 * the revocation count) and a new CRL signed when {@link due}. Failures are logged, one line per check, and tried again
 * at the next check — so is a revocation whose signing right after it failed.
 */
export class CrlPublisher {
  readonly #deps: CrlDependencies;
  readonly #publications: readonly CrlPublication[];
  readonly #timers = new Set<NodeJS.Timeout>();
  #stopped = false;
  #running: Promise<unknown> = Promise.resolve();

  constructor(deps: CrlDependencies, publications: readonly CrlPublication[]) {
    this.#deps = deps;
    this.#publications = publications;
  }

  start(): void {
    for (const publication of this.#publications) this.#schedule(publication, 0);
  }

  #schedule(publication: CrlPublication, delayMs: number): void {
    if (this.#stopped) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#running = this.#check(publication).finally(() =>
        this.#schedule(publication, publication.settings.checkInterval),
      );
    }, delayMs);
    timer.unref();
    this.#timers.add(timer);
  }

  async #check(publication: CrlPublication): Promise<void> {
    try {
      const outcome = await publishCrl(this.#deps, publication);
      if (outcome.status !== 'published' && this.#deps.bucket?.isStale(publication.connection) === true) {
        await retryCrlUpload(this.#deps, publication);
      }
    } catch (error) {
      if (this.#deps.signal.aborted) return;
      this.#deps.log.warn(
        { caConnection: publication.connection, error: describeError(error) },
        'could not sign the CRL; trying again at the next check',
      );
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    await this.#running.catch(() => undefined);
  }
}

/**
 * The stored CRLs as the HTTP server hands them out: read from the store at most every `ttlMs` per connection, so a
 * burst of relying parties costs one store read.
 */
export class CrlCache {
  readonly #store: ProcessStore;
  readonly #served: ReadonlySet<string>;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #cached = new Map<string, { at: number; crl: Promise<StoredCrl | undefined> }>();

  constructor(store: ProcessStore, served: Iterable<string>, options: { ttlMs?: number; now?: () => number } = {}) {
    this.#store = store;
    this.#served = new Set(served);
    this.#ttlMs = options.ttlMs ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** The connection's current CRL; undefined for a connection that publishes none (or none yet). */
  get(connection: string): Promise<StoredCrl | undefined> {
    if (!this.#served.has(connection)) return Promise.resolve(undefined);
    const now = this.#now();
    const hit = this.#cached.get(connection);
    if (hit !== undefined && now - hit.at < this.#ttlMs) return hit.crl;
    const crl = this.#store.getCrl(connection);
    this.#cached.set(connection, { at: now, crl });
    crl.catch(() => this.#cached.delete(connection));
    return crl;
  }
}
