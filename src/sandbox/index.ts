/** The sandbox's public API: a simulated Chrome tenant for `certprov demo` and the tests. */
export { SandboxTenant } from './tenant.ts';
export type { ProcessMix, RequestCounts, SandboxTenantOptions, TenantStats } from './tenant.ts';
export { SIGN_DATA_METADATA_TYPE, SIGN_DATA_RESPONSE_TYPE, generatedSubject } from './simulated-process.ts';
export type {
  CreateProcessOptions,
  EcdsaEncoding,
  ProcessCounters,
  ResourceShape,
  SandboxSubject,
} from './simulated-process.ts';
export { ALREADY_CLAIMED_MESSAGE } from './api-errors.ts';
export type { GoogleErrorBody, GoogleRpcStatus } from './api-errors.ts';
export { SANDBOX_METHODS } from './fault-injection.ts';
export type { FaultSettings, SandboxMethod } from './fault-injection.ts';
export { encodeProcessCreatedEvent, pubsubTopicSink } from './notifications.ts';
export type {
  NotificationEncoding,
  NotificationOptions,
  NotificationSink,
  ProcessCreatedEvent,
  PublishingTopic,
} from './notifications.ts';
export { checkUploadedCertificate, rawSpkiOfCertificate } from './device-certificate.ts';
export type { UploadRejection } from './device-certificate.ts';
export { KeyPool } from './key-pool.ts';
export type { DeviceKey, PoolKeyType } from './key-pool.ts';
