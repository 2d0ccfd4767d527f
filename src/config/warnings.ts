/**
 * Settings that are valid but unusual enough to say so: printed by `check-config` and logged at start by `run`.
 */
import { isLoopbackUrl } from '../http/url-safety.ts';
import { formatDuration } from './duration.ts';
import type { Config } from './load.ts';

function isGoogleApisHost(url: string): boolean {
  try {
    const host = new URL(url).hostname.toLowerCase();
    return host === 'googleapis.com' || host.endsWith('.googleapis.com');
  } catch {
    return false;
  }
}

export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (!isGoogleApisHost(config.chrome.endpoint) && !isLoopbackUrl(config.chrome.endpoint)) {
    warnings.push(
      `chrome.endpoint: ${config.chrome.endpoint} is not a googleapis.com host: the adapter sends its Google access token there; keep it only if you run a proxy you trust (the default is https://chromemanagement.googleapis.com)`,
    );
  }
  warnings.push(...signatureTimeoutWarnings(config));
  return warnings;
}

/** What a device is given to sign, at least, after the adapter could learn whether an unclear signData reached it. */
const SIGNING_ROOM_MS = 5 * 60_000;

/**
 * An unclear signData (timeout, reset, 5xx) is known not to have reached the device only 2 × requestTimeout later; the
 * device then gets a full signatureTimeout. But when it did reach the device late, the deadline counts from the send:
 * the device must still have time to sign once the adapter can know.
 */
function signatureTimeoutWarnings(config: Config): string[] {
  const { signatureTimeoutMs, requestTimeoutMs } = config.chrome;
  const recovery = 2 * requestTimeoutMs;
  if (signatureTimeoutMs >= recovery + SIGNING_ROOM_MS) return [];
  return [
    `chrome.signatureTimeout (${formatDuration(signatureTimeoutMs)}) leaves no room to recover from an unclear signData: ` +
      `it takes 2 × chrome.requestTimeout (${formatDuration(recovery)}) to know whether the device was asked, and the ` +
      `device needs time to sign after that; use at least ${formatDuration(recovery + SIGNING_ROOM_MS)} (default 24h)`,
  ];
}
