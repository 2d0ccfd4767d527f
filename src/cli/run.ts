/**
 * `certprov run` — the daemon. Loads and validates the configuration (every problem listed, exit 2, nothing
 * pulled), subscribes, and drains on SIGTERM/SIGINT within shutdown.gracePeriod; a second signal exits at once.
 */
import type { Config } from '../config/load.ts';
import { describeError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { routeProcessWarnings } from '../observability/process-warnings.ts';
import type { Adapter } from '../adapter.ts';
import { VERSION } from '../version.ts';
import { configPath, parseOptions, type Command } from './command.ts';
import { explainFailure, failureText } from './failure.ts';
import { requireGoogleCredentials } from './google-credentials.ts';

export const runCommand: Command = {
  name: 'run',
  usage: 'run --config FILE',
  summary: 'run the adapter: subscribe to Pub/Sub and provision certificates',
  help: `certprov run --config FILE

Runs the adapter until SIGTERM or SIGINT. The configuration (YAML or JSON; CERTPROV_CONFIG may name it instead of
--config) is validated first: every problem is listed with its path and the command exits with code 2 before any
message is pulled. /metrics, /healthz and /readyz are served on http.port (default 8080). Logs are JSON lines on
stdout at log.level, with a Cloud Logging "severity".

On SIGTERM (or SIGINT) the adapter reports not-ready, starts no new work, lets in-flight steps finish within
shutdown.gracePeriod (default 25s), hands the rest back to the subscription for another replica, and exits 0.
A second signal exits at once (143, or 130 for SIGINT). If it cannot start (subscription missing, credentials
refused, no Google credentials) it logs one line saying what failed and what to do, and exits 1; a secret file,
secret variable or CA file the configuration names that cannot be read is a configuration error (exit 2).

Options:
  --config FILE   configuration file (see config/*.example.yaml)

Environment:
  CERTPROV_CONFIG                  configuration file when --config is not given
  GOOGLE_APPLICATION_CREDENTIALS   a service account key (on GKE, Workload Identity needs nothing)
  CERTPROV_DATA_DIR                directory of the default sqlite store (store not configured): default ./data
  PUBSUB_EMULATOR_HOST             use a Pub/Sub emulator (tests)`,
  async run(args) {
    const { values } = parseOptions(args, { config: { type: 'string' } });
    // Loaded here, not at the top: `certprov run --help` must not pay for the validator, logger and metrics.
    const [
      { loadConfigFile },
      { assertRunnable },
      { configWarnings },
      { createLogger, setPersonalDataKey },
      { readSecret },
      { Metrics },
    ] = await Promise.all([
      import('../config/load.ts'),
      import('../config/references.ts'),
      import('../config/warnings.ts'),
      import('../observability/logger.ts'),
      import('../config/secrets.ts'),
      import('../observability/metrics.ts'),
    ]);
    const config = await loadConfigFile(configPath(values.config), 'run');
    await assertRunnable(config);
    const log = createLogger({ level: config.log.level, base: { service: 'certprov', version: VERSION } });
    const metrics = new Metrics({ version: VERSION });
    installCrashHandlers(log);
    routeProcessWarnings((warning, noise) => {
      const fields = { warning: warning.name, ...(warning.code === undefined ? {} : { code: warning.code }) };
      if (noise) log.debug(fields, warning.message);
      else log.warn(fields, warning.message);
    });
    const userHashKey = config.log.userHashKey;
    setPersonalDataKey(
      // Its own fault component: a missing key is the log settings' problem, not a CA connection's.
      userHashKey === undefined ? undefined : await readSecret(userHashKey, config.baseDir, 'log'),
    );
    if (userHashKey === undefined) {
      log.warn(
        'log.userHashKey is not set: the user field of log lines is an unkeyed SHA-256 prefix that anyone holding the logs can reverse for guessable addresses; set log.userHashKey to a per-deployment secret (docs: "Logs")',
      );
    }
    for (const warning of configWarnings(config)) log.warn(warning);
    if (config.store.type === 'memory') {
      log.warn(
        'store.type is memory: crash-safety is off and only ONE replica may run. Use store.type sqlite (the default) for one replica, firestore for several (docs/several-replicas.md).',
      );
    }
    const subscription = config.pubsub.subscription;
    if (subscription === undefined) throw new Error('pubsub.subscription is required');
    const cannotStart = (error: unknown): number => {
      const failure = explainFailure(error);
      log.fatal(
        { error: describeError(error), ...(failure.hint === undefined ? {} : { hint: failure.hint }) },
        `the adapter could not start: ${failureText(failure)}`,
      );
      log.flush();
      exitSoon(failure.exitCode);
      return failure.exitCode;
    };
    let adapter: Adapter;
    try {
      if (needsGoogleCredentials(config))
        await requireGoogleCredentials('Pub/Sub and the Chrome Management API', 'pubsub');
      // Loaded here, not at the top: `certprov run --help` must not pay for the Pub/Sub and Firestore SDKs.
      const [{ Adapter }, { PubSubMessageSource }] = await Promise.all([
        import('../adapter.ts'),
        import('../pubsub/pubsub-source.ts'),
      ]);
      const source = new PubSubMessageSource({
        subscription,
        maxInFlight: config.pubsub.maxInFlight,
        maxExtensionMs: config.pubsub.maxExtensionMs,
        closeTimeoutMs: config.pubsub.closeTimeoutMs,
        log,
        metrics,
      });
      adapter = await Adapter.create({ config, log, metrics, source });
    } catch (error) {
      return cannotStart(error);
    }

    // First signal: drain (readiness false, no new work, in-flight steps finish or are handed back within
    // shutdown.gracePeriod). Second signal: exit at once — what an operator (or the kubelet after
    // terminationGracePeriodSeconds) does when a drain takes too long.
    let stopping: Promise<number> | undefined;
    let signalled = false;
    const stop = (): Promise<number> =>
      (stopping ??= adapter.stop().then(
        () => 0,
        (error: unknown) => {
          log.error({ error: describeError(error) }, 'shutdown failed');
          return 1;
        },
      ));
    const stopped = new Promise<number>((resolve) => {
      const onSignal = (signal: NodeJS.Signals) => {
        if (signalled) {
          log.warn({ signal }, 'second signal: exiting now');
          log.flush();
          process.exit(signal === 'SIGINT' ? 130 : 143);
        }
        signalled = true;
        log.info({ signal, gracePeriodMs: config.shutdown.gracePeriodMs }, 'signal received; shutting down');
        void stop().then(resolve);
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });

    try {
      await adapter.start();
    } catch (error) {
      // Release the ops port and every client, then exit non-zero: a pod that cannot start must restart (and show
      // CrashLoopBackOff with this line), not sit there answering /healthz.
      await stop();
      if (signalled) {
        exitSoon(0);
        return 0;
      }
      return cannotStart(error);
    }
    const code = await stopped;
    log.flush();
    exitSoon(code);
    return code;
  },
};

/**
 * Whether any Google client will need Application Default Credentials: checked once before the clients are built,
 * so a missing credential is one line with a hint instead of a rejection deep inside a client library.
 */
function needsGoogleCredentials(config: Config): boolean {
  const pubsub = (process.env.PUBSUB_EMULATOR_HOST ?? '') === '';
  const chrome = config.chrome.credentials === 'google-default';
  const firestore = config.store.type === 'firestore' && (process.env.FIRESTORE_EMULATOR_HOST ?? '') === '';
  return pubsub || chrome || firestore;
}

/** Client libraries may keep sockets or timers open after close(); never hang a terminating pod on them. */
function exitSoon(code: number): void {
  setTimeout(() => process.exit(code), 1_000).unref();
}

/** A crash is logged as one JSON line (Cloud Logging severity CRITICAL) before the process exits. */
function installCrashHandlers(log: Logger): void {
  const crash = (kind: string) => (error: unknown) => {
    log.fatal(
      { error: describeError(error), stack: error instanceof Error ? error.stack : undefined },
      `${kind}; exiting`,
    );
    log.flush();
    process.exit(1);
  };
  process.on('uncaughtException', crash('uncaught exception'));
  process.on('unhandledRejection', crash('unhandled promise rejection'));
}
