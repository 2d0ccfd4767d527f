/**
 * Renders a configured profile for one process: template variables come from the process's chromeOsDevice or
 * chromeOsUserSession (with the affiliated user's nested device), never from anything the device sent.
 */
import type { CertificateProvisioningProcess, ProcessRef } from '../chrome/types.ts';
import type { CompiledProfile } from '../config/load.ts';
import { renderSubject, renderSubjectAltNames, type TemplateVariables } from '../pki/subject-template.ts';
import type { RenderedProfile } from '../pki/types.ts';

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

export function renderProfile(profile: CompiledProfile, vars: TemplateVariables): RenderedProfile {
  return {
    name: profile.name,
    subject: renderSubject(profile.subject, vars, profile.name),
    subjectAltNames: renderSubjectAltNames(profile.subjectAltNames, vars, profile.name),
    validityMs: profile.validityMs,
    extendedKeyUsages: profile.extendedKeyUsages,
  };
}
