/**
 * `certprov status <process id | correlation id>` — one process as the store knows it, and the certificate it
 * produced (read-only; needs store access only).
 */
import { holderKeyOf } from '../store/inventory.ts';
import { parseOptions, UsageError, type Command } from './command.ts';
import { openLifecycleSession } from './lifecycle-context.ts';

export const statusCommand: Command = {
  name: 'status',
  usage: 'status ID --config FILE [--json]',
  summary: 'show one process (by process id or correlation id) and its certificate',
  help: `certprov status <process id | correlation id> --config FILE [--json]

Prints the process record: step, outcome, attempts, last error, when it is due next, the CA order/request ids,
and the certificate it produced (from the inventory). The correlation id is the "reference CP-…" a user reads in
a failure message on the device. Exit code 1 when no process has that id.`,
  async run(args) {
    const { values, positionals } = parseOptions(args, {
      config: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    const [id] = positionals;
    if (id === undefined || positionals.length !== 1) throw new UsageError('give one process id or correlation id');
    const session = await openLifecycleSession(values.config);
    try {
      const record = (await session.store.get(id)) ?? (await session.store.findByCorrelationId(id));
      if (record === undefined) {
        console.error(`no process with id or correlation id "${id}" (finished records expire after finishedRetention)`);
        return 1;
      }
      // The holder and profile narrow the inventory to a handful of certificates (an index-served query).
      const certificates = await session.store.findCertificates(
        record.holder !== undefined && record.profile !== undefined
          ? { holder: holderKeyOf(record.holder), profile: record.profile }
          : record.caConnection === undefined
            ? {}
            : { caConnection: record.caConnection },
      );
      const certificate = certificates.find((c) => c.processId === record.processId);
      const view = {
        processId: record.processId,
        correlationId: record.correlationId,
        customer: record.customer,
        step: record.step,
        ...(record.outcome === undefined ? {} : { outcome: record.outcome, reason: record.reason }),
        caConnection: record.caConnection,
        profile: record.profile,
        attempts: record.attempts,
        issueAttempts: record.issueAttempts,
        ...(record.lastError === undefined ? {} : { lastError: record.lastError }),
        ...(record.step === 'done' ? {} : { dueAt: new Date(record.dueAt).toISOString() }),
        ...(record.pendingRef === undefined ? {} : { caRequest: record.pendingRef }),
        createdAt: new Date(record.createdAt).toISOString(),
        updatedAt: new Date(record.updatedAt).toISOString(),
        ...(certificate === undefined
          ? {}
          : {
              certificate: {
                serial: certificate.serial,
                status: certificate.status,
                notAfter: new Date(certificate.notAfter).toISOString(),
              },
            }),
      };
      if (values.json) console.log(JSON.stringify(view, null, 2));
      else
        for (const [key, value] of Object.entries(view))
          console.log(`${key}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`);
      return 0;
    } finally {
      await session.close();
    }
  },
};
