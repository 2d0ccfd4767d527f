/**
 * The gRPC status codes the Pub/Sub code distinguishes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html),
 * and a safe reader for the `code` the Google client libraries put on their errors.
 */
export const GRPC_STATUS = {
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  UNIMPLEMENTED: 12,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** The numeric gRPC status of a client error, or undefined for anything else. */
export function grpcCode(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}
