import path from 'node:path';
import { selfSigningCapabilities } from '../issuing-core.ts';
import type { CaBackend } from '../types.ts';
import { localCaConfigSchema, type LocalCaConfig } from './config.ts';
import { LOCAL_CA_FILES } from './init.ts';
import { LocalCa } from './local-ca.ts';

/** The file-backed CA: issues synchronously, can carry any subject, SAN type and EKU. */
export const localBackend: CaBackend<LocalCaConfig> = {
  type: 'local',
  faultComponent: 'local-ca',
  configSchema: localCaConfigSchema,
  capabilities: (config) => selfSigningCapabilities(config.maxValidityDays),
  create: (name, config, deps) => LocalCa.open(name, config, deps),
  requiredFiles: (config) =>
    [LOCAL_CA_FILES.key, LOCAL_CA_FILES.certificate].map((file) => ({
      field: 'directory',
      file: path.join(config.directory, file),
      hint: `create the CA with \`certprov local-ca init --dir ${config.directory}\` or fix directory`,
    })),
};
