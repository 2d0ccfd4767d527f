/**
 * Renders a configured profile for one process: template variables come from the process's chromeOsDevice or
 * chromeOsUserSession (with the affiliated user's nested device), never from anything the device sent.
 */
import type { CertificateProvisioningProcess, ProcessRef } from '../chrome/types.ts';
import type { CompiledProfile } from '../config/load.ts';
import { renderSubject, renderSubjectAltNames, type TemplateVariables } from '../pki/subject-template.ts';
import { keyUsagesForDevice } from '../pki/key-usage.ts';
import type { KeyType, RenderedProfile } from '../pki/types.ts';

export function templateVariables(process: CertificateProvisioningProcess, ref: ProcessRef): TemplateVariables {
  const user = process.chromeOsUserSession;
  const device = process.chromeOsDevice ?? user?.chromeOsDevice;
  return {
    ...(device === undefined ? {} : { device }),
    ...(user === undefined ? {} : { user }),
    process: {
      id: ref.processId,
      customer: ref.customer,
      ...(process.provisioningProfileId === undefined ? {} : { provisioningProfileId: process.provisioningProfileId }),
    },
  };
}

/**
 * @throws TerminalError `template_*` for a value the process lacks or that breaks its bound; `key_policy` when the
 *   profile's keyUsages do not fit the device key type.
 */
export function renderProfile(profile: CompiledProfile, vars: TemplateVariables, keyType: KeyType): RenderedProfile {
  return {
    name: profile.name,
    subject: renderSubject(profile.subject, vars, profile.name),
    subjectAltNames: renderSubjectAltNames(profile.subjectAltNames, vars, profile.name),
    validityMs: profile.validityMs,
    extendedKeyUsages: profile.extendedKeyUsages,
    keyUsages: keyUsagesForDevice(profile.name, profile.keyUsages, keyType),
  };
}
