import { defineConfig } from 'vitest/config';

/**
 * Two projects, one `npm test`:
 * - `unit`: pure code, fakes of remote services, openssl, kubectl/promtool checks — no Java, runs in seconds
 *   (`npm run test:unit`);
 * - `integration`: everything that needs Google's Pub/Sub or Firestore emulator, started once per run by the global
 *   setup (`npm run test:integration`).
 */
const EMULATOR_FILES = ['test/integration/**/*.test.ts', 'test/contract/store-firestore*.test.ts'];

const shared = {
  // The device key pool is generated once per run (and the emulators, for `integration`).
  globalSetup: ['test/support/global-setup.ts'],
  setupFiles: ['test/support/setup-file.ts'],
  testTimeout: 60_000,
  hookTimeout: 120_000,
};

export default defineConfig({
  test: {
    // Two cores: integration files each start servers and child processes; keep parallelism modest.
    maxWorkers: 2,
    reporters: ['default'],
    // V8 coverage of src/: on in CI (`npm test` there prints the summary), and with `npm run coverage` locally
    // (`npm run coverage -- --project unit` for the unit project alone).
    coverage: {
      provider: 'v8',
      enabled: process.env.CI === 'true',
      include: ['src/**/*.ts'],
      reporter: ['text-summary', 'json-summary'],
      reportsDirectory: 'coverage',
    },
    projects: [
      { test: { ...shared, name: 'unit', include: ['test/**/*.test.ts'], exclude: EMULATOR_FILES } },
      {
        test: {
          ...shared,
          name: 'integration',
          include: EMULATOR_FILES,
          // Each file must close what it opened (servers, clients, child processes): test/support/leak-check.ts.
          setupFiles: [...shared.setupFiles, 'test/support/leak-check-setup.ts'],
        },
      },
    ],
  },
});
