/**
 * `certprov retry --faulted` — asks the adapter running in this pod to probe its faulted components now, so an admin
 * who fixed the cause (rotated the DigiCert key, granted the permission) need not wait out the backoff: when the
 * probe passes, every held process resumes at once (src/provisioning/fault-gate.ts).
 */
import { DEFAULTS } from '../config/schema.ts';
import { RETRY_FAULTED_PATH } from '../observability/server.ts';
import { parseOptions, UsageError, type Command } from './command.ts';

export const retryCommand: Command = {
  name: 'retry',
  usage: 'retry --faulted [--port N]',
  summary: 'make the running adapter probe its faulted components now (after fixing the cause)',
  help: `certprov retry --faulted [--port N]

While a component (the Chrome API, a CA connection) has a deployment fault, the adapter holds the processes that
need it and probes it once per backoff interval. After fixing the cause, this asks the adapter running in the same
pod to probe now; when the probe passes, every held process resumes at once. Run it inside each pod:
  kubectl -n certprov exec POD -- node dist/main.js retry --faulted
It talks to the ops server on 127.0.0.1 (the adapter answers this request only from its own pod).

Options:
  --faulted   probe every faulted component now (the only retry there is)
  --port N    the adapter's http.port (default ${DEFAULTS.http.port})`,
  async run(args) {
    const { values } = parseOptions(args, {
      faulted: { type: 'boolean', default: false },
      port: { type: 'string', default: String(DEFAULTS.http.port) },
    });
    if (!values.faulted) throw new UsageError('give --faulted');
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 1 || port > 65_535)
      throw new UsageError(`--port: not a port: ${values.port}`);
    let response: Response;
    try {
      response = await fetch(`http://127.0.0.1:${port}${RETRY_FAULTED_PATH}`, {
        method: 'POST',
        signal: AbortSignal.timeout(10_000),
      });
    } catch {
      console.error(
        `certprov retry: no adapter answers on 127.0.0.1:${port}; what to do: run it inside the adapter's pod (kubectl exec), with --port set to http.port`,
      );
      return 1;
    }
    const text = (await response.text()).trim();
    if (!response.ok) {
      console.error(`certprov retry: the adapter answered ${response.status}: ${text}`);
      return 1;
    }
    console.log(text);
    return 0;
  },
};
