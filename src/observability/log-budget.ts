/**
 * A fixed-window budget for log lines that an outside party can trigger at any rate (e.g. undecodable Pub/Sub
 * messages): the first `perWindow` lines of a window are written, the rest are only counted, and the next line
 * that is written reports how many were held back — so a flood costs a few lines a minute, and nothing is hidden.
 */
export interface LogBudgetOptions {
  /** Lines allowed per window. */
  readonly perWindow: number;
  /** Window length, milliseconds. */
  readonly windowMs: number;
  /** Clock (tests). Default `Date.now`. */
  readonly now?: () => number;
}

export class LogBudget {
  readonly #perWindow: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  #windowStart = Number.NEGATIVE_INFINITY;
  #used = 0;
  #suppressed = 0;

  constructor(options: LogBudgetOptions) {
    this.#perWindow = options.perWindow;
    this.#windowMs = options.windowMs;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Takes one line from the budget. Returns undefined when the line must not be written; otherwise the number
   * of lines held back since the last one written (include it in the line).
   */
  take(): { suppressed: number } | undefined {
    const now = this.#now();
    if (now - this.#windowStart >= this.#windowMs) {
      this.#windowStart = now;
      this.#used = 0;
    }
    if (this.#used >= this.#perWindow) {
      this.#suppressed += 1;
      return undefined;
    }
    this.#used += 1;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return { suppressed };
  }
}
