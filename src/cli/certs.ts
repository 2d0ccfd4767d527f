/**
 * `certprov certs list` — the certificate inventory, filtered (read-only; needs store access only).
 */
import { CERTIFICATE_STATUSES, type CertificateQuery, type CertificateStatus } from '../store/inventory.ts';
import { parseOptions, UsageError, type Command } from './command.ts';
import { parseDuration } from '../config/duration.ts';
import { openLifecycleSession } from './lifecycle-context.ts';
import { table } from './table.ts';

export const CERT_FILTER_OPTIONS = {
  config: { type: 'string' },
  device: { type: 'string' },
  user: { type: 'string' },
  profile: { type: 'string' },
  connection: { type: 'string' },
  status: { type: 'string' },
  'expiring-within': { type: 'string' },
} as const;

/** The inventory query for the filter options shared by `certs list` and `revoke`. */
export function queryOf(
  values: Partial<Record<keyof typeof CERT_FILTER_OPTIONS, string | undefined>>,
  now: number,
): CertificateQuery {
  const status = values.status;
  if (status !== undefined && !CERTIFICATE_STATUSES.includes(status as CertificateStatus)) {
    throw new UsageError(`--status must be one of ${CERTIFICATE_STATUSES.join(', ')}`);
  }
  let notAfterBefore: number | undefined;
  if (values['expiring-within'] !== undefined) {
    const within = parseDuration(values['expiring-within']);
    if (within === undefined) throw new UsageError('--expiring-within takes a duration like 30d, 12h or 90m');
    notAfterBefore = now + within;
  }
  return {
    ...(values.device === undefined ? {} : { device: values.device }),
    ...(values.user === undefined ? {} : { user: values.user }),
    ...(values.profile === undefined ? {} : { profile: values.profile }),
    ...(values.connection === undefined ? {} : { caConnection: values.connection }),
    ...(status === undefined ? {} : { status: status as CertificateStatus }),
    ...(notAfterBefore === undefined ? {} : { notAfterBefore, notAfterFrom: now }),
  };
}

export const certsCommand: Command = {
  name: 'certs',
  usage: 'certs list --config FILE [filters] [--json]',
  summary: 'list issued certificates (by device, user, profile, connection, status, expiry)',
  help: `certprov certs list --config FILE [--device ID] [--user ID] [--profile NAME] [--connection NAME]
                    [--status active|superseded|revoked] [--expiring-within 30d] [--json]

Lists the inventory, earliest expiry first. --device matches a device directory id or serial number, --user a
user directory id or email (case-insensitive). --expiring-within lists certificates not yet expired that expire
within the duration. --json prints one JSON array with every field (the clear identity included).`,
  async run(args) {
    const { values, positionals } = parseOptions(args, {
      ...CERT_FILTER_OPTIONS,
      json: { type: 'boolean', default: false },
    });
    if (positionals[0] !== 'list' || positionals.length !== 1) throw new UsageError('expected: certs list');
    const query = queryOf(values, Date.now());
    const session = await openLifecycleSession(values.config);
    try {
      const found = await session.store.findCertificates(query);
      if (values.json) {
        console.log(
          JSON.stringify(
            found.map(({ certificatePem: _pem, ...rest }) => rest),
            null,
            2,
          ),
        );
        return 0;
      }
      const who = (c: (typeof found)[number]) =>
        c.holder.user?.email ??
        c.holder.user?.directoryId ??
        c.holder.device?.serialNumber ??
        c.holder.device?.directoryId ??
        '';
      console.log(
        table([
          ['SERIAL', 'CONNECTION', 'PROFILE', 'HOLDER', 'STATUS', 'NOT AFTER'],
          ...found.map((c) => [
            c.serial,
            c.caConnection,
            c.profile,
            who(c),
            c.status,
            new Date(c.notAfter).toISOString(),
          ]),
        ]),
      );
      return 0;
    } finally {
      await session.close();
    }
  },
};
