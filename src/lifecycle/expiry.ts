/**
 * Expiry in metrics (docs/metrics.md): the issuing CA certificate's notAfter per self-run CA connection, and the
 * number of active inventory certificates expiring within 7 and 30 days per connection. Labels stay bounded: the
 * connection and a fixed `within`. Every replica exports them (the alert takes the min/max over replicas), refreshed
 * every {@link EXPIRY_DEFAULTS.refreshMs}: two counts per connection, each one index-served count in Firestore.
 */
import { describeError } from '../errors.ts';
import type { CaConnection } from '../ca/connection.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { ProcessStore } from '../store/types.ts';
import { DAY_MS } from '../time.ts';

export const EXPIRY_DEFAULTS = {
  refreshMs: 10 * 60_000,
  /** The `within` label values and their windows. */
  windows: { '7d': 7 * DAY_MS, '30d': 30 * DAY_MS },
} as const;

export interface ExpiryDependencies {
  readonly store: ProcessStore;
  readonly connections: readonly CaConnection[];
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly now: () => number;
  readonly signal: AbortSignal;
}

/** Sets the CA certificate expiry gauge of each connection that signs itself (its certificate is loaded once). */
export async function recordCaExpiry(deps: ExpiryDependencies): Promise<void> {
  for (const connection of deps.connections) {
    const issuer = connection.abilities.crlIssuer;
    if (issuer === undefined) continue;
    try {
      const ca = await issuer.crlIssuer(deps.signal);
      deps.metrics.caCertificateExpiry.set(
        { ca_connection: connection.name, backend: connection.type },
        Math.floor(ca.certificate.notAfter.getTime() / 1000),
      );
    } catch (error) {
      if (deps.signal.aborted) return;
      deps.log.warn(
        { caConnection: connection.name, error: describeError(error) },
        'could not read the CA certificate for its expiry gauge; trying again at the next refresh',
      );
    }
  }
}

/** Counts the active certificates of each connection expiring within each window. */
export async function recordExpiringCertificates(deps: ExpiryDependencies): Promise<void> {
  const now = deps.now();
  for (const connection of deps.connections) {
    for (const [within, windowMs] of Object.entries(EXPIRY_DEFAULTS.windows)) {
      const count = await deps.store.countCertificates({
        caConnection: connection.name,
        status: 'active',
        notAfterFrom: now,
        notAfterBefore: now + windowMs,
      });
      deps.metrics.certificatesExpiring.set({ ca_connection: connection.name, within }, count);
    }
  }
}

/** Refreshes both kinds of gauges now and every {@link EXPIRY_DEFAULTS.refreshMs} until stopped. */
export class ExpiryGauges {
  readonly #deps: ExpiryDependencies;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();

  constructor(deps: ExpiryDependencies) {
    this.#deps = deps;
  }

  start(): void {
    const tick = () => {
      this.#running = this.refresh().finally(() => {
        if (this.#deps.signal.aborted) return;
        this.#timer = setTimeout(tick, EXPIRY_DEFAULTS.refreshMs);
        this.#timer.unref();
      });
    };
    tick();
  }

  async refresh(): Promise<void> {
    await recordCaExpiry(this.#deps);
    try {
      await recordExpiringCertificates(this.#deps);
    } catch (error) {
      if (!this.#deps.signal.aborted) {
        this.#deps.log.warn({ error: describeError(error) }, 'could not count expiring certificates');
      }
    }
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#running.catch(() => undefined);
  }
}
