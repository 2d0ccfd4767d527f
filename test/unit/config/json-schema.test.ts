/**
 * The JSON Schema editors use (`certprov config schema`, committed as config/certprov.schema.json) is generated from
 * the validator, is current, and every shipped configuration validates against it — judged by an independent JSON
 * Schema validator (ajv), with the `yaml-language-server` modeline pointing at it.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import Ajv from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configJsonSchema, JSON_SCHEMA_FILE } from '../../../src/config/json-schema.ts';
import { certprov } from '../../support/certprov-cli.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const SHIPPED = [
  'config/local.example.yaml',
  'config/digicert.example.yaml',
  'config/azure-key-vault.example.yaml',
  'config/google-cas.example.yaml',
  'config/google-kms.example.yaml',
  'deploy/overlays/digicert/config.yaml',
  'deploy/overlays/azure-key-vault/config.yaml',
  'deploy/overlays/google-cas/config.yaml',
];

function validator() {
  // ajv does not know the `format`s zod writes (uri, email, …): their values are checked by check-config.
  return new Ajv({ allErrors: true, unknownFormats: 'ignore' }).compile(configJsonSchema());
}

describe('the configuration JSON Schema', () => {
  it('certprov config schema prints it, and the committed copy is current', async () => {
    const run = await certprov(['config', 'schema']);
    expect(run.code, run.stderr).toBe(0);
    const printed = JSON.parse(run.stdout) as unknown;
    expect(printed).toEqual(configJsonSchema());
    expect(
      JSON.parse(await readFile(path.join(ROOT, JSON_SCHEMA_FILE), 'utf8')),
      'the schema changed: run `npm run config-schema` and commit config/certprov.schema.json',
    ).toEqual(printed);
  });

  it.each(SHIPPED)('%s validates against it and names it in a yaml-language-server modeline', async (file) => {
    const text = await readFile(path.join(ROOT, file), 'utf8');
    const modeline = /^# yaml-language-server: \$schema=(\S+)$/m.exec(text.split('\n')[0] ?? '');
    expect(modeline, 'first line').not.toBeNull();
    expect(path.resolve(path.dirname(path.join(ROOT, file)), modeline?.[1] ?? '')).toBe(
      path.join(ROOT, JSON_SCHEMA_FILE),
    );
    const validate = validator();
    expect(validate(parse(text)), JSON.stringify(validate.errors)).toBe(true);
  });

  it.each([
    ['an unknown key', { profils: {} }],
    ['a log level that does not exist', { log: { level: 'verbose' } }],
    [
      'an inline secret',
      {
        caConnections: {
          dc: {
            type: 'digicert',
            apiKey: 'secret',
            product: 'client_authentication_plus',
            organizationId: 1,
            processIdCustomFieldId: 2,
          },
        },
      },
    ],
    ['an unknown CA type', { caConnections: { x: { type: 'vault-of-wonders' } } }],
  ])('refuses %s', (_, change) => {
    const config = {
      caConnections: { trial_ca: { type: 'local', directory: './ca' } },
      profiles: { p: { subject: 'CN={{device.serialNumber}}', validity: '30d' } },
      ...change,
    };
    expect(validator()(config)).toBe(false);
  });
});
