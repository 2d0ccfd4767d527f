/**
 * The workflow knows no backend by name (DESIGN.md §10): a backend declares its fault component, and after a
 * deployment fault the engine clears exactly that component on the next successful CA step. A fourth backend that
 * exists only in this test proves it — before, the engine mapped the three shipped types to components and fell
 * back to `local-ca`, so a new backend's fault was never cleared and the replica stayed not-ready until restarted.
 */
import { afterEach, expect, it } from 'vitest';
import { z } from 'zod';
import { CA_BACKENDS } from '../../../src/ca/registry.ts';
import { localBackend } from '../../../src/ca/local/index.ts';
import { localCaConfigSchema } from '../../../src/ca/local/config.ts';
import type { CaBackend, CertificateAuthority, IssueRequest, IssueResult, StepContext } from '../../../src/ca/types.ts';
import { DeploymentFaultError } from '../../../src/errors.ts';
import { AdapterRig } from '../../support/adapter-rig.ts';
import { testKeyPool } from '../../support/keys.ts';

const testOnlyConfigSchema = z.object({ type: z.literal('test-only'), directory: z.string() });
type TestOnlyConfig = z.infer<typeof testOnlyConfigSchema>;

/** Switched by the test: while set, every issue is refused as an operator's mistake would be (a revoked key). */
let refuseAsDeploymentFault = false;

/** A CA the workflow has never heard of: issues through a local CA, or fails with its own component's fault. */
const testOnlyBackend: CaBackend<TestOnlyConfig> = {
  type: 'test-only',
  faultComponent: 'test-only-ca',
  configSchema: testOnlyConfigSchema,
  capabilities: (config) => localBackend.capabilities(localCaConfigSchema.parse({ ...config, type: 'local' })),
  create: async (name, config, deps): Promise<CertificateAuthority> => {
    const local = await localBackend.create(name, localCaConfigSchema.parse({ ...config, type: 'local' }), deps);
    return {
      name,
      type: 'test-only',
      issue(request: IssueRequest, ctx: StepContext): Promise<IssueResult> {
        if (refuseAsDeploymentFault) {
          return Promise.reject(new DeploymentFaultError('test-only CA: key refused', { component: 'test-only-ca' }));
        }
        return local.issue(request, ctx);
      },
    };
  },
};

let rig: AdapterRig | undefined;
afterEach(async () => {
  refuseAsDeploymentFault = false;
  await rig?.stop();
  rig = undefined;
});

it('a backend the workflow does not know by name: its deployment fault clears after its next success', async () => {
  rig = await AdapterRig.start({
    backends: new Map([...CA_BACKENDS, [testOnlyBackend.type, testOnlyBackend]]),
    // `ca` is where the rig made its local CA, relative to the rig's working directory (the config's baseDir).
    caConnections: { default_ca_config: { type: 'test-only', directory: 'ca' } },
    config: { scheduler: { retryInitial: '50ms', retryMax: '200ms' } },
  });
  refuseAsDeploymentFault = true;
  const id = rig.tenant.createProcess({ key: (await testKeyPool()).next('ec-p256') });
  await rig.notify(id);
  await expect
    .poll(() => rig?.adapter.health.notReadyReasons().join(), { timeout: 10_000 })
    .toContain('deployment fault (test-only-ca)');
  expect(rig.tenant.counters(id).setFailures).toBe(0);

  refuseAsDeploymentFault = false;
  await rig.tenant.waitUntilFinished([id], 10_000);
  expect(rig.tenant.process(id)?.issuedCertificate).toBeDefined();
  await expect.poll(() => rig?.adapter.health.notReadyReasons(), { timeout: 5_000 }).toEqual([]);
});
