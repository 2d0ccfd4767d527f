/**
 * Firestore failures → the outcome classes of DESIGN.md §5, in one place. An unreachable or refusing store is a
 * deployment fault of component `store`: the engine then never fails a process for it (no setFailure, no attempts
 * used up), reports the fault, and retries after backoff; the intake nacks the message.
 */
import { DeploymentFaultError } from '../errors.ts';
import { StoreBusyError } from './types.ts';

/** The gRPC status codes Firestore answers with that the store tells apart (grpc.io status codes). */
const GRPC_STATUS = {
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNAUTHENTICATED: 16,
} as const;

function grpcCode(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

/** gRPC FAILED_PRECONDITION: a write's `lastUpdateTime` precondition did not hold (someone else wrote). */
export function isPreconditionFailure(error: unknown): boolean {
  return grpcCode(error) === GRPC_STATUS.FAILED_PRECONDITION && !isMissingIndex(error);
}

/** gRPC ALREADY_EXISTS: `create()` found a document. */
export function isAlreadyExists(error: unknown): boolean {
  return grpcCode(error) === GRPC_STATUS.ALREADY_EXISTS;
}

/** gRPC NOT_FOUND on a document write (`update()` of a document that is gone). */
export function isNotFound(error: unknown): boolean {
  return grpcCode(error) === GRPC_STATUS.NOT_FOUND;
}

/** A query needs a composite index that does not exist; Firestore says so with FAILED_PRECONDITION and a link. */
function isMissingIndex(error: unknown): boolean {
  return grpcCode(error) === GRPC_STATUS.FAILED_PRECONDITION && error instanceof Error && /index/i.test(error.message);
}

/** The call's deadline passed (the client's own, or the store's bound): a write may still have been applied. */
export function isDeadlineExceeded(error: unknown): boolean {
  return error instanceof StoreBusyError ? error.busy === 'timeout' : grpcCode(error) === GRPC_STATUS.DEADLINE_EXCEEDED;
}

/**
 * Wraps a Firestore failure into a {@link DeploymentFaultError} (component `store`) whose hint says what to check.
 * Programming errors (INVALID_ARGUMENT: a document too large, a bad field) are returned unchanged: retrying them
 * would not help and they must be seen as bugs.
 */
export function storeFault(error: unknown, what: string, where: string): Error {
  if (error instanceof DeploymentFaultError) return error;
  const code = grpcCode(error);
  const detail = error instanceof Error ? error.message : String(error);
  const fault = (message: string, hint: string) =>
    new DeploymentFaultError(`${what}: ${message}`, { component: 'store', cause: error, hint });
  switch (code) {
    case GRPC_STATUS.DEADLINE_EXCEEDED:
      return new StoreBusyError(
        `${what}: Firestore did not answer in time for ${where} (DEADLINE_EXCEEDED)`,
        'timeout',
        {
          cause: error,
          hint: 'check Firestore status and the network path to it',
        },
      );
    case GRPC_STATUS.RESOURCE_EXHAUSTED:
      return new StoreBusyError(`${what}: Firestore refused for load on ${where} (RESOURCE_EXHAUSTED)`, 'overload', {
        cause: error,
        hint: 'Firestore is over a quota or ramping up (500/50/5): the replicas press less until it answers again',
      });
    case GRPC_STATUS.PERMISSION_DENIED:
      return fault(
        `Firestore refused access to ${where} (PERMISSION_DENIED)`,
        "grant roles/datastore.user to the adapter's service account",
      );
    case GRPC_STATUS.UNAUTHENTICATED:
      return fault(
        `Firestore refused the adapter's credentials (UNAUTHENTICATED)`,
        'check Workload Identity / GOOGLE_APPLICATION_CREDENTIALS',
      );
    case GRPC_STATUS.NOT_FOUND:
      return fault(
        `Firestore database of ${where} does not exist (NOT_FOUND)`,
        'create the database (gcloud firestore databases create) or correct store.projectId / store.databaseId',
      );
    case GRPC_STATUS.FAILED_PRECONDITION:
      return fault(
        `Firestore cannot serve the query on ${where}: ${detail}`,
        'create the composite indexes (active ASC, availableAt ASC) and (step ASC, availableAt ASC) on the collection; see docs/several-replicas.md',
      );
    case GRPC_STATUS.INVALID_ARGUMENT:
      return error instanceof Error ? error : new Error(detail);
    default:
      return fault(
        `Firestore is not reachable or failed for ${where} (${detail})`,
        'check Firestore status and the network path to it',
      );
  }
}
