/**
 * The body of `POST /order/certificate/{product}` for one process. The Services API reads nothing from the CSR
 * (reference notes), so every field the certificate needs is sent explicitly, from the profile as rendered when the
 * device signed (never from the CSR, never re-rendered), and the Chrome process id goes into the configured
 * custom field: the key that finds the order again after a crash (DESIGN.md §5).
 */
import type { IssueRequest } from '../types.ts';
import { TerminalError } from '../../errors.ts';
import { encodePem } from '../../pki/pem.ts';
import { maxValidityDaysOf, validityFieldOf, type DigicertConfig } from './config.ts';
import { DIGICERT_PRODUCTS } from './products.ts';
import { DAY_MS } from '../../time.ts';

export interface OrderBody {
  readonly certificate: {
    readonly common_name: string;
    readonly emails?: readonly string[];
    readonly dns_names?: readonly string[];
    readonly organization_units?: readonly string[];
    readonly csr: string;
    readonly signature_hash: string;
    readonly ca_cert_id?: string;
  };
  readonly organization: { readonly id: number };
  readonly container?: { readonly id: number };
  readonly validity_days?: number;
  readonly validity_years?: number;
  readonly custom_expiration_date?: string;
  readonly skip_approval: boolean;
  readonly payment_method: string;
  readonly comments: string;
  readonly disable_renewal_notifications: boolean;
  /** The order this one renews (products that link renewals, when the inventory knows the predecessor's order). */
  readonly renewal_of_order_id?: number;
  readonly custom_fields: readonly { readonly metadata_id: number; readonly value: string }[];
}

/** Renders `commentsTemplate`; its placeholders were checked at config load. */
export function renderComments(
  template: string,
  request: Pick<IssueRequest, 'processId' | 'correlationId' | 'caConnection' | 'profile'>,
): string {
  const values: Record<string, string> = {
    processId: request.processId,
    correlationId: request.correlationId,
    profile: request.profile.name,
    caConnection: request.caConnection,
  };
  return template.replace(/\{\{\s*([A-Za-z]+)\s*\}\}/g, (whole, name: string) => values[name] ?? whole);
}

/** Whole days of validity to order: the profile's, within the connection's maximum, at least one. */
export function validityDays(config: DigicertConfig, validityMs: number): number {
  return Math.max(1, Math.min(maxValidityDaysOf(config), Math.floor(validityMs / DAY_MS)));
}

function notOrderable(detail: string): TerminalError {
  return new TerminalError(`digicert: cannot order: ${detail}`, {
    reason: 'template_invalid_value',
    userMessage: 'The certificate profile does not fit the certificate authority. Ask your administrator.',
  });
}

const YEAR_DAYS = 365;

/** The one validity field the product takes (profile-checks.ts made sure a years product gets whole years). */
function validityOf(
  field: ReturnType<typeof validityFieldOf>,
  days: number,
  now: number,
): Pick<OrderBody, 'validity_days' | 'validity_years' | 'custom_expiration_date'> {
  switch (field) {
    case 'validity_days':
      return { validity_days: days };
    case 'validity_years':
      return { validity_years: Math.max(1, Math.floor(days / YEAR_DAYS)) };
    case 'custom_expiration_date':
      return { custom_expiration_date: new Date(now + days * DAY_MS).toISOString().slice(0, 10) };
  }
}

/**
 * The order a renewal links to: the predecessor's DigiCert order id from the inventory, when the product takes the
 * link. A predecessor from an older configuration without an order id (or a first issuance) links nothing.
 */
export function renewalOrderId(config: DigicertConfig, request: IssueRequest): number | undefined {
  if (DIGICERT_PRODUCTS[config.product]?.linksRenewals !== true) return undefined;
  const orderId = request.renews?.caRef?.orderId;
  return typeof orderId === 'number' && Number.isSafeInteger(orderId) && orderId > 0 ? orderId : undefined;
}

/** Builds the order body. `now` (epoch ms) dates a `custom_expiration_date`. */
export function buildOrderBody(config: DigicertConfig, request: IssueRequest, now: number): OrderBody {
  const product = DIGICERT_PRODUCTS[config.product];
  if (product === undefined) throw new Error(`unknown DigiCert product ${config.product}`);
  const attributes = request.profile.subject.flat();
  const commonName = attributes.find((a) => a.type === 'CN')?.value;
  // Config load makes sure of a CN; a record rendered under an older configuration may still lack one.
  if (commonName === undefined) throw notOrderable('the rendered profile has no CN');
  const organizationUnits = attributes.filter((a) => a.type === 'OU').map((a) => a.value);
  const sans = request.profile.subjectAltNames;
  const emails = sans.filter((s) => s.type === 'email').map((s) => s.value);
  const dnsNames = sans.filter((s) => s.type === 'dns' && s.value !== commonName).map((s) => s.value);
  if (product.kind === 'client' && emails.length === 0) throw notOrderable(`${config.product} needs an email SAN`);

  const days = validityDays(config, request.profile.validityMs);
  const validity = validityOf(validityFieldOf(config), days, now);
  const renewalOf = renewalOrderId(config, request);

  return {
    certificate: {
      common_name: commonName,
      ...(product.kind === 'client' ? { emails } : { dns_names: dnsNames }),
      ...(organizationUnits.length === 0 ? {} : { organization_units: organizationUnits }),
      csr: encodePem('CERTIFICATE REQUEST', request.csrDer),
      signature_hash: config.signatureHash,
      ...(config.caCertId === undefined ? {} : { ca_cert_id: config.caCertId }),
    },
    organization: { id: config.organizationId },
    ...(config.containerId === undefined ? {} : { container: { id: config.containerId } }),
    ...validity,
    skip_approval: config.skipApproval,
    payment_method: config.paymentMethod,
    comments: renderComments(config.commentsTemplate, request),
    // Chrome renews device certificates itself; renewal e-mails to the order contact would only be noise.
    disable_renewal_notifications: true,
    ...(renewalOf === undefined ? {} : { renewal_of_order_id: renewalOf }),
    custom_fields: [{ metadata_id: config.processIdCustomFieldId, value: request.processId }],
  };
}
