/**
 * What a CertCentral order can express, checked against a configured profile at config load (DESIGN.md §4: a
 * profile wired to a connection that cannot honour it is rejected before the first device). The generic check in
 * src/config/load.ts already limits subject attributes, SAN types, validity and EKUs to the capabilities; these are
 * the rules the capabilities cannot state:
 *
 * - DigiCert writes the subject from the order body, never from the CSR: `common_name` (exactly one CN, required),
 *   `organization_units[]` (OU), and O from the validated organization — so a profile's O must be a fixed text
 *   equal to that organization's name (`organizationName`), or the certificate would disagree with the profile.
 * - Multi-valued RDNs (`CN=a+OU=b`) cannot be expressed in an order.
 * - Client products require `emails[]`: at least one email SAN, and it must be the user's primary email
 *   (`{{user.userPrimaryEmail}}`): the product issues to the owner of that mailbox. A device profile — one whose
 *   templates use no `user.*` variable, so it serves chromeOsDevice processes, which carry no email — cannot be
 *   ordered from a product that serves users only; the problem names `caConnections`, the wiring to fix.
 *   SSL products copy `common_name` into the SANs, so the CN must also be one of the profile's DNS SANs.
 * - The product, not the profile, decides the EKUs: the profile must ask for exactly the product's.
 * - Validity is ordered in whole days (`validity_days` / `custom_expiration_date`), at least one — or, for a product
 *   DigiCert documents only `validity_years` for, in whole years of 365 days.
 */
import type { ProfileProblem, ProfileTemplate } from '../types.ts';
import type { ValueTemplate } from '../../pki/subject-template.ts';
import { validityFieldOf, type DigicertConfig } from './config.ts';
import { DIGICERT_PRODUCTS } from './products.ts';
import { DAY_MS } from '../../time.ts';

/** Products that can serve device processes, for messages. */
const DEVICE_PRODUCTS = Object.entries(DIGICERT_PRODUCTS)
  .filter(([, p]) => p.serves.includes('devices'))
  .map(([id]) => id);

/** Every template of a profile: subject attribute values and SAN values. */
function templatesOf(profile: ProfileTemplate): ValueTemplate[] {
  return [...profile.subject.flat().map((a) => a.value), ...profile.subjectAltNames.map((s) => s.value)];
}

function literalOf(template: ValueTemplate): string | undefined {
  return template.variables.length === 0 ? template.source : undefined;
}

export function digicertProfileProblems(config: DigicertConfig, profile: ProfileTemplate): ProfileProblem[] {
  const product = DIGICERT_PRODUCTS[config.product];
  if (product === undefined) return [];
  const problems: ProfileProblem[] = [];
  const attributes = profile.subject.flat();

  if (profile.subject.some((rdn) => rdn.length > 1)) {
    problems.push({ field: 'subject', message: 'cannot order multi-valued RDNs (write CN=…,OU=…, not CN=…+OU=…)' });
  }
  const commonNames = attributes.filter((a) => a.type === 'CN');
  if (commonNames.length !== 1) {
    problems.push({
      field: 'subject',
      message: `needs exactly one CN (the order's common_name), found ${commonNames.length}`,
    });
  }
  const organizations = attributes.filter((a) => a.type === 'O');
  if (organizations.length > 1) {
    problems.push({ field: 'subject', message: 'takes at most one O (the validated organization)' });
  }
  for (const o of organizations) {
    const literal = literalOf(o.value);
    if (literal === undefined) {
      problems.push({
        field: 'subject',
        message: `writes O from the validated organization ${config.organizationId}: O cannot use template variables`,
      });
    } else if (config.organizationName === undefined) {
      problems.push({
        field: 'subject',
        message: `writes O from the validated organization ${config.organizationId}: set organizationName on the connection to the organization's exact name, or drop O from the profile`,
      });
    } else if (literal !== config.organizationName) {
      problems.push({
        field: 'subject',
        message: `writes O="${config.organizationName}" (the validated organization), not O="${literal}"`,
      });
    }
  }

  const sans = profile.subjectAltNames;
  const servesDevices = !templatesOf(profile).some((t) => t.variables.some((v) => v.startsWith('user.')));
  if (servesDevices && !product.serves.includes('devices')) {
    problems.push({
      field: 'caConnections',
      message: `orders ${config.product}, which issues to users only (its emails[] are the user's mailbox); this profile uses no user.* variable, so it serves device processes, which carry no email: wire it to a connection that issues to devices (product ${DEVICE_PRODUCTS.join(', ')}, or another CA type)`,
    });
  } else if (product.kind === 'client' && !sans.some((s) => s.type === 'email')) {
    problems.push({
      field: 'subjectAltNames',
      message: `orders ${config.product}, which requires at least one email SAN (the order's emails[])`,
    });
  } else if (
    product.kind === 'client' &&
    !sans.some((s) => s.type === 'email' && s.value.variables.includes('user.userPrimaryEmail'))
  ) {
    problems.push({
      field: 'subjectAltNames',
      message: `orders ${config.product}, whose emails[] must be the user's mailbox: add {email: "{{user.userPrimaryEmail}}"}`,
    });
  }
  if (product.kind === 'ssl') {
    const cn = commonNames[0];
    if (cn !== undefined && !sans.some((s) => s.type === 'dns' && s.value.source === cn.value.source)) {
      problems.push({
        field: 'subjectAltNames',
        message: `orders ${config.product}, which copies the CN into the DNS SANs: add {dns: "${cn.value.source}"}`,
      });
    }
  }

  const wanted = [...profile.extendedKeyUsages].sort();
  const given = [...product.extendedKeyUsages].sort();
  if (wanted.length !== given.length || wanted.some((oid, i) => oid !== given[i])) {
    problems.push({
      field: 'extendedKeyUsages',
      message: `orders ${config.product}, whose certificates carry exactly the EKUs ${given.join(', ')}`,
    });
  }

  if (validityFieldOf(config) === 'validity_years') {
    if (profile.validityMs < 365 * DAY_MS || profile.validityMs % (365 * DAY_MS) !== 0) {
      problems.push({
        field: 'validity',
        message: `orders ${config.product} in whole years only (validity_years): write 365d or 730d`,
      });
    }
  } else if (profile.validityMs < DAY_MS || profile.validityMs % DAY_MS !== 0) {
    problems.push({ field: 'validity', message: 'orders whole days only (validity_days): write e.g. 365d' });
  }
  return problems;
}
