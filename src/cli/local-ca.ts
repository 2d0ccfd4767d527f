/**
 * `certprov local-ca init` — creates the file-backed CA used by `type: local` connections.
 */
import { initLocalCa } from '../ca/local/init.ts';
import { parseOptions, UsageError, type Command } from './command.ts';

/** What `local-ca init` says plainly after creating the CA (issue 16, item 9). */
export const LAB_ONLY_WARNING =
  'certprov local-ca init: this is a self-signed root that issues device certificates directly — for trials and labs only. ' +
  'Its key lives in a file on this disk, and replacing it means re-trusting every RADIUS/VPN/Wi-Fi server. ' +
  'For a lab in the production shape, run it with --intermediate (a root and an issuing CA). ' +
  'For production, use an issuing CA under an offline root (type: azure-key-vault or google-kms, or DigiCert).';

/** What `local-ca init --intermediate` says after creating the root and the issuing CA. */
export const INTERMEDIATE_NOTE =
  'certprov local-ca init: created a root (root.cert.pem) and an issuing CA signed by it (ca.cert.pem, pathLen 0); ' +
  'the adapter issues from the issuing CA. Relying parties trust root.cert.pem and need ca.cert.pem as the ' +
  'intermediate. Move root.key.pem off this disk: it is only needed to sign the next issuing CA. ' +
  'Still a lab: the issuing key is a file; production keeps it in an HSM (type: azure-key-vault or google-kms).';

export const localCaCommand: Command = {
  name: 'local-ca',
  usage: 'local-ca init --dir DIR [--key ec|rsa] [--intermediate]',
  summary: 'create a local file-backed CA (trials, tests, air-gapped labs)',
  help: `certprov local-ca init --dir DIR [--key ec|rsa] [--subject DN] [--validity-days N] [--force]
                      [--intermediate [--root-subject DN]]

Creates a CA key (EC P-256 or RSA-3072) and a self-signed CA certificate in DIR: ca.key.pem (PKCS#8, mode 0600)
and ca.cert.pem. A \`type: local\` CA connection with \`directory: DIR\` then issues from it; every issued
certificate is journaled in DIR/issued.jsonl. Refuses to overwrite an existing CA unless --force.

With --intermediate, ca.key.pem/ca.cert.pem are an issuing CA (pathLen 0) signed by a new root written as
root.key.pem/root.cert.pem (pathLen 1, twice the validity): leaves chain root -> issuing -> leaf, the production
shape. Relying parties trust root.cert.pem; move root.key.pem offline.

For trials and labs only: a self-signed root that issues device certificates directly keeps its key on this
disk and cannot be replaced without re-trusting every relying party. Production uses an issuing CA under an
offline root (type: azure-key-vault or google-kms, or a managed CA).

Options:
  --dir DIR            where to create the CA (required)
  --key ec|rsa         CA key type (default ec)
  --subject DN         CA subject (default "CN=certprov local CA")
  --validity-days N    CA certificate lifetime in days (default 3650)
  --force              replace an existing CA in DIR
  --intermediate       a root plus an issuing CA signed by it, instead of one self-signed CA
  --root-subject DN    the root's subject with --intermediate (default "CN=certprov local root CA …")`,
  async run(args) {
    const { values, positionals } = parseOptions(args, {
      dir: { type: 'string' },
      key: { type: 'string', default: 'ec' },
      subject: { type: 'string' },
      'validity-days': { type: 'string' },
      force: { type: 'boolean', default: false },
      intermediate: { type: 'boolean', default: false },
      'root-subject': { type: 'string' },
    });
    if (positionals[0] !== 'init' || positionals.length !== 1)
      throw new UsageError('expected: local-ca init --dir DIR');
    if (values.dir === undefined) throw new UsageError('--dir is required');
    if (values.key !== 'ec' && values.key !== 'rsa') throw new UsageError('--key must be ec or rsa');
    if (values['root-subject'] !== undefined && !values.intermediate) {
      throw new UsageError('--root-subject needs --intermediate');
    }
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
      intermediate: values.intermediate,
      ...(values['root-subject'] === undefined ? {} : { rootSubject: values['root-subject'] }),
    });
    console.log(JSON.stringify(result, null, 2));
    // stdout stays the JSON result (scripts read it); the warning goes to stderr.
    console.error(values.intermediate ? INTERMEDIATE_NOTE : LAB_ONLY_WARNING);
    return 0;
  },
};
