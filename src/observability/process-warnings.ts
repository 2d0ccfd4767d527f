/**
 * Process warnings (`process.emitWarning`) from client libraries: Node prints them as plain text on stderr, which
 * on GKE lands in the same stream as the JSON log lines and breaks them. They are routed through one sink instead —
 * the JSON logger in `run`, one `certprov: warning: …` line elsewhere — and the ones that are noise are lowered
 * to debug, each with its reason below.
 */

export interface ProcessWarning {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
}

/**
 * Warnings that say nothing an operator can act on, by name, with why. They still reach the sink, at debug.
 * - MetadataLookupWarning: gcp-metadata probing for the GCE/GKE metadata server on a machine that has none (a
 *   laptop, a CI runner). Whether credentials exist is decided by the start-up credential check, which says what
 *   to do (src/cli/google-credentials.ts); the probe's own warning only repeats it without a hint.
 */
const NOISE: ReadonlySet<string> = new Set(['MetadataLookupWarning']);

export function isNoiseWarning(warning: ProcessWarning): boolean {
  return NOISE.has(warning.name);
}

export type WarningSink = (warning: ProcessWarning, noise: boolean) => void;

let sink: WarningSink | undefined;
let installed = false;

/**
 * Routes every later process warning to `next` (replacing the previous sink). The first call replaces Node's
 * plain-text printer for the lifetime of the process.
 */
export function routeProcessWarnings(next: WarningSink): void {
  sink = next;
  if (installed) return;
  installed = true;
  const emit = (warning: string | Error, typeOrOptions?: unknown, code?: unknown): void => {
    const options =
      typeof typeOrOptions === 'object' && typeOrOptions !== null
        ? (typeOrOptions as { type?: string; code?: string })
        : { type: typeof typeOrOptions === 'string' ? typeOrOptions : undefined, code: code as string | undefined };
    const entry: ProcessWarning =
      warning instanceof Error
        ? { name: warning.name, message: warning.message }
        : { name: options.type ?? 'Warning', message: warning, ...(options.code ? { code: options.code } : {}) };
    sink?.(entry, isNoiseWarning(entry));
  };
  process.emitWarning = emit;
}
