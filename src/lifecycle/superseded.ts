/**
 * Revoke-after-grace (a profile's `revokeSupersededAfter`, off by default): a certificate a renewal superseded is
 * revoked with reason `superseded` once the grace has passed, through its connection's revocation ability, and the
 * connections whose CRL lists it sign a new one. One replica at a time does it (named lease `revoke-superseded`);
 * `setRevocation` is final and idempotent, so a repeat after a lost lease changes nothing.
 */
import type { CaConnection } from '../ca/connection.ts';
import type { CompiledProfile } from '../config/load.ts';
import { describeError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { ProcessStore } from '../store/types.ts';
import { publishCrlsAfter, revokeCertificates, type RevocationReport } from './revoke.ts';
import type { CrlDependencies } from './crl.ts';

export const SUPERSEDED_DEFAULTS = {
  intervalMs: 10 * 60_000,
  leaseTtlMs: 5 * 60_000,
  /** Certificates revoked per profile and round; the rest wait for the next round. */
  batch: 500,
} as const;

export interface SupersededDependencies {
  readonly store: ProcessStore;
  readonly cas: ReadonlyMap<string, CaConnection>;
  readonly profiles: ReadonlyMap<string, CompiledProfile>;
  readonly owner: string;
  readonly log: Logger;
  readonly now: () => number;
  readonly signal: AbortSignal;
  /** The Cloud Storage copy of the CRLs signed after revocations (src/lifecycle/crl-bucket.ts). */
  readonly bucket?: CrlDependencies['bucket'];
}

/** One round: revokes every superseded certificate past its profile's grace. Returns the reports. */
export async function revokeSupersededOnce(deps: SupersededDependencies): Promise<RevocationReport[]> {
  const lease = 'revoke-superseded';
  if (!(await deps.store.tryNamedLease(lease, deps.owner, SUPERSEDED_DEFAULTS.leaseTtlMs))) return [];
  try {
    const reports: RevocationReport[] = [];
    for (const profile of deps.profiles.values()) {
      const grace = profile.revokeSupersededAfterMs;
      if (grace === undefined) continue;
      const now = deps.now();
      // Index-served (profile, status, notAfter); expired certificates need no revocation.
      const superseded = await deps.store.findCertificates({
        profile: profile.name,
        status: 'superseded',
        notAfterFrom: now,
      });
      const due = superseded
        .filter((c) => c.revocation === undefined && c.statusChangedAt + grace <= now)
        .slice(0, SUPERSEDED_DEFAULTS.batch);
      if (due.length === 0) continue;
      const ctx = { signal: deps.signal, log: deps.log };
      reports.push(
        ...(await revokeCertificates(
          { store: deps.store, cas: deps.cas, ctx, now: deps.now },
          due,
          'superseded',
          `superseded; revoked after the profile's grace period (${profile.name})`,
        )),
      );
    }
    const crls = await publishCrlsAfter(reports, deps.cas, deps);
    for (const crl of crls.filter((c) => c.error !== undefined)) {
      deps.log.warn(
        { caConnection: crl.caConnection, error: crl.error },
        'could not sign the CRL after revocations; the next CRL check signs one that lists them',
      );
    }
    const failed = reports.filter((r) => r.outcome !== 'listed' && r.outcome !== 'revoked');
    if (failed.length > 0) {
      deps.log.warn(
        { failed: failed.length, first: failed[0] },
        'some superseded certificates could not be revoked; trying again next round',
      );
    }
    return reports;
  } finally {
    await deps.store.releaseNamedLease(lease, deps.owner).catch(() => undefined);
  }
}

/** Runs {@link revokeSupersededOnce} every {@link SUPERSEDED_DEFAULTS.intervalMs} while any profile enables it. */
export class SupersededRevoker {
  readonly #deps: SupersededDependencies;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> = Promise.resolve();

  constructor(deps: SupersededDependencies) {
    this.#deps = deps;
  }

  start(): void {
    if (![...this.#deps.profiles.values()].some((p) => p.revokeSupersededAfterMs !== undefined)) return;
    const tick = () => {
      this.#running = revokeSupersededOnce(this.#deps)
        .catch((error: unknown) => {
          if (!this.#deps.signal.aborted) {
            this.#deps.log.warn({ error: describeError(error) }, 'revoking superseded certificates failed');
          }
        })
        .finally(() => {
          if (this.#deps.signal.aborted) return;
          this.#timer = setTimeout(tick, SUPERSEDED_DEFAULTS.intervalMs);
          this.#timer.unref();
        });
    };
    this.#timer = setTimeout(tick, 0);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#running;
  }
}
