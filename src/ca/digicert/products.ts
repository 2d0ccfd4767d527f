/**
 * The CertCentral products this backend can order, and what each one puts into a certificate. DigiCert, not the
 * CSR, decides the certificate's contents (the Services API reads nothing from the CSR; reference notes): the
 * product fixes the extended key usages and which SAN type the order body can carry, so a profile is checked
 * against the product at config load (DESIGN.md §4), not at the first device.
 *
 * Deliberately not here: the public S/MIME products (`client_premium`, `client_email_security_plus`,
 * `client_digital_signature_plus`, `class1_smime`). Since July 2025 DigiCert requires a natural person's given name
 * and surname (or a pseudonym) on them and sets the common name itself, which a Chrome provisioning process cannot
 * supply; they would be refused per order.
 */
import { EXTENDED_KEY_USAGES } from '../../pki/extended-key-usage.ts';
import type { SubjectAltNameType } from '../../pki/types.ts';

/** The order body's validity fields (DigiCert: custom_expiration_date > validity_days > validity_years). */
export const VALIDITY_FIELDS = ['validity_days', 'custom_expiration_date', 'validity_years'] as const;
export type ValidityField = (typeof VALIDITY_FIELDS)[number];

export interface DigicertProduct {
  /** `client`: `certificate.emails[]` carries email SANs. `ssl`: `certificate.dns_names[]` carries DNS SANs. */
  readonly kind: 'client' | 'ssl';
  /** The EKUs DigiCert puts into every certificate of this product (OIDs). */
  readonly extendedKeyUsages: readonly string[];
  /** The SAN type the order body can carry. */
  readonly subjectAltNameType: SubjectAltNameType;
  /** Longest validity DigiCert sells for the product, in days (the configuration may lower it). */
  readonly maxValidityDays: number;
  /** Private-CA products need `certificate.ca_cert_id` (the issuing CA of the private hierarchy). */
  readonly needsCaCertId: boolean;
  /**
   * The validity fields DigiCert's order page for the product documents; the first is the default. Another field
   * is refused at config load rather than left for DigiCert to refuse (or silently ignore) per order.
   */
  readonly validityFields: readonly ValidityField[];
  /**
   * Which Chrome processes a profile on this product can serve: `users` (chromeOsUserSession) and/or `devices`
   * (chromeOsDevice). A client product's `emails[]` are the certificate holder's mailbox — a user's primary email;
   * a device process carries none, so a device profile cannot be ordered there (profile-checks.ts).
   */
  readonly serves: readonly ('users' | 'devices')[];
  /**
   * The product's order page documents `renewal_of_order_id`: a renewal names the order it renews, so CertCentral
   * shows one lineage and bills it as a renewal. False: every renewal is a new order (docs/backends/digicert.md).
   */
  readonly linksRenewals: boolean;
}

const CLIENT_AUTH = EXTENDED_KEY_USAGES.clientAuth as string;
const SERVER_AUTH = EXTENDED_KEY_USAGES.serverAuth as string;

export const DIGICERT_PRODUCTS: Readonly<Record<string, DigicertProduct>> = {
  /** Authentication Plus: client authentication only (not S/MIME); a validated organization; up to 3 years. */
  client_authentication_plus: {
    kind: 'client',
    extendedKeyUsages: [CLIENT_AUTH],
    subjectAltNameType: 'email',
    maxValidityDays: 1095,
    needsCaCertId: false,
    // "Order client certificate" documents validity_years (1–3) and, since the API changes that added them to
    // client certificates, validity_days and custom_expiration_date.
    validityFields: ['validity_days', 'custom_expiration_date', 'validity_years'],
    serves: ['users'],
    // "Order client certificate" takes renewal_of_order_id (the order being renewed).
    linksRenewals: true,
  },
  /** Private SSL Plus: a private hierarchy's TLS certificate (server and client authentication). */
  private_ssl_plus: {
    kind: 'ssl',
    extendedKeyUsages: [SERVER_AUTH, CLIENT_AUTH],
    subjectAltNameType: 'dns',
    maxValidityDays: 825,
    needsCaCertId: true,
    // "Order Private SSL" shows only years (`validity_years`, newer examples `order_validity.years`); DigiCert does
    // not document validity_days or custom_expiration_date for it, so whole years it is.
    validityFields: ['validity_years'],
    // DNS names built from device fields (d-{{device.deviceDirectoryApiId}}.devices.example.com); user sessions
    // too, from an affiliated user's device or the user's directory id.
    serves: ['devices', 'users'],
    // "Order Private SSL" documents no renewal linkage: each renewal is a new order in the private hierarchy.
    linksRenewals: false,
  },
};

export type DigicertProductId = keyof typeof DIGICERT_PRODUCTS;

export const DIGICERT_PRODUCT_IDS = Object.keys(DIGICERT_PRODUCTS) as readonly string[];
