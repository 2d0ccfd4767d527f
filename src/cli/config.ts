/** `certprov config schema` — the JSON Schema of the configuration file, for editors. */
import { parseOptions, UsageError, type Command } from './command.ts';

export const configCommand: Command = {
  name: 'config',
  usage: 'config schema',
  summary: 'print the JSON Schema of the configuration file (editor validation and completion)',
  help: `certprov config schema

Prints the JSON Schema (draft-07) of the configuration file, generated from the validator itself. Editors with the
YAML language server validate and complete a configuration that starts with

  # yaml-language-server: $schema=PATH-OR-URL-OF/certprov.schema.json

as the examples in config/ do (config/certprov.schema.json is this output, kept current by a test). The schema
knows the shape, types, enums and defaults; \`certprov check-config\` still checks the rest (templates, what each CA
can issue, files and secrets, placeholders).`,
  async run(args) {
    const { positionals } = parseOptions(args, {});
    if (positionals[0] !== 'schema' || positionals.length !== 1) throw new UsageError('say `certprov config schema`');
    const { configJsonSchema } = await import('../config/json-schema.ts');
    console.log(JSON.stringify(configJsonSchema(), null, 2));
    return 0;
  },
};
