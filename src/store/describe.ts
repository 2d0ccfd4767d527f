import type { Config } from '../config/load.ts';

/** One line naming the configured store, for check-config, probes and logs. */
export function describeStore(store: Config['store']): string {
  switch (store.type) {
    case 'memory':
      return 'memory (one replica, not crash-safe)';
    case 'sqlite':
      return `sqlite ${store.path} (one replica, synchronous ${store.synchronous})`;
    case 'firestore':
      return `firestore ${store.projectId ?? '(project from environment)'}/${store.databaseId}/${store.collection}`;
  }
}
