/**
 * What a CA hands back to find a pending issuance again. Its own module so that the store, which keeps it in the
 * process record, and the CA contract can both name it without importing each other's types.
 */

/** Opaque to the workflow; stored in the process record as JSON. Keep it small and free of secrets. */
export type PendingRef = Readonly<Record<string, string | number | boolean>>;
