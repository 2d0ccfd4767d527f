/**
 * Structured JSON logs (pino) that Cloud Logging understands: a `severity` field, a `message` field, ISO time.
 * Secrets never reach a log line: known secret-bearing paths are redacted here as a last line of defence, and the
 * clients never put tokens, API keys or CSR bodies into log fields in the first place. User emails and device
 * serials are personal data (DESIGN.md §5): log them hashed ({@link hashPersonal}) or at debug level only.
 */
import { createHash } from 'node:crypto';
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

/**
 * Stable, non-reversible short form of personal data (user email, device serial) for info-level logs: the same
 * value always gives the same hash, so lines can be correlated without printing the value.
 */
export function hashPersonal(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return 'sha256:' + createHash('sha256').update(value.trim().toLowerCase()).digest('hex').slice(0, 16);
}
