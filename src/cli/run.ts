/**
 * `certprov run` — the daemon. Loads and validates the configuration (every problem listed, exit 2, nothing
 * pulled), subscribes, and drains on SIGTERM/SIGINT within shutdown.gracePeriod; a second signal exits at once.
 */
import { loadConfigFile } from '../config/load.ts';
import { createLogger } from '../observability/logger.ts';
import { Metrics } from '../observability/metrics.ts';
import { Adapter } from '../adapter.ts';
import { PubSubMessageSource } from '../pubsub/pubsub-source.ts';
import { VERSION } from '../version.ts';
import { configPath, parseOptions, type Command } from './command.ts';

export const runCommand: Command = {
  name: 'run',
  usage: 'run --config FILE',
  summary: 'run the adapter: subscribe to Pub/Sub and provision certificates',
  help: `certprov run --config FILE

Runs the adapter until SIGTERM or SIGINT. The configuration (YAML or JSON; CERTPROV_CONFIG may name it instead of
--config) is validated first: every problem is listed with its path and the command exits with code 2 before any
message is pulled. On SIGTERM the adapter stops pulling, reports not-ready, lets in-flight steps finish within
shutdown.gracePeriod and hands the rest back; a second signal exits at once.

Options:
  --config FILE   configuration file (see config/*.example.yaml)

Environment:
  CERTPROV_CONFIG                  configuration file when --config is not given
  GOOGLE_APPLICATION_CREDENTIALS   a service account key (on GKE, Workload Identity needs nothing)
  PUBSUB_EMULATOR_HOST             use a Pub/Sub emulator (tests)`,
  async run(args) {
    const { values } = parseOptions(args, { config: { type: 'string' } });
    const config = await loadConfigFile(configPath(values.config), 'run');
    const log = createLogger({ level: config.log.level, base: { service: 'certprov', version: VERSION } });
    const metrics = new Metrics({ version: VERSION });
    if (config.store.type === 'memory') {
      log.warn(
        'store.type is memory: crash-safety is off and only ONE replica may run. Use store.type firestore for production (README "Running several replicas").',
      );
    }
    const subscription = config.pubsub.subscription;
    if (subscription === undefined) throw new Error('pubsub.subscription is required');
    const source = new PubSubMessageSource({
      subscription,
      maxInFlight: config.pubsub.maxInFlight,
      maxExtensionMs: config.pubsub.maxExtensionMs,
      closeTimeoutMs: config.pubsub.closeTimeoutMs,
      log,
      metrics,
    });
    const adapter = await Adapter.create({ config, log, metrics, source });

    let stopping: Promise<void> | undefined;
    const stopped = new Promise<number>((resolve) => {
      const onSignal = (signal: NodeJS.Signals) => {
        if (stopping !== undefined) {
          log.warn({ signal }, 'second signal: exiting now');
          log.flush();
          process.exit(signal === 'SIGINT' ? 130 : 143);
        }
        log.info({ signal }, 'signal received; shutting down');
        stopping = adapter.stop().then(
          () => resolve(0),
          (error: unknown) => {
            log.error({ error: String(error) }, 'shutdown failed');
            resolve(1);
          },
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
    await adapter.start();
    const code = await stopped;
    log.flush();
    // Client libraries may keep sockets open after close(); never hang a terminating pod on them.
    setTimeout(() => process.exit(code), 1_000).unref();
    return code;
  },
};
