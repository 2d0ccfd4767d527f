/**
 * The `Retry-After` response header (RFC 9110 §10.2.3): either a number of seconds or an HTTP-date. Servers send it
 * with 429 and 503; DESIGN.md §5 makes it a lower bound for the next attempt.
 */

/**
 * Returns the delay the server asked for in milliseconds, or undefined when the header is absent or unreadable.
 * A date in the past gives 0. `now` is injectable for tests.
 */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+$/.test(text)) {
    const seconds = Number(text);
    return Number.isSafeInteger(seconds) ? seconds * 1000 : undefined;
  }
  // Date.parse alone is far too lenient ("1.5" and "-5" are dates to V8): require the shape of an HTTP-date, which
  // starts with a day name and carries hh:mm:ss. asctime has no zone but means GMT, as all three forms do.
  if (!/^(mon|tue|wed|thu|fri|sat|sun)/i.test(text) || !/\d{2}:\d{2}:\d{2}/.test(text)) return undefined;
  const at = Date.parse(/GMT$/i.test(text) ? text : `${text} GMT`);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
