import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Emulators (Pub/Sub, Firestore) and the device key pool are started/generated once per run.
    globalSetup: ['test/support/global-setup.ts'],
    setupFiles: ['test/support/setup-file.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: integration files each start servers and child processes; keep parallelism modest.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
