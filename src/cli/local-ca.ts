/**
 * `certprov local-ca init` — creates the file-backed CA used by `type: local` connections.
 */
import { initLocalCa } from '../ca/local/init.ts';
import { parseOptions, UsageError, type Command } from './command.ts';

/** What `local-ca init` says plainly after creating the CA (issue 16, item 9). */
export const LAB_ONLY_WARNING =
  'certprov local-ca init: this is a self-signed root that issues device certificates directly — for trials and labs only. ' +
  'Its key lives in a file on this disk, and replacing it means re-trusting every RADIUS/VPN/Wi-Fi server. ' +
  'For production, use an issuing CA under an offline root (type: azure-key-vault or google-kms, or DigiCert).';

export const localCaCommand: Command = {
  name: 'local-ca',
  usage: 'local-ca init --dir DIR [--key ec|rsa]',
  summary: 'create a local file-backed CA (trials, tests, air-gapped labs)',
  help: `certprov local-ca init --dir DIR [--key ec|rsa] [--subject DN] [--validity-days N] [--force]

Creates a CA key (EC P-256 or RSA-3072) and a self-signed CA certificate in DIR: ca.key.pem (PKCS#8, mode 0600)
and ca.cert.pem. A \`type: local\` CA connection with \`directory: DIR\` then issues from it; every issued
certificate is journaled in DIR/issued.jsonl. Refuses to overwrite an existing CA unless --force.

For trials and labs only: a self-signed root that issues device certificates directly keeps its key on this
disk and cannot be replaced without re-trusting every relying party. Production uses an issuing CA under an
offline root (type: azure-key-vault or google-kms, or a managed CA).

Options:
  --dir DIR            where to create the CA (required)
  --key ec|rsa         CA key type (default ec)
  --subject DN         CA subject (default "CN=certprov local CA")
  --validity-days N    CA certificate lifetime in days (default 3650)
  --force              replace an existing CA in DIR`,
  async run(args) {
    const { values, positionals } = parseOptions(args, {
      dir: { type: 'string' },
      key: { type: 'string', default: 'ec' },
      subject: { type: 'string' },
      'validity-days': { type: 'string' },
      force: { type: 'boolean', default: false },
    });
    if (positionals[0] !== 'init' || positionals.length !== 1)
      throw new UsageError('expected: local-ca init --dir DIR');
    if (values.dir === undefined) throw new UsageError('--dir is required');
    if (values.key !== 'ec' && values.key !== 'rsa') throw new UsageError('--key must be ec or rsa');
    const validityDays = values['validity-days'] === undefined ? undefined : Number(values['validity-days']);
    if (validityDays !== undefined && (!Number.isInteger(validityDays) || validityDays <= 0)) {
      throw new UsageError('--validity-days must be a positive whole number');
    }
    const result = await initLocalCa({
      directory: values.dir,
      keyType: values.key,
      ...(values.subject === undefined ? {} : { subject: values.subject }),
      ...(validityDays === undefined ? {} : { validityDays }),
      force: values.force,
    });
    console.log(JSON.stringify(result, null, 2));
    // stdout stays the JSON result (scripts read it); the warning goes to stderr.
    console.error(LAB_ONLY_WARNING);
    return 0;
  },
};
