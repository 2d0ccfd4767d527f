/**
 * Firestore in tests: the emulator started by the global setup (`inject('firestoreEmulatorHost')`), with every
 * test working in collections of its own (a unique name per call), so test files running in parallel never see
 * each other's records. The client is pointed at the emulator through settings, not `FIRESTORE_EMULATOR_HOST`, so
 * a test never changes process-wide state.
 */
import { randomBytes } from 'node:crypto';
import { Firestore, type Settings } from '@google-cloud/firestore';
import { inject } from 'vitest';
import { FirestoreProcessStore, type FirestoreStoreOptions } from '../../src/store/firestore.ts';

/** The project the emulator serves in tests (it accepts any; this one matches the Pub/Sub test project). */
export const FIRESTORE_TEST_PROJECT = 'certprov-test';

/** Client settings for an emulator at `host` (plain-text gRPC; the client then sends the emulator's owner token). */
export function firestoreEmulatorSettings(host: string = inject('firestoreEmulatorHost')): Settings {
  return { host, ssl: false, universeDomain: 'googleapis.com' };
}

/** A collection name no other test uses. */
export function uniqueCollection(label: string): string {
  const safe = label.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 40);
  return `t-${safe}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** A store on the test emulator, in `collection` (default: a fresh one). */
export function firestoreTestStore(options: FirestoreStoreOptions & { host?: string } = {}): FirestoreProcessStore {
  const { host, ...rest } = options;
  return new FirestoreProcessStore({
    projectId: FIRESTORE_TEST_PROJECT,
    collection: uniqueCollection('store'),
    ...rest,
    settings: { ...firestoreEmulatorSettings(host), ...rest.settings },
  });
}

/** A raw client on the test emulator, for reading and planting documents the way another version would. */
export function rawFirestore(host: string = inject('firestoreEmulatorHost')): Firestore {
  return new Firestore({ projectId: FIRESTORE_TEST_PROJECT, ...firestoreEmulatorSettings(host) });
}
