/**
 * Structured JSON logs (pino) that Cloud Logging understands: a `severity` field, a `message` field, ISO time.
 * Secrets never reach a log line: known secret-bearing paths are redacted here as a last line of defence, and the
 * clients never put tokens, API keys or CSR bodies into log fields in the first place. User emails and device
 * serials are personal data (DESIGN.md §5): they are logged only as a keyed hash ({@link hashPersonal}).
 */
import { createHash, createHmac } from 'node:crypto';
import { pino, type DestinationStream, type Logger as PinoLogger, type LevelWithSilent } from 'pino';

export type Logger = PinoLogger;
export type LogLevel = LevelWithSilent;

const SEVERITY: Record<string, string> = {
  trace: 'DEBUG',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARNING',
  error: 'ERROR',
  fatal: 'CRITICAL',
};

/** Field paths that must never be printed, whatever a caller passes in. */
export const REDACTED_PATHS: readonly string[] = [
  // Credentials in request headers (Google bearer tokens, the DigiCert API key header), also nested in error objects
  // (a GaxiosError carries its request `config.headers`).
  'authorization',
  'Authorization',
  'headers.authorization',
  'headers.Authorization',
  'headers["x-dc-devkey"]',
  'headers["X-DC-DEVKEY"]',
  'headers.cookie',
  'req.headers.authorization',
  'config.headers.Authorization',
  'config.headers.authorization',
  '*.headers.authorization',
  '*.headers.Authorization',
  '*.headers["x-dc-devkey"]',
  '*.config.headers.Authorization',
  // Tokens, keys and client secrets by field name.
  'token',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'idToken',
  'id_token',
  'apiKey',
  'api_key',
  'password',
  'clientSecret',
  'client_secret',
  'clientAssertion',
  'client_assertion',
  'privateKey',
  'privateKeyPem',
  // Bodies that identify a device key or carry its proof: CSRs, the bytes the device signed, its signature.
  'csr',
  'csrPem',
  'csrDer',
  'signData',
  'signature',
  'certificatePem',
  '*.authorization',
  '*.token',
  '*.accessToken',
  '*.access_token',
  '*.refresh_token',
  '*.apiKey',
  '*.password',
  '*.clientSecret',
  '*.client_secret',
  '*.clientAssertion',
  '*.privateKey',
  '*.csr',
  '*.csrPem',
  '*.signData',
  '*.signature',
  '*.certificatePem',
];

export interface LoggerOptions {
  level?: LogLevel;
  /** Defaults to stdout; tests pass a stream to capture lines. */
  destination?: DestinationStream;
  /** Fields on every line. */
  base?: Record<string, unknown>;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      messageKey: 'message',
      base: options.base ?? {},
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label: string) => ({ severity: SEVERITY[label] ?? 'DEFAULT', level: label }),
      },
      redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that drops everything (unit tests of components that take a logger). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** The per-deployment key of {@link hashPersonal} (`log.userHashKey`); set once at start by `run`. */
let personalDataKey: string | undefined;

/** Sets (or, with undefined, clears) the key {@link hashPersonal} uses. */
export function setPersonalDataKey(key: string | undefined): void {
  personalDataKey = key === '' ? undefined : key;
}

export function hasPersonalDataKey(): boolean {
  return personalDataKey !== undefined;
}

/**
 * Short, stable form of personal data (user email, device serial) for log lines: the same value always gives the
 * same hash, so one user's lines can be found, without printing the value. With the deployment's key
 * (`log.userHashKey`) it is `hmac:` + the first 16 hex digits of HMAC-SHA256(key, trimmed lower-cased value) —
 * not reversible without the key. Without a key it is `sha256:` + an unkeyed SHA-256 prefix, which anyone holding
 * the logs can reverse for guessable addresses by hashing candidates; `run` says so at start.
 */
export function hashPersonal(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const normalised = value.trim().toLowerCase();
  if (personalDataKey !== undefined) {
    return 'hmac:' + createHmac('sha256', personalDataKey).update(normalised).digest('hex').slice(0, 16);
  }
  return 'sha256:' + createHash('sha256').update(normalised).digest('hex').slice(0, 16);
}
