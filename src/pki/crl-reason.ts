/**
 * CRLReason (RFC 5280 §5.3.1): the reason codes a revocation may carry. `certprov revoke --reason` takes the names;
 * the CRL entry's reasonCode extension carries the numbers. Value 7 is unused in the RFC.
 */
export const CRL_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;

export type CrlReason = keyof typeof CRL_REASONS;

export function isCrlReason(value: string): value is CrlReason {
  return Object.hasOwn(CRL_REASONS, value);
}
