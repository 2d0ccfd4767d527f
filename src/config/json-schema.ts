/**
 * The configuration file's JSON Schema, generated from the same zod schemas that validate it (zod 4's
 * `z.toJSONSchema`), so editors validate and complete `certprov.yaml` as `check-config` would start to.
 * CA connections are the union of every registered backend's own schema. Checks the schema cannot express
 * (templates, capabilities, files, placeholders) remain `check-config`'s.
 */
import { z } from 'zod';
import { CA_BACKENDS } from '../ca/registry.ts';
import { rawConfigSchema } from './schema.ts';

/** Where the committed copy lives; the examples' `yaml-language-server` modeline points at it. */
export const JSON_SCHEMA_FILE = 'config/certprov.schema.json';

export function configJsonSchema(): Record<string, unknown> {
  const connections = [...CA_BACKENDS.values()].map((backend) => backend.configSchema);
  const connection =
    connections.length === 1 ? connections[0] : z.union(connections as unknown as [z.ZodType, z.ZodType]);
  const schema = rawConfigSchema.extend({
    caConnections: z
      .record(z.string().min(1), connection ?? z.never())
      .describe('CA connections by the CA connection adapter config reference; `type` picks the backend'),
  });
  return {
    ...z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-7' }),
    title: 'certprov-adapter configuration',
  };
}
