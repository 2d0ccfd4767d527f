/**
 * `node --import test/support/module-trace.ts …`: appends the URL of every module the process loads (ES modules and
 * `require`d CommonJS alike, through `module.registerHooks`) to the file `$CERTPROV_MODULE_TRACE`, one per line. The
 * backend-loading test reads it to see which SDKs a `certprov run` process loaded.
 */
import { appendFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const file = process.env.CERTPROV_MODULE_TRACE;
if (file !== undefined && file !== '') {
  registerHooks({
    load(url, context, nextLoad) {
      appendFileSync(file, `${url}\n`);
      return nextLoad(url, context);
    },
  });
}

/** The npm packages among the traced module URLs (`@scope/name` or `name`), each once. */
export function tracedPackages(trace: string): Set<string> {
  const packages = new Set<string>();
  for (const url of trace.split('\n')) {
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (match?.[1] !== undefined) packages.add(match[1]);
  }
  return packages;
}
