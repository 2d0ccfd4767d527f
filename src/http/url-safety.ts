/**
 * Where credentials may travel: over https, or over plain http to this machine only (the sandbox and the loopback
 * test fakes). A bearer token or API key sent over http to any other host is readable on the way.
 */

/** True for `localhost`, `127.x.x.x` and `[::1]` URLs. */
export function isLoopbackUrl(url: string): boolean {
  try {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}

/** True when a request to `url` would carry credentials in clear: http (or another non-TLS scheme) off loopback. */
export function sendsCredentialsInClear(url: string): boolean {
  try {
    return new URL(url).protocol !== 'https:' && !isLoopbackUrl(url);
  } catch {
    return false;
  }
}

/** The message for {@link sendsCredentialsInClear}, completing "<field>: …". */
export const CLEAR_TEXT_PROBLEM =
  'credentials would travel in clear: write an https:// URL (http:// is accepted for loopback test endpoints only)';
