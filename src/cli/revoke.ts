/**
 * `certprov revoke` — revokes inventory certificates through their CA connection, reporting per certificate.
 */
import { createInterface } from 'node:readline/promises';
import { createCertificateAuthorities, newReplicaId } from '../adapter.ts';
import { Metrics } from '../observability/metrics.ts';
import { CRL_REASONS, isCrlReason } from '../pki/crl-reason.ts';
import { publishCrlsAfter, revokeCertificates } from '../lifecycle/revoke.ts';
import { crlPublications, type CrlPublication } from '../lifecycle/crl.ts';
import { formatDuration } from '../config/duration.ts';
import { crlBucketUploaderFor } from '../lifecycle/crl-bucket.ts';
import type { CertificateRecord } from '../store/inventory.ts';
import { queryOf } from './certs.ts';
import { parseOptions, UsageError, type Command } from './command.ts';
import { openLifecycleSession } from './lifecycle-context.ts';
import { table } from './table.ts';

export const revokeCommand: Command = {
  name: 'revoke',
  usage: 'revoke --config FILE (--serial S | --device ID | --user ID) --reason R [--dry-run] [--yes]',
  summary: 'revoke certificates of a serial, a device or a user',
  help: `certprov revoke --config FILE (--serial S [--connection NAME] | --device ID | --user ID)
                --reason REASON [--profile NAME] [--comment TEXT] [--dry-run] [--yes]

Revokes the matching certificates that are not revoked yet (active and superseded ones) through their CA
connection: local and Key Vault CAs list them on the connection's CRL; DigiCert receives a revocation request,
which an administrator approves in CertCentral (recorded as pending_approval). A connection that cannot revoke
is reported for its certificates; the others go on. --dry-run lists what would be revoked; without --yes the
command asks for confirmation. REASON is an RFC 5280 reason: ${Object.keys(CRL_REASONS).join(', ')}.
Exit code 1 when any certificate could not be revoked.`,
  async run(args) {
    const { values } = parseOptions(args, {
      config: { type: 'string' },
      serial: { type: 'string' },
      connection: { type: 'string' },
      device: { type: 'string' },
      user: { type: 'string' },
      profile: { type: 'string' },
      reason: { type: 'string' },
      comment: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      yes: { type: 'boolean', default: false },
    });
    const selectors = [values.serial, values.device, values.user].filter((v) => v !== undefined);
    if (selectors.length !== 1) throw new UsageError('give exactly one of --serial, --device, --user');
    const reason = values.reason ?? '';
    if (!isCrlReason(reason)) throw new UsageError(`--reason must be one of ${Object.keys(CRL_REASONS).join(', ')}`);
    const session = await openLifecycleSession(values.config);
    try {
      const { store } = session;
      let targets: CertificateRecord[];
      if (values.serial !== undefined) {
        const serial = values.serial.toLowerCase().replace(/^0x/, '').replace(/:/g, '');
        const connections =
          values.connection === undefined ? [...session.config.caConnections.keys()] : [values.connection];
        const found = await Promise.all(connections.map((c) => store.getCertificate(c, serial)));
        targets = found.filter((r): r is CertificateRecord => r !== undefined);
      } else {
        const { device, user, profile, connection } = values;
        targets = await store.findCertificates(queryOf({ device, user, profile, connection }, Date.now()));
      }
      targets = targets.filter((c) => c.status !== 'revoked' && c.revocation?.state !== 'pending_approval');
      if (targets.length === 0) {
        console.log('nothing to revoke: no matching certificate that is not revoked already');
        return 0;
      }
      console.log(
        table([
          ['SERIAL', 'CONNECTION', 'PROFILE', 'STATUS', 'NOT AFTER'],
          ...targets.map((c) => [c.serial, c.caConnection, c.profile, c.status, new Date(c.notAfter).toISOString()]),
        ]),
      );
      if (values['dry-run']) {
        console.log(`dry run: ${targets.length} certificate(s) would be revoked (${reason})`);
        return 0;
      }
      if (!values.yes && !(await confirm(`revoke these ${targets.length} certificate(s) (${reason})? [y/N] `))) {
        console.log('not revoked');
        return 1;
      }
      const metrics = new Metrics({ defaultMetrics: false });
      const cas = await createCertificateAuthorities(session.config, session.log, metrics);
      try {
        const reports = await revokeCertificates(
          { store, cas, ctx: session.ctx, now: Date.now },
          targets,
          reason,
          values.comment ?? `certprov revoke (${reason})`,
        );
        console.log(
          table([
            ['SERIAL', 'CONNECTION', 'OUTCOME', 'DETAIL'],
            ...reports.map((r) => [r.serial, r.caConnection, r.outcome, r.detail ?? '']),
          ]),
        );
        const publications = crlPublications(cas.values());
        const bucket = crlBucketUploaderFor(publications, session.log);
        const crls = await publishCrlsAfter(reports, cas, {
          ...(bucket === undefined ? {} : { bucket }),
          store,
          owner: `certprov-revoke-${newReplicaId()}`,
          log: session.log,
          now: Date.now,
          signal: session.ctx.signal,
        });
        for (const crl of crls) {
          console.log(
            crl.crlNumber === undefined
              ? `CRL of ${crl.caConnection}: ${crl.error ?? 'not signed'}; the revocation is recorded, and a running adapter on this store signs a CRL listing it within checkInterval (${checkIntervalOf(publications, crl.caConnection)})`
              : `CRL of ${crl.caConnection}: number ${crl.crlNumber} signed and stored (replicas serve it within seconds)`,
          );
          if (bucket?.isStale(crl.caConnection) === true) {
            console.log(
              `CRL of ${crl.caConnection}: the Cloud Storage upload failed (see the log); the object stays stale until the next CRL is signed`,
            );
          }
        }
        const bad = reports.filter((r) => ['unsupported', 'no_connection', 'failed'].includes(r.outcome));
        return bad.length === 0 && crls.every((c) => c.error === undefined) ? 0 : 1;
      } finally {
        await Promise.all([...cas.values()].map((c) => c.abilities.background?.close() ?? Promise.resolve()));
      }
    } finally {
      await session.close();
    }
  },
};

/** Asks on stdout, reads one line from stdin: yes only for `y`/`yes`; a closed stdin (no answer) is a no. */
async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: false });
  try {
    const closed = new Promise<string>((resolve) => rl.once('close', () => resolve('')));
    const answer = await Promise.race([rl.question(question).catch(() => ''), closed]);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** The `crl.checkInterval` of a connection, for the message after a CRL that could not be signed. */
function checkIntervalOf(publications: readonly CrlPublication[], connection: string): string {
  const publication = publications.find((p) => p.connection === connection);
  return publication === undefined ? 'unknown' : formatDuration(publication.settings.checkInterval);
}
