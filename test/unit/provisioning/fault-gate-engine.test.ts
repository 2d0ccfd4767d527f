/**
 * The engine pauses a CA connection with a deployment fault as a whole (the adapter on the sandbox tenant, memory
 * store): while the CA refuses the key, each backoff interval costs ONE request to the CA and ONE error line,
 * whatever the number of processes waiting; none is failed; and when the CA accepts again, every held process
 * resumes at once — each issues exactly once more.
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

const COMPONENT = 'gated-ca';
/** The gate pauses one CA connection: its backend's fault component and its name. */
const GATE_KEY = `${COMPONENT}:default_ca_config`;
const schema = z.object({ type: z.literal('gated'), directory: z.string() });

/** The CA's answers: every issue call is counted; while `refusing`, it is a 403-like deployment fault. */
const ca = { refusing: false, calls: 0 };

const gatedBackend: CaBackend<z.infer<typeof schema>> = {
  type: 'gated',
  faultComponent: COMPONENT,
  configSchema: schema,
  capabilities: (config) => localBackend.capabilities(localCaConfigSchema.parse({ ...config, type: 'local' })),
  create: async (name, config, deps): Promise<CertificateAuthority> => {
    const local = await localBackend.create(name, localCaConfigSchema.parse({ ...config, type: 'local' }), deps);
    return {
      name,
      type: 'gated',
      issue(request: IssueRequest, ctx: StepContext): Promise<IssueResult> {
        ca.calls += 1;
        if (ca.refusing) {
          return Promise.reject(
            new DeploymentFaultError('the CA refused the API key (403)', { component: COMPONENT, hint: 'fix the key' }),
          );
        }
        return local.issue(request, ctx);
      },
    };
  },
};

let rig: AdapterRig | undefined;
afterEach(async () => {
  await rig?.stop();
  rig = undefined;
});

it('a CA deployment fault costs one request and one error line per interval, and all held processes resume at once', async () => {
  ca.refusing = true;
  ca.calls = 0;
  rig = await AdapterRig.start({
    backends: new Map([...CA_BACKENDS, [gatedBackend.type, gatedBackend]]),
    caConnections: { default_ca_config: { type: 'gated', directory: 'ca' } },
    config: { scheduler: { retryInitial: '100ms', retryMax: '400ms' } },
  });
  const r = rig;
  const gate = r.adapter.engine.faultGate;
  const keys = await testKeyPool();
  const faultLines = () =>
    r.logs.entries().filter((e) => e.severity === 'ERROR' && String(e.message).startsWith('deployment fault'));

  // The first process trips the gate…
  const first = r.tenant.createProcess({ key: keys.next('ec-p256') });
  await r.notify(first);
  await expect.poll(() => gate.isFaulted(GATE_KEY), { timeout: 10_000 }).toBe(true);
  // …the next 19 reach the CA step and are held there, without a request.
  const others = Array.from({ length: 19 }, () => r.tenant.createProcess({ key: keys.next('ec-p256') }));
  for (const id of others) await r.notify(id);
  await expect.poll(() => gate.heldCount(GATE_KEY), { timeout: 20_000 }).toBeGreaterThanOrEqual(19);
  // Held means not sent: the calls so far are the trip and the probes, far fewer than the processes waiting.
  expect(ca.calls).toBeLessThanOrEqual(faultLines().length + 1); // + a probe whose answer is on its way
  expect(ca.calls).toBeLessThan(19);

  // Several intervals go by: one request and one line each (the trip, then one probe per interval). Two more calls
  // than when all were held: the probe before the last one started after all 19 were held and its line is written,
  // so some line reports them all (however many probes a slow machine already spent while the 19 arrived).
  const callsWhenAllHeld = ca.calls;
  await expect.poll(() => ca.calls, { timeout: 20_000 }).toBeGreaterThanOrEqual(Math.max(5, callsWhenAllHeld + 2));
  ca.refusing = false;
  const whileFaulted = faultLines().length;
  await r.tenant.waitUntilFinished([first, ...others], 15_000);

  const failedCalls = faultLines().length;
  expect(failedCalls).toBeGreaterThanOrEqual(5);
  expect(failedCalls - whileFaulted).toBeLessThanOrEqual(1); // a probe in flight when the CA was fixed
  // Every refused request has its one line, and after the fix each process issued exactly once.
  expect(ca.calls).toBe(failedCalls + 20);
  expect(Math.max(...faultLines().map((e) => Number(e.held)))).toBeGreaterThanOrEqual(19);
  for (const id of [first, ...others]) {
    expect(r.tenant.counters(id).setFailures).toBe(0);
    expect(r.tenant.process(id)?.issuedCertificate).toBeDefined();
  }
  const cleared = r.logs.entries().filter((e) => String(e.message).startsWith('deployment fault cleared'));
  expect(cleared).toHaveLength(1);
  expect(Number(cleared[0]?.resumed)).toBeGreaterThanOrEqual(18);
  expect(gate.isFaulted(GATE_KEY)).toBe(false);
  await expect.poll(() => r.adapter.health.notReadyReasons(), { timeout: 5_000 }).toEqual([]);
});
