/** Log lines as Cloud Logging reads them, and what never reaches them. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, hashPersonal, setPersonalDataKey, type LogLevel } from '../../../src/observability/logger.ts';

function capture(level: LogLevel = 'trace') {
  const lines: string[] = [];
  const log = createLogger({
    level,
    destination: { write: (line: string) => lines.push(line) },
    base: { service: 'certprov' },
  });
  return { log, entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>), text: () => lines.join('') };
}

describe('createLogger', () => {
  it('writes one JSON object per line with a Cloud Logging severity, message and ISO time', () => {
    const { log, entries } = capture();
    log.trace('t');
    log.debug('d');
    log.info({ processId: 'p1' }, 'i');
    log.warn('w');
    log.error('e');
    log.fatal('f');
    expect(entries().map((e) => [e.severity, e.level, e.message])).toEqual([
      ['DEBUG', 'trace', 't'],
      ['DEBUG', 'debug', 'd'],
      ['INFO', 'info', 'i'],
      ['WARNING', 'warn', 'w'],
      ['ERROR', 'error', 'e'],
      ['CRITICAL', 'fatal', 'f'],
    ]);
    const info = entries()[2] ?? {};
    expect(info.processId).toBe('p1');
    expect(info.service).toBe('certprov');
    expect(new Date(String(info.time)).toISOString()).toBe(info.time);
  });

  it('honours the configured level', () => {
    const { log, entries } = capture('warn');
    log.info('hidden');
    log.debug('hidden');
    log.warn('shown');
    expect(entries().map((e) => e.message)).toEqual(['shown']);
  });

  it('redacts tokens, keys, secrets and CSR/signature bodies wherever a caller puts them', () => {
    const secrets = {
      bearer: 'Bearer ya29.secret-token-1',
      devkey: 'DCKEY-secret-2',
      token: 'secret-token-3',
      accessToken: 'secret-token-4',
      apiKey: 'secret-api-key-5',
      clientSecret: 'secret-client-6',
      privateKey: '-----BEGIN PRIVATE KEY-----secret-7',
      csr: 'MIICsecretcsr8',
      signature: 'c2lnbmF0dXJlLXNlY3JldC05',
      signData: 'c2lnbkRhdGEtc2VjcmV0LTEw',
      password: 'secret-password-11',
      refresh: 'secret-refresh-12',
      assertion: 'secret-assertion-13',
    };
    const { log, text } = capture();
    log.info(
      { authorization: secrets.bearer, headers: { authorization: secrets.bearer, 'x-dc-devkey': secrets.devkey } },
      'request',
    );
    log.info({ config: { headers: { Authorization: secrets.bearer } } }, 'gaxios error');
    log.info(
      {
        token: secrets.token,
        accessToken: secrets.accessToken,
        apiKey: secrets.apiKey,
        clientSecret: secrets.clientSecret,
      },
      'creds',
    );
    log.info(
      {
        request: {
          privateKey: secrets.privateKey,
          csr: secrets.csr,
          signature: secrets.signature,
          signData: secrets.signData,
        },
      },
      'bodies',
    );
    log.info(
      { auth: { password: secrets.password, refresh_token: secrets.refresh, clientAssertion: secrets.assertion } },
      'nested',
    );
    const out = text();
    for (const [name, value] of Object.entries(secrets)) expect(out, name).not.toContain(value);
    expect(out).toContain('[redacted]');
  });
});

describe('hashPersonal', () => {
  afterEach(() => setPersonalDataKey(undefined));

  it('with the deployment key: an HMAC an admin recomputes with openssl (the documented recipe), not reversible without it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'certprov-hash-'));
    try {
      const keyFile = path.join(dir, 'user-hash-key');
      writeFileSync(keyFile, 'per-deployment-key-7f3a9c\n');
      setPersonalDataKey('per-deployment-key-7f3a9c');
      const hashed = hashPersonal(' Ada.Lovelace@Example.com ');
      expect(hashed).toMatch(/^hmac:[0-9a-f]{16}$/);
      // docs/operations: printf '%s' EMAIL-IN-LOWER-CASE | openssl dgst -sha256 -hmac "$(cat KEYFILE)" -r | cut -c1-16
      const recomputed = execFileSync('sh', [
        '-c',
        `printf '%s' 'ada.lovelace@example.com' | openssl dgst -sha256 -hmac "$(cat '${keyFile}')" -r | cut -c1-16`,
      ])
        .toString()
        .trim();
      expect(hashed).toBe(`hmac:${recomputed}`);
      setPersonalDataKey('another-deployment');
      expect(hashPersonal('ada.lovelace@example.com')).not.toBe(hashed);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives a stable short hash, the same for case and surrounding spaces, never the value', () => {
    const a = hashPersonal('Ada.Lovelace@example.com');
    expect(a).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect(hashPersonal(' ada.lovelace@example.com ')).toBe(a);
    expect(hashPersonal('grace@example.com')).not.toBe(a);
    expect(a).not.toContain('example');
    expect(hashPersonal(undefined)).toBeUndefined();
  });
});
