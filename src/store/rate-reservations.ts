/**
 * A rate budget shared by every replica (e.g. DigiCert: 100 requests per 5 s and 1,000 per 3 min per API key),
 * kept in ONE shared document per bucket — which sustains only about one write per second (Firestore's guidance for
 * a single document). Writing once per token would cap the whole fleet near 1 request/s and make every request wait
 * for a contended transaction, so tokens are handed out in batches:
 *
 * - A replica reserves a batch of `n` tokens in one compare-and-set write. The reservation is recorded as
 *   (`from` = now, `until` = now + holdMs, `count` = n): the replica may use those tokens at any moment in
 *   [from, until] and never after (unused ones are dropped, not returned).
 * - Because a reserved token may be used anywhere in its interval, a reservation counts against every window that
 *   could contain a point of that interval. A new reservation made at `now` for window W is allowed when
 *   n + Σ{count of reservations with until > now − W} ≤ limit. This keeps every sliding window of every replica's
 *   actual use within the limit: for any window [a, a+W), take the latest reservation R* that intersects it; the
 *   window contains a point t ≥ R*.from, so a > R*.from − W, and every other reservation intersecting the window has
 *   until ≥ a > R*.from − W — it was counted when R* was granted. (Clocks of replicas only need to agree within the
 *   safety margin; a reservation's own interval is judged on the clock that made it.)
 * - The price is some slack: a batch occupies W + holdMs instead of W, and unused tokens are lost until their
 *   interval ages out. Batches therefore adapt to demand: a replica asks for twice its last batch when it used it
 *   up before `until`, and for what it actually used otherwise (at least 1, at most a quarter of the smallest limit,
 *   so one replica cannot take the whole window).
 * - Writes: at most one per replica per `holdMs` while that replica's demand is steady, one per batch when it grows.
 */
import type { RateWindow } from './types.ts';

export interface Reservation {
  /** Epoch ms when the reservation was made (first moment its tokens may be used). */
  readonly from: number;
  /** Epoch ms after which its tokens may no longer be used. */
  readonly until: number;
  readonly count: number;
}

export interface ReserveDecision {
  /** Tokens granted (0 when the budget has no room). */
  readonly granted: number;
  /** When nothing was granted: ms until at least one token fits. */
  readonly waitMs: number;
  /** The reservation list to store (pruned, with the new reservation when granted). */
  readonly entries: readonly Reservation[];
}

/** Decides one batch reservation against the stored reservations of a bucket; see the module comment. */
export function decideReservation(
  stored: readonly Reservation[],
  windows: readonly RateWindow[],
  now: number,
  want: number,
  holdMs: number,
): ReserveDecision {
  const longest = Math.max(...windows.map((w) => w.windowMs));
  const entries = stored.filter((r) => r.until > now - longest);
  let room = Number.POSITIVE_INFINITY;
  let waitMs = 0;
  for (const window of windows) {
    const counted = entries.filter((r) => r.until > now - window.windowMs).sort((a, b) => a.until - b.until);
    const used = counted.reduce((sum, r) => sum + r.count, 0);
    const free = window.limit - used;
    room = Math.min(room, free);
    if (free <= 0) {
      // Reservations stop counting at until + W; find the moment enough of them have aged out for one token.
      let freed = 0;
      for (const r of counted) {
        freed += r.count;
        if (freed >= 1 - free) {
          waitMs = Math.max(waitMs, r.until + window.windowMs - now + 1);
          break;
        }
      }
    }
  }
  const granted = Math.max(0, Math.min(want, room));
  if (granted === 0) return { granted: 0, waitMs: Math.max(1, waitMs), entries };
  return { granted, waitMs: 0, entries: [...entries, { from: now, until: now + holdMs, count: granted }] };
}

/** The largest batch one replica asks for: a quarter of the smallest limit, at least 1. */
export function maxBatch(windows: readonly RateWindow[]): number {
  return Math.max(1, Math.floor(Math.min(...windows.map((w) => w.limit)) / 4));
}

/** Where reservations are stored: one atomic read-modify-write of a bucket's list. */
export interface ReservationLedger {
  /**
   * Reads the bucket's reservations, calls `decide`, and stores the entries it returns — atomically with respect
   * to every other replica (compare-and-set). Returns the decision that was stored.
   */
  reserve(
    bucket: string,
    decide: (stored: readonly Reservation[], now: number) => ReserveDecision,
  ): Promise<ReserveDecision>;
}

interface LocalBatch {
  /** Tokens of the current reservation not yet handed out. */
  remaining: number;
  /** Last moment the current reservation's tokens may be used. */
  until: number;
  /** Size of the current reservation. */
  size: number;
  /** Tokens of the current reservation handed out. */
  used: number;
  /** Size asked for next time. */
  want: number;
  /** The reservation in flight, shared by every caller waiting for it. */
  pending: Promise<ReserveDecision> | undefined;
}

/** Hands out tokens from locally held batches; reserves a new batch through the ledger when the current one is gone. */
export class BatchedRateBudget {
  private readonly ledger: ReservationLedger;
  private readonly holdMs: number;
  private readonly now: () => number;
  private readonly batches = new Map<string, LocalBatch>();

  /** `holdMs`: how long a reserved batch may be used (the slack every window pays). */
  constructor(ledger: ReservationLedger, holdMs: number, now: () => number) {
    this.ledger = ledger;
    this.holdMs = holdMs;
    this.now = now;
  }

  /** Same contract as CoordinationStore.takeToken: 0 when granted, else ms to wait (nothing taken). */
  async take(bucket: string, windows: readonly RateWindow[]): Promise<number> {
    let batch = this.batches.get(bucket);
    if (batch === undefined) {
      batch = { remaining: 0, until: 0, size: 0, used: 0, want: 1, pending: undefined };
      this.batches.set(bucket, batch);
    }
    // A few rounds: callers that waited for a reservation compete for its tokens; the losers trigger the next one.
    for (let round = 0; round < 4; round += 1) {
      if (this.takeLocal(batch)) return 0;
      if (batch.pending === undefined) {
        this.retire(batch, windows);
        const want = batch.want;
        batch.pending = this.ledger
          .reserve(bucket, (stored, now) => decideReservation(stored, windows, now, want, this.holdMs))
          .then((decision) => {
            if (decision.granted > 0) {
              const last = decision.entries[decision.entries.length - 1];
              batch.remaining = decision.granted;
              batch.size = decision.granted;
              batch.used = 0;
              batch.until = last?.until ?? this.now() + this.holdMs;
            }
            return decision;
          })
          .finally(() => {
            batch.pending = undefined;
          });
      }
      const decision = await batch.pending;
      if (decision.granted === 0) return decision.waitMs;
    }
    return this.takeLocal(batch) ? 0 : 1;
  }

  private takeLocal(batch: LocalBatch): boolean {
    if (batch.remaining > 0 && this.now() <= batch.until) {
      batch.remaining -= 1;
      batch.used += 1;
      return true;
    }
    return false;
  }

  /** The current batch is used up or expired: size the next one from how it went. */
  private retire(batch: LocalBatch, windows: readonly RateWindow[]): void {
    if (batch.size > 0) {
      const exhausted = batch.remaining === 0 && batch.used === batch.size;
      batch.want = exhausted ? Math.min(maxBatch(windows), batch.size * 2) : Math.max(1, batch.used);
    }
    batch.remaining = 0;
    batch.size = 0;
    batch.used = 0;
  }
}
