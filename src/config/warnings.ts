/**
 * Settings that are valid but unusual enough to say so: printed by `check-config` and logged at start by `run`.
 */
import { isLoopbackUrl } from '../http/url-safety.ts';
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
  return warnings;
}
