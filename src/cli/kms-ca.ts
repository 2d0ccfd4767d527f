/**
 * `certprov kms-ca csr` — the CSR of a Cloud KMS-held issuing CA (src/ca/google-kms/). The key version and the
 * endpoint come from a `type: google-kms` connection of the configuration file, and the request authenticates with
 * Application Default Credentials exactly as the adapter does. The CSR is signed through KMS (one AsymmetricSign)
 * and verified against the key version's public key before it is written; the parent CA signs it as a CA
 * certificate, which becomes the connection's `caCertificateFile`.
 */
import { writeFile } from 'node:fs/promises';
import { DeploymentFaultError, RetryableError } from '../errors.ts';
import { createKmsClient } from '../ca/google-kms/client.ts';
import { kmsCaConfigSchema } from '../ca/google-kms/config.ts';
import { kmsCertificationRequest } from '../ca/google-kms/kms-ca.ts';
import { parseSubjectTemplate, renderSubject } from '../pki/subject-template.ts';
import { configPath, parseOptions, UsageError, type Command } from './command.ts';
import { readConnectionBlock } from './connection-block.ts';

const HELP = `certprov kms-ca csr --config FILE [--connection NAME] --subject DN [--out FILE]

Writes a PKCS#10 CSR for the Cloud KMS key version of a \`type: google-kms\` connection, signed through KMS. Have
your parent CA sign it as a CA certificate (basicConstraints=critical,CA:true,pathlen:0;
keyUsage=critical,keyCertSign,cRLSign), save the certificate as the connection's caCertificateFile (and the
parent's chain as chainFile); the adapter checks at start that the certificate holds the key version's key.
caCertificateFile need not exist yet.

Options:
  --config FILE        the adapter configuration (or CERTPROV_CONFIG)
  --connection NAME    which google-kms connection (needed when there are several)
  --subject DN         the CA's subject, e.g. "CN=Example Device Issuing CA 2026,O=Example" (required)
  --out FILE           write the CSR to FILE instead of standard output

Exit codes: 0 written, 1 KMS refused or failed (the message says what to do), 2 bad usage or configuration.`;

/** The connection block as far as the CSR needs it: caCertificateFile is what the CSR is for, so it may be absent. */
const csrConfigSchema = kmsCaConfigSchema.partial({ caCertificateFile: true });

export const kmsCaCommand: Command = {
  name: 'kms-ca',
  usage: 'kms-ca csr --config FILE --subject DN',
  summary: 'write the CSR of the issuing CA whose key is in Cloud KMS',
  help: HELP,
  async run(args) {
    const [sub, ...rest] = args;
    if (sub !== 'csr') throw new UsageError('expected: csr');
    const { values } = parseOptions(rest, {
      config: { type: 'string' },
      connection: { type: 'string' },
      subject: { type: 'string' },
      out: { type: 'string' },
    });
    if (values.subject === undefined || values.subject.trim() === '') throw new UsageError('csr needs --subject DN');
    const template = parseSubjectTemplate(values.subject);
    if (template.some((rdn) => rdn.some((attribute) => attribute.value.variables.length > 0))) {
      throw new UsageError('--subject cannot contain {{placeholders}}');
    }
    // No placeholders, so rendering only validates lengths and string types.
    const subject = renderSubject(template, { process: { id: '', customer: '' } }, '--subject');
    const { name, config } = await readConnectionBlock(
      configPath(values.config),
      'google-kms',
      values.connection,
      csrConfigSchema,
    );

    const controller = new AbortController();
    const onSignal = () => controller.abort(new Error('interrupted'));
    process.once('SIGINT', onSignal);
    const client = await createKmsClient({ endpoint: config.endpoint, timeoutMs: config.requestTimeout });
    try {
      const csr = await kmsCertificationRequest(client, config.keyVersion, subject, controller.signal);
      if (values.out !== undefined) await writeFile(values.out, csr.pem);
      else process.stdout.write(csr.pem);
      console.error(
        [
          `CSR for ${config.keyVersion} (${csr.kmsAlgorithm}, ${csr.protectionLevel}) signed ${csr.algorithm}` +
            (values.out === undefined ? '.' : `, written to ${values.out}.`),
          'Next: have the parent CA sign it as a CA certificate (basicConstraints=critical,CA:true,pathlen:0; ' +
            'keyUsage=critical,keyCertSign,cRLSign),',
          `then set caConnections.${name}.caCertificateFile to that certificate (and chainFile to its parents).`,
        ].join('\n'),
      );
      return 0;
    } catch (error) {
      if (error instanceof DeploymentFaultError) {
        console.error(
          `certprov kms-ca csr: ${error.message}${error.hint === undefined ? '' : `\n  what to do: ${error.hint}`}`,
        );
        return 1;
      }
      if (error instanceof RetryableError) {
        console.error(
          `certprov kms-ca csr: ${error.message}\n  what to do: KMS is busy or unreachable; try again later`,
        );
        return 1;
      }
      throw error;
    } finally {
      process.off('SIGINT', onSignal);
      await client.close();
    }
  },
};
