/**
 * `certprov kv-ca create|status|merge|cancel|delete-pending` — the lifecycle of the issuing CA certificate held in
 * Azure Key Vault (src/ca/azure-key-vault/lifecycle.ts). The vault, the credential and the certificate name come
 * from a `type: azure-key-vault` connection of the configuration file, so the commands authenticate exactly as the
 * adapter does (federation from GKE included).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { DeploymentFaultError, RetryableError, UnclearResultError } from '../errors.ts';
import { keyVaultLifecycleConfigSchema, isManagedHsmUrl } from '../ca/azure-key-vault/config.ts';
import { createKeyVaultCredential } from '../ca/azure-key-vault/credential.ts';
import { clientSettingsOf, createCertificateClient, createKeyClient } from '../ca/azure-key-vault/client.ts';
import { callEnvironmentOf } from '../ca/azure-key-vault/key-vault-call.ts';
import {
  KeyVaultCaLifecycle,
  KvCaRefusal,
  parseChain,
  type CaKeySpec,
  type MergeResult,
  type PendingRequest,
} from '../ca/azure-key-vault/lifecycle.ts';
import { createLogger } from '../observability/logger.ts';
import { Metrics } from '../observability/metrics.ts';
import { configPath, parseOptions, UsageError, type Command } from './command.ts';
import { readConnectionBlock } from './connection-block.ts';

const SUBCOMMANDS = ['create', 'status', 'merge', 'cancel', 'delete-pending'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];

const HELP = `certprov kv-ca <create|status|merge|cancel|delete-pending> --config FILE [--connection NAME] [options]

Manages the issuing CA certificate of a \`type: azure-key-vault\` CA connection: its key is generated in Key Vault
and never leaves it; the certificate is signed by your parent CA and merged back.

  create          start a request: issuer "Unknown", non-exportable EC or RSA key (HSM-backed with --hsm on a
                  Premium vault); prints the CSR (PEM) for the parent CA
  status          show the pending request: inProgress, completed, failed or cancelled, with details and errors
  merge           complete the pending request with the parent-signed certificate: --chain FILE (PEM, the new CA
                  certificate first, then its issuers); prints the new certificateVersion to pin
  cancel          ask the issuer to stop an inProgress request (a request, not a guarantee)
  delete-pending  delete the pending request object (does not necessarily cancel an order at an issuer)

status, cancel, delete-pending and merge work on any pending request of the certificate, including one created
with a certificate issuer elsewhere.

Rotation: run create and merge again for the same certificate name. That makes a new version with a new key;
running adapters keep signing with the version pinned in their configuration until you roll out the new
certificateVersion.

Options:
  --config FILE              configuration file (or CERTPROV_CONFIG); certificateVersion may be missing
  --connection NAME          the azure-key-vault CA connection (default: the only one in the file)
  --certificate-name NAME    override the connection's certificateName
  --json                     print the result as JSON
create:
  --subject DN               CA subject, e.g. "CN=Example Device Issuing CA 2026,O=Example" (required)
  --key ec|rsa               CA key type (default ec)
  --curve P-256|P-384        EC curve (default P-256)
  --rsa-bits N               RSA size: 2048, 3072 or 4096 (default 3072)
  --hsm                      HSM-protected key (EC-HSM / RSA-HSM; Premium vaults)
  --validity-months N        validity recorded in the policy (default 60; the parent CA decides the real one)
  --csr-out FILE             also write the CSR to FILE
status:
  --request-id ID            only this request (Key Vault's request_id filter)
  --csr-out FILE             write the CSR to FILE
merge:
  --chain FILE               the signed CA certificate and its issuers, PEM, leaf first (required)

Exit codes: 0 done, 1 Key Vault refused (the message says what to do) or failed, 2 bad usage or configuration.`;

interface Loaded {
  readonly lifecycle: KeyVaultCaLifecycle;
  readonly connection: string;
  readonly configFile: string;
}

async function loadConnection(
  file: string,
  connectionName: string | undefined,
  certificateNameOverride: string | undefined,
  signal: AbortSignal,
): Promise<Loaded> {
  const { name, config, baseDir } = await readConnectionBlock(
    file,
    'azure-key-vault',
    connectionName,
    keyVaultLifecycleConfigSchema,
  );
  const certificateName = certificateNameOverride ?? config.certificateName;
  if (certificateName === undefined) {
    throw new UsageError(
      isManagedHsmUrl(config.vaultUrl)
        ? 'a Managed HSM has no certificate objects: make the CA certificate elsewhere (docs/backends/azure-key-vault.md, Managed HSM)'
        : `caConnections.${name} has no certificateName: add one or give --certificate-name`,
    );
  }
  const credential = await createKeyVaultCredential(config.credential, { baseDir });
  const settings = clientSettingsOf(config);
  const lifecycle = new KeyVaultCaLifecycle({
    client: createCertificateClient(settings, credential),
    keys: createKeyClient(settings, credential),
    certificateName,
    signal,
    env: callEnvironmentOf(config, settings.vaultUrl, {
      metrics: new Metrics({ defaultMetrics: false }),
      log: createLogger({ level: process.env.CERTPROV_LOG_LEVEL === 'debug' ? 'debug' : 'warn' }),
    }),
  });
  return { lifecycle, connection: name, configFile: file };
}

function describePending(pending: PendingRequest): string[] {
  const lines = [
    `certificate      ${pending.certificateName}`,
    `request id       ${pending.requestId ?? '-'}`,
    `status           ${pending.status ?? '-'}${pending.cancellationRequested ? ' (cancellation requested)' : ''}`,
    `issuer           ${pending.issuerName ?? 'Unknown'}`,
  ];
  if (pending.statusDetails !== undefined && pending.statusDetails !== '')
    lines.push(`details          ${pending.statusDetails}`);
  if (pending.error !== undefined)
    lines.push(`error            ${pending.error.code ?? '?'}: ${pending.error.message ?? ''}`);
  if (pending.target !== undefined) lines.push(`certificate url  ${pending.target}`);
  return lines;
}

/** What to do next, by status. */
function nextStep(pending: PendingRequest, loaded: Loaded): string {
  const status = pending.status?.toLowerCase();
  const manual = pending.issuerName === undefined || pending.issuerName.toLowerCase() === 'unknown';
  const cmd = `certprov kv-ca merge --config ${loaded.configFile} --connection ${loaded.connection} --chain FILE`;
  if (status === 'inprogress') {
    return manual
      ? `Next: have the parent CA sign the CSR as a CA certificate (basicConstraints=critical,CA:true,pathlen:0; keyUsage=critical,keyCertSign,cRLSign), then run:\n  ${cmd}`
      : `Next: the issuer ${pending.issuerName ?? ''} is working on it; check again later (merge is refused while it is in progress).`;
  }
  if (status === 'completed') {
    return 'Next: pin the new version as certificateVersion (`certprov kv-ca merge` printed it; the certificate URL ends with it) and roll it out.';
  }
  if (status === 'failed' || status === 'cancelled') {
    return `Next: \`certprov kv-ca create\` starts a new request; a certificate obtained out of band for this request's CSR can still be merged:\n  ${cmd}`;
  }
  return '';
}

function print(json: boolean, value: unknown, text: string): void {
  console.log(json ? JSON.stringify(value, null, 2) : text);
}

function integer(value: string | undefined, flag: string, allowed?: readonly number[]): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0 || (allowed !== undefined && !allowed.includes(n))) {
    throw new UsageError(`${flag} must be ${allowed === undefined ? 'a positive whole number' : allowed.join(', ')}`);
  }
  return n;
}

async function runSubcommand(sub: Subcommand, args: readonly string[], signal: AbortSignal): Promise<number> {
  const { values } = parseOptions(args, {
    config: { type: 'string' },
    connection: { type: 'string' },
    'certificate-name': { type: 'string' },
    json: { type: 'boolean', default: false },
    subject: { type: 'string' },
    key: { type: 'string', default: 'ec' },
    curve: { type: 'string', default: 'P-256' },
    'rsa-bits': { type: 'string' },
    hsm: { type: 'boolean', default: false },
    'validity-months': { type: 'string' },
    'csr-out': { type: 'string' },
    'request-id': { type: 'string' },
    chain: { type: 'string' },
  });
  const json = values.json;
  // Validate the command line before touching the vault.
  let key: CaKeySpec | undefined;
  if (sub === 'create') {
    if (values.subject === undefined || values.subject.trim() === '') throw new UsageError('create needs --subject DN');
    if (values.key !== 'ec' && values.key !== 'rsa') throw new UsageError('--key must be ec or rsa');
    if (values.curve !== 'P-256' && values.curve !== 'P-384') throw new UsageError('--curve must be P-256 or P-384');
    key = {
      type: values.key,
      curve: values.curve,
      rsaBits: integer(values['rsa-bits'], '--rsa-bits', [2048, 3072, 4096]) as 2048 | 3072 | 4096 | undefined,
      hsm: values.hsm,
    };
  }
  if (sub === 'merge' && values.chain === undefined) throw new UsageError('merge needs --chain FILE');
  const validityMonths = integer(values['validity-months'], '--validity-months');
  const loaded = await loadConnection(configPath(values.config), values.connection, values['certificate-name'], signal);
  const { lifecycle } = loaded;

  switch (sub) {
    case 'create': {
      const pending = await lifecycle.create({
        subject: values.subject ?? '',
        key: key!,
        ...(validityMonths === undefined ? {} : { validityMonths }),
      });
      if (values['csr-out'] !== undefined && pending.csrPem !== undefined)
        await writeFile(values['csr-out'], pending.csrPem);
      print(
        json,
        pending,
        [
          `Created a pending request for certificate ${pending.certificateName} in ${loaded.connection}.`,
          ...describePending(pending),
          '',
          nextStep(pending, loaded),
          '',
          pending.csrPem ?? '',
        ].join('\n'),
      );
      return 0;
    }
    case 'status': {
      const pending = await lifecycle.status(values['request-id']);
      // The key's permitted operations; a missing keys/get permission only hides them.
      const key = await lifecycle.keyOperations().catch(() => undefined);
      const keyOps =
        key?.keyOps === undefined
          ? 'unknown (needs keys/get)'
          : `${key.keyOps.join(', ')}${key.keyOps.includes('sign') ? '' : '  ← cannot sign'}`;
      if (values['csr-out'] !== undefined && pending.csrPem !== undefined)
        await writeFile(values['csr-out'], pending.csrPem);
      const showCsr = pending.status?.toLowerCase() === 'inprogress' && values['csr-out'] === undefined;
      print(
        json,
        { ...pending, keyOps: key?.keyOps },
        [
          ...describePending(pending),
          `key_ops          ${keyOps}`,
          '',
          nextStep(pending, loaded),
          ...(showCsr ? ['', pending.csrPem ?? ''] : []),
        ].join('\n'),
      );
      return 0;
    }
    case 'merge': {
      let text: string;
      try {
        text = await readFile(values.chain ?? '', 'utf8');
      } catch (error) {
        throw new UsageError(
          `cannot read --chain ${values.chain ?? ''}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
        );
      }
      const merged: MergeResult = await lifecycle.merge(parseChain(text));
      print(
        json,
        merged,
        [
          `Merged: certificate ${merged.certificateName} has a new version.`,
          `certificateVersion  ${merged.version}`,
          `subject             ${merged.subject}`,
          `valid until         ${merged.notAfter.toISOString()}`,
          `kid                 ${merged.kid ?? '-'}`,
          '',
          `Next: set caConnections.${loaded.connection}.certificateVersion: ${merged.version} and roll it out.`,
          'Keep the previous version enabled until every replica runs the new configuration.',
        ].join('\n'),
      );
      return 0;
    }
    case 'cancel': {
      const pending = await lifecycle.cancel();
      print(
        json,
        pending,
        [
          ...describePending(pending),
          '',
          'Cancellation is a request, not a guarantee: the status may stay inProgress; check with `certprov kv-ca status`.',
        ].join('\n'),
      );
      return 0;
    }
    case 'delete-pending': {
      const pending = await lifecycle.deletePending();
      print(
        json,
        pending,
        [
          `Deleted the pending request ${pending.requestId ?? ''} (it was ${pending.status ?? 'unknown'}).`,
          'Deleting does not necessarily cancel an order at a certificate issuer.',
        ].join('\n'),
      );
      return 0;
    }
  }
}

export const kvCaCommand: Command = {
  name: 'kv-ca',
  usage: 'kv-ca <create|status|merge|cancel|delete-pending> --config FILE',
  summary: 'create, enroll and rotate the issuing CA certificate held in Azure Key Vault',
  help: HELP,
  async run(args) {
    const [sub, ...rest] = args;
    if (sub === undefined || !(SUBCOMMANDS as readonly string[]).includes(sub)) {
      throw new UsageError(`expected one of: ${SUBCOMMANDS.join(', ')}`);
    }
    const controller = new AbortController();
    const onSignal = () => controller.abort(new Error('interrupted'));
    process.once('SIGINT', onSignal);
    try {
      return await runSubcommand(sub as Subcommand, rest, controller.signal);
    } catch (error) {
      if (error instanceof KvCaRefusal) {
        console.error(`certprov kv-ca ${sub}: ${error.message}\n  what to do: ${error.advice}`);
        return 1;
      }
      if (error instanceof DeploymentFaultError) {
        console.error(
          `certprov kv-ca ${sub}: ${error.message}${error.hint === undefined ? '' : `\n  what to do: ${error.hint}`}`,
        );
        return 1;
      }
      if (error instanceof UnclearResultError) {
        console.error(
          `certprov kv-ca ${sub}: ${error.message}\n  what to do: run \`certprov kv-ca status\` to see whether it took effect before trying again`,
        );
        return 1;
      }
      if (error instanceof RetryableError) {
        console.error(
          `certprov kv-ca ${sub}: ${error.message}\n  what to do: the vault is busy or unreachable; try again later`,
        );
        return 1;
      }
      throw error;
    } finally {
      process.off('SIGINT', onSignal);
    }
  },
};
