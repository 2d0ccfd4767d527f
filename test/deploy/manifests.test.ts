/**
 * deploy/ checked against the code, so the manifests cannot drift from it: each overlay is rendered with the real
 * `kubectl kustomize`; its ConfigMap's configuration is compiled by the adapter's own `compileConfig` (purpose
 * `run`); ports, probe paths and the configuration path are the ones the code serves and reads; every metric and
 * label in alerts and the dashboard exists in the adapter's registry; the alert rules pass `promtool check rules`,
 * and `promtool test rules` shows each alert fires on the situation it is for — and stays quiet otherwise.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { compileConfig, parseConfigText, type Config } from '../../src/config/load.ts';
import { placeholderProblems } from '../../src/config/placeholders.ts';
import { DEFAULTS } from '../../src/config/schema.ts';
import { Health } from '../../src/observability/health.ts';
import { Metrics, statusClass } from '../../src/observability/metrics.ts';
import { startOpsServer, type OpsServer } from '../../src/observability/server.ts';
import {
  DEPLOY,
  OVERLAYS,
  REPO,
  only,
  promtool,
  renderOverlay,
  readSettings,
  renderOverlayWith,
  renderOverlayWithSettings,
  type K8sObject,
  type Overlay,
} from './kustomize.ts';
import { EXTERNAL_METRICS, referenceProblems, referencesOf } from './promql-references.ts';

/** The time the engine waits for aborted steps to record their hand-back after the grace period (engine.ts stop()). */
const ENGINE_ABORT_WAIT_MS = 5_000;
const BACKLOG_METRIC = 'pubsub_googleapis_com:subscription_num_undelivered_messages';

interface Rendered {
  readonly objects: K8sObject[];
  readonly withOperator: K8sObject[];
  /** With the CPU-only HPA component (clusters without the Custom Metrics Stackdriver Adapter). */
  readonly cpuOnly: K8sObject[];
  readonly rawConfig: Record<string, unknown>;
  readonly config: Config;
}

const rendered = new Map<Overlay, Rendered>();

/** What the examples write where an admin's value goes (src/config/placeholders.ts), and the base's stand-ins. */
const PLACEHOLDER = /\b(PROJECT_ID|PROJECT_NUMBER|REGION|GOOGLE_SERVICE_ACCOUNT)\b/;

beforeAll(async () => {
  for (const overlay of OVERLAYS) {
    const [objects, withOperator, cpuOnly] = await Promise.all([
      renderOverlay(overlay),
      renderOverlayWith(overlay, ['prometheus-operator']),
      renderOverlayWith(overlay, ['hpa-cpu-only']),
    ]);
    const { rawConfig, config } = mountedConfig(objects, overlay);
    rendered.set(overlay, { objects, withOperator, cpuOnly, rawConfig, config });
  }
}, 60_000);

function get(overlay: Overlay): Rendered {
  const r = rendered.get(overlay);
  if (r === undefined) throw new Error(`${overlay} not rendered`);
  return r;
}

/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-explicit-any */
/** The ConfigMap's configuration, compiled for `run` with the environment the Deployment gives the container. */
function mountedConfig(objects: K8sObject[], overlay: string): { rawConfig: Record<string, unknown>; config: Config } {
  const configMap = only(objects, 'ConfigMap');
  const text = (configMap.data as Record<string, string>)['config.yaml'] ?? '';
  const rawConfig = parseConfigText(text, `${overlay} ConfigMap`) as Record<string, unknown>;
  const variables = (container(objects).env ?? []) as { name: string; value?: string }[];
  const env = Object.fromEntries(variables.map((e) => [e.name, e.value]));
  const config = compileConfig(rawConfig, {
    source: `${overlay} ConfigMap`,
    baseDir: '/etc/certprov',
    purpose: 'run',
    env,
  });
  return { rawConfig, config };
}

function podSpec(objects: K8sObject[]): any {
  return only(objects, 'Deployment').spec.template.spec;
}
function container(objects: K8sObject[]): any {
  const containers = podSpec(objects).containers as any[];
  expect(containers).toHaveLength(1);
  return containers[0];
}
function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Every `{file}` / `{env}` secret reference in a CA connection block, with its path in the configuration. */
function secretReferences(value: unknown, at: string): { at: string; file?: string; env?: string }[] {
  if (typeof value !== 'object' || value === null) return [];
  const keys = Object.keys(value);
  const v = value as Record<string, unknown>;
  if (keys.length === 1 && (typeof v.file === 'string' || typeof v.env === 'string')) {
    return [
      {
        at,
        ...(typeof v.file === 'string' ? { file: v.file } : {}),
        ...(typeof v.env === 'string' ? { env: v.env } : {}),
      },
    ];
  }
  return Object.entries(v).flatMap(([k, child]) => secretReferences(child, `${at}.${k}`));
}

describe.each(OVERLAYS)('overlay %s', (overlay) => {
  it('renders the objects a GKE deployment needs', () => {
    const kinds = get(overlay)
      .objects.map((o) => o.kind)
      .sort();
    expect(kinds).toEqual(
      [
        'ConfigMap',
        'Deployment',
        'GlobalRules',
        'HorizontalPodAutoscaler',
        'Namespace',
        'PodDisruptionBudget',
        'PodMonitoring',
        'Rules',
        'ServiceAccount',
      ].sort(),
    );
    for (const o of get(overlay).objects) {
      if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe('certprov');
    }
  });

  it('takes the project, the image and the Google service account from settings.env alone', async () => {
    const shipped = await readSettings(overlay);
    expect([...shipped.keys()].sort()).toEqual(['GOOGLE_SERVICE_ACCOUNT', 'IMAGE', 'PROJECT_ID']);
    // As shipped, every value still holds a placeholder, and run/check-config refuse the project with where to edit.
    for (const [key, value] of shipped) expect(value, key).toMatch(PLACEHOLDER);
    expect(placeholderProblems(get(overlay).config).join('\n')).toMatch(
      /pubsub\.subscription: GOOGLE_CLOUD_PROJECT is "PROJECT_ID", a placeholder: .*settings\.env/,
    );

    const settings = new Map([
      ['PROJECT_ID', 'acme-pki-prod'],
      ['IMAGE', 'europe-west1-docker.pkg.dev/acme-pki-prod/certprov/certprov:1.2.3'],
      ['GOOGLE_SERVICE_ACCOUNT', 'certprov-gsa@acme-pki-prod.iam.gserviceaccount.com'],
    ]);
    const { objects, text } = await renderOverlayWithSettings(overlay, settings);
    expect(text).not.toMatch(PLACEHOLDER);
    expect(objects.map((o) => o.metadata.name)).not.toContain('certprov-settings');
    const c = container(objects);
    expect(c.image).toBe(settings.get('IMAGE'));
    expect(c.env).toContainEqual({ name: 'GOOGLE_CLOUD_PROJECT', value: 'acme-pki-prod' });
    expect(only(objects, 'ServiceAccount').metadata.annotations?.['iam.gke.io/gcp-service-account']).toBe(
      settings.get('GOOGLE_SERVICE_ACCOUNT'),
    );
    const { config } = mountedConfig(objects, overlay);
    expect(config.pubsub.subscription).toBe('projects/acme-pki-prod/subscriptions/certprov');
    expect(config.instanceId).toBe(get(overlay).config.instanceId); // configured, so the project does not move it
    expect(config.store).toMatchObject({ type: 'firestore' });
    expect(config.store.type === 'firestore' && config.store.projectId).toBeFalsy(); // GOOGLE_CLOUD_PROJECT
    // What is left to edit is the CA connection in config.yaml — the docs checklist's other step.
    const left = placeholderProblems(config);
    expect(left.length).toBeGreaterThan(0);
    for (const problem of left) expect(problem).toMatch(/^caConnections\./);
  });

  it('mounts a configuration that compileConfig accepts for `run`, at the path the container is told to read', () => {
    const { objects } = get(overlay);
    const spec = podSpec(objects);
    const c = container(objects);
    const configMap = only(objects, 'ConfigMap');
    expect(c.args[0]).toBe('run');
    const flag = (c.args as string[]).indexOf('--config');
    expect(flag).toBeGreaterThan(0);
    const configPath = c.args[flag + 1] as string;
    const mount = (c.volumeMounts as any[]).find((m) => m.mountPath === path.posix.dirname(configPath));
    expect(mount, `a volume mounted at ${path.posix.dirname(configPath)}`).toBeDefined();
    const volume = (spec.volumes as any[]).find((v) => v.name === mount.name);
    expect(volume.configMap.name).toBe(configMap.metadata.name);
    expect(Object.keys(configMap.data as object)).toContain(path.posix.basename(configPath));
  });

  it('serves /metrics, /healthz and /readyz on the configured port, under the name the probes and scrapers use', async () => {
    const { objects, config } = get(overlay);
    const c = container(objects);
    const port = (c.ports as any[]).find((p) => p.name === 'metrics');
    expect(port.containerPort).toBe(config.http.port);
    expect(config.http.port).toBe(DEFAULTS.http.port);
    const probes = [c.startupProbe, c.livenessProbe, c.readinessProbe];
    for (const probe of probes) expect(probe.httpGet.port).toBe('metrics');
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    const scrape = only(objects, 'PodMonitoring').spec.endpoints[0];
    expect(scrape.port).toBe('metrics');

    // The paths the manifests name are the ones the ops server answers.
    const metrics = new Metrics({ defaultMetrics: false });
    const health = new Health(metrics);
    health.setState('running');
    health.setSubscribed(true);
    const server: OpsServer = await startOpsServer({ host: '127.0.0.1', port: 0, metrics, health });
    try {
      for (const p of [
        c.startupProbe.httpGet.path,
        c.livenessProbe.httpGet.path,
        c.readinessProbe.httpGet.path,
        scrape.path,
      ]) {
        expect((await fetch(`http://127.0.0.1:${server.port}${p as string}`)).status, p).toBe(200);
      }
    } finally {
      await server.close();
    }
  });

  it('runs locked down: non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp', () => {
    const { objects } = get(overlay);
    const spec = podSpec(objects);
    const c = container(objects);
    expect(spec.securityContext.runAsNonRoot).toBe(true);
    expect(spec.securityContext.runAsUser).toBeGreaterThan(0);
    expect(spec.securityContext.seccompProfile.type).toBe('RuntimeDefault');
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    });
    // The only writable place is /tmp, in memory.
    const writable = (c.volumeMounts as any[]).filter((m) => m.readOnly !== true);
    expect(writable.map((m) => m.mountPath)).toEqual(['/tmp']);
    expect(c.resources.requests.cpu).toBeDefined();
    expect(c.resources.limits.memory).toBeDefined();
    expect(c.image).toMatch(/:[\w.-]+$/);
    expect(c.image).not.toMatch(/:latest$/);
  });

  it('gives the drain more time than the adapter needs: terminationGracePeriodSeconds > gracePeriod + closeTimeout + abort wait', () => {
    const { objects, config } = get(overlay);
    const budgetMs = config.shutdown.gracePeriodMs + config.pubsub.closeTimeoutMs + ENGINE_ABORT_WAIT_MS;
    expect(podSpec(objects).terminationGracePeriodSeconds * 1000).toBeGreaterThan(budgetMs);
  });

  it('spreads replicas over zones and nodes, and a PodDisruptionBudget that never blocks drains on unready pods', () => {
    const { objects } = get(overlay);
    const labels = only(objects, 'Deployment').spec.template.metadata.labels as Record<string, string>;
    const spread = podSpec(objects).topologySpreadConstraints as any[];
    expect(spread.map((s) => s.topologyKey).sort()).toEqual(['kubernetes.io/hostname', 'topology.kubernetes.io/zone']);
    for (const s of spread) expect(matches(s.labelSelector.matchLabels, labels)).toBe(true);
    const pdb = only(objects, 'PodDisruptionBudget');
    expect(matches(pdb.spec.selector.matchLabels, labels)).toBe(true);
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(pdb.spec.unhealthyPodEvictionPolicy).toBe('AlwaysAllow');
  });

  it('runs as a ServiceAccount bound to a Google service account by Workload Identity, without a mounted token', () => {
    const { objects } = get(overlay);
    const sa = only(objects, 'ServiceAccount');
    expect(podSpec(objects).serviceAccountName).toBe(sa.metadata.name);
    expect(sa.metadata.annotations?.['iam.gke.io/gcp-service-account']).toMatch(
      /^[a-z][\w-]*@[\w-]+\.iam\.gserviceaccount\.com$/,
    );
    expect(podSpec(objects).automountServiceAccountToken).toBe(false);
  });

  it('takes every secret the configuration references from a mounted Secret or a Secret-backed variable, never from the ConfigMap', () => {
    const { objects, rawConfig } = get(overlay);
    const spec = podSpec(objects);
    const c = container(objects);
    const refs = secretReferences(rawConfig.caConnections, 'caConnections');
    if (overlay === 'digicert') expect(refs.map((r) => r.at)).toEqual(['caConnections.default_ca_config.apiKey']);
    for (const ref of refs) {
      if (ref.file !== undefined) {
        const mount = (c.volumeMounts as any[]).find((m) => ref.file?.startsWith(`${m.mountPath as string}/`));
        expect(mount, `${ref.at}: ${ref.file} is under a mounted volume`).toBeDefined();
        const volume = (spec.volumes as any[]).find((v) => v.name === mount.name);
        expect(volume.secret?.secretName, `${ref.at} comes from a Secret`).toBeDefined();
        const inside = path.posix.relative(mount.mountPath as string, ref.file);
        const items = volume.secret.items as { key: string; path: string }[] | undefined;
        if (items !== undefined) expect(items.map((i) => i.path)).toContain(inside);
      } else {
        const env = ((c.env ?? []) as any[]).find((e) => e.name === ref.env);
        expect(env?.valueFrom?.secretKeyRef, `${ref.at}: ${ref.env} from a Secret`).toBeDefined();
      }
    }
  });

  it('keeps several replicas only with the durable store', () => {
    const { objects, config } = get(overlay);
    const hpa = only(objects, 'HorizontalPodAutoscaler');
    expect(hpa.spec.minReplicas).toBeGreaterThan(1);
    expect(config.store.type).toBe('firestore');
  });

  it('autoscales on the backlog of the configured subscription, with CPU as a floor', () => {
    const { objects, config } = get(overlay);
    const hpa = only(objects, 'HorizontalPodAutoscaler');
    expect(hpa.spec.scaleTargetRef).toMatchObject({
      kind: 'Deployment',
      name: only(objects, 'Deployment').metadata.name,
    });
    const external = (hpa.spec.metrics as any[]).find((m) => m.type === 'External').external;
    expect(external.metric.name).toBe('pubsub.googleapis.com|subscription|num_undelivered_messages');
    const subscriptionId = config.pubsub.subscription?.split('/').pop();
    expect(external.metric.selector.matchLabels['resource.labels.subscription_id']).toBe(subscriptionId);
    expect(external.target.type).toBe('AverageValue');
    const cpu = (hpa.spec.metrics as any[]).find((m) => m.type === 'Resource');
    expect(cpu.resource.name).toBe('cpu');
    expect(only(objects, 'Deployment').spec.replicas).toBeUndefined();
  });

  it('autoscales on CPU alone with the hpa-cpu-only component, and changes nothing else', () => {
    const { objects, cpuOnly } = get(overlay);
    const base = only(objects, 'HorizontalPodAutoscaler');
    const hpa = only(cpuOnly, 'HorizontalPodAutoscaler');
    // No External metric left: an HPA with an unavailable metric never scales down.
    expect(hpa.spec.metrics).toEqual([(base.spec.metrics as any[]).find((m) => m.type === 'Resource')]);
    expect(hpa.spec.metrics[0].resource.name).toBe('cpu');
    expect({ ...hpa.spec, metrics: undefined }).toEqual({ ...base.spec, metrics: undefined });
    const rest = (list: K8sObject[]) => list.filter((o) => o.kind !== 'HorizontalPodAutoscaler');
    expect(rest(cpuOnly)).toEqual(rest(objects));
  });

  it('exposes /crl/ alone through the crl component, to the port the ops server answers CRLs on', async () => {
    const { objects } = get(overlay);
    const withCrl = await renderOverlayWith(overlay, ['crl']);
    const ingress = only(withCrl, 'Ingress');
    const paths = (ingress.spec.rules as any[]).flatMap((r) => r.http.paths as any[]);
    expect(paths.map((p) => [p.path, p.pathType])).toEqual([['/crl/', 'Prefix']]);
    const service = (withCrl.filter((o) => o.kind === 'Service') as any[]).find(
      (o) => o.metadata.name === paths[0].backend.service.name,
    );
    expect((service.spec.ports as any[]).map((p) => p.name)).toContain(paths[0].backend.service.port.name);
    const pod = only(objects, 'Deployment').spec.template.metadata.labels as Record<string, string>;
    for (const [k, v] of Object.entries(service.spec.selector as Record<string, string>)) expect(pod[k]).toBe(v);
    expect((container(objects).ports as any[]).map((p) => p.name)).toContain(service.spec.ports[0].targetPort);

    // The ops server answers a connection's CRL under that prefix.
    const metrics = new Metrics({ defaultMetrics: false });
    const der = Uint8Array.of(0x30, 0x00);
    const server = await startOpsServer({
      host: '127.0.0.1',
      port: 0,
      metrics,
      health: new Health(metrics),
      crl: (name) =>
        Promise.resolve(
          name === 'wifi_ca'
            ? { crlNumber: 1, thisUpdate: Date.now(), nextUpdate: Date.now() + 86_400_000, der }
            : undefined,
        ),
    });
    try {
      const response = await fetch(`http://127.0.0.1:${server.port}${paths[0].path as string}wifi_ca.crl`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/pkix-crl');
    } finally {
      await server.close();
    }
  });

  it('scrapes the pods with PodMonitoring (Google Managed Prometheus) or a ServiceMonitor (Prometheus Operator)', () => {
    const { objects, withOperator } = get(overlay);
    const labels = only(objects, 'Deployment').spec.template.metadata.labels as Record<string, string>;
    expect(matches(only(objects, 'PodMonitoring').spec.selector.matchLabels, labels)).toBe(true);
    const service = only(withOperator, 'Service');
    const monitor = only(withOperator, 'ServiceMonitor');
    expect(matches(service.spec.selector, labels)).toBe(true);
    expect(matches(monitor.spec.selector.matchLabels, service.metadata.labels ?? {})).toBe(true);
    const servicePort = (service.spec.ports as any[]).find((p) => p.name === monitor.spec.endpoints[0].port);
    expect(servicePort.targetPort).toBe('metrics');
    expect(monitor.spec.endpoints[0].path).toBe('/metrics');
  });

  it('alerts on the configured subscription and namespace', () => {
    const { objects, config } = get(overlay);
    const subscriptionId = config.pubsub.subscription?.split('/').pop();
    const namespace = only(objects, 'Deployment').metadata.namespace;
    const exprs = [...groupsOf(only(objects, 'Rules')), ...groupsOf(only(objects, 'GlobalRules'))].flatMap((g) =>
      g.rules.map((r) => r.expr),
    );
    const matchers = exprs.flatMap((e) => referencesOf(e).matchers);
    for (const m of matchers.filter((x) => x.label === 'subscription_id')) expect(m.value).toBe(subscriptionId);
    for (const m of matchers.filter((x) => x.label === 'namespace')) expect(m.value).toBe(namespace);
    expect(matchers.some((m) => m.label === 'subscription_id')).toBe(true);
  });
});

interface Rule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}
interface Group {
  readonly name: string;
  readonly rules: Rule[];
}
function groupsOf(o: K8sObject): Group[] {
  return o.spec.groups as Group[];
}

describe('alert rules', () => {
  let dir: string;
  let operatorGroups: Group[];
  let troubleshootingHeadings: string[];
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'certprov-rules-'));
    operatorGroups = groupsOf(only(get('digicert').withOperator, 'PrometheusRule'));
    const troubleshooting = await readFile(path.join(REPO, 'docs', 'troubleshooting.md'), 'utf8');
    troubleshootingHeadings = [...troubleshooting.matchAll(/^## (.+)$/gm)].map((m) => m[1] ?? '');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('are the same for Google Managed Prometheus and the Prometheus Operator (plus the backlog bridge)', () => {
    for (const overlay of OVERLAYS) {
      const gmp = [
        ...groupsOf(only(get(overlay).objects, 'Rules')),
        ...groupsOf(only(get(overlay).objects, 'GlobalRules')),
      ];
      expect(operatorGroups.filter((g) => g.name !== 'certprov.backlog-bridge')).toEqual(gmp);
    }
    const bridge = operatorGroups.find((g) => g.name === 'certprov.backlog-bridge');
    expect(bridge?.rules.map((r) => r.record)).toEqual([BACKLOG_METRIC]);
  });

  it('cover what the issue asks for', () => {
    const alerts = operatorGroups.flatMap((g) => g.rules.map((r) => r.alert)).filter((a) => a !== undefined);
    for (const name of [
      'CertprovHighFailureRatio',
      'CertprovPendingCaOrdersStuck',
      'CertprovNoProgressWhileBacklogGrows',
      'CertprovRateLimitSaturated',
      'CertprovDeploymentFault',
      'CertprovUndecodableMessages',
    ]) {
      expect(alerts).toContain(name);
    }
    for (const rule of operatorGroups.flatMap((g) => g.rules).filter((r) => r.alert !== undefined)) {
      expect(['warning', 'critical']).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
      // The runbook names a heading of the troubleshooting page that exists.
      const runbook = /^docs\/troubleshooting\.md, "(.+)"$/.exec(rule.annotations?.runbook ?? '');
      expect(runbook, `${rule.alert}: ${rule.annotations?.runbook}`).not.toBeNull();
      expect(troubleshootingHeadings, rule.alert).toContain(runbook?.[1]);
    }
  });

  it('name only metrics and labels the adapter exports (or the Pub/Sub backlog), with real label values', () => {
    const recorded = new Set(
      operatorGroups.flatMap((g) => g.rules.map((r) => r.record)).filter((r): r is string => r !== undefined),
    );
    for (const rule of operatorGroups.flatMap((g) => g.rules)) {
      expect(referenceProblems(rule.expr, recorded), rule.alert ?? rule.record).toEqual([]);
      for (const m of referencesOf(rule.expr).matchers.filter((x) => x.label === 'status_class')) {
        expect([statusClass(200), statusClass(429), statusClass(503), 'network', 'timeout']).toContain(m.value);
      }
    }
    expect(EXTERNAL_METRICS.has(BACKLOG_METRIC)).toBe(true);
  });

  it('pass promtool check rules', async () => {
    const file = path.join(dir, 'certprov.rules.yaml');
    await writeFile(file, stringify({ groups: operatorGroups }));
    const { stdout } = await promtool(['check', 'rules', file]);
    const total = operatorGroups.reduce((n, g) => n + g.rules.length, 0);
    expect(stdout).toContain(`SUCCESS: ${total} rules found`);
  });

  it('fire on the situation they are for, and stay quiet otherwise (promtool test rules)', async () => {
    await writeFile(path.join(dir, 'certprov.rules.yaml'), stringify({ groups: operatorGroups }));
    const rules = new Map(
      operatorGroups
        .flatMap((g) => g.rules)
        .filter((r) => r.alert !== undefined)
        .map((r) => [r.alert as string, r]),
    );
    // Series names in the scenarios are held to the registry too.
    for (const s of SCENARIOS.flatMap((x) => x.series)) {
      expect(referenceProblems(s.series), s.series).toEqual([]);
    }
    const tests = SCENARIOS.map((scenario) => {
      const rule = rules.get(scenario.alert);
      if (rule === undefined) throw new Error(`no alert ${scenario.alert}`);
      const expected = (labels: Record<string, string>) => ({
        exp_labels: { ...rule.labels, ...labels },
        exp_annotations: Object.fromEntries(
          Object.entries(rule.annotations ?? {}).map(([k, v]) => [
            k,
            v.replace(/\{\{\s*\$labels\.(\w+)\s*\}\}/g, (_, l: string) => labels[l] ?? ''),
          ]),
        ),
      });
      return {
        name: `${scenario.alert}: ${scenario.name}`,
        interval: '1m',
        input_series: scenario.series,
        alert_rule_test: [
          ...scenario.quietAt.map((at) => ({ eval_time: at, alertname: scenario.alert, exp_alerts: [] })),
          ...(scenario.firesAt === undefined
            ? []
            : [
                {
                  eval_time: scenario.firesAt,
                  alertname: scenario.alert,
                  exp_alerts: [expected(scenario.labels ?? {})],
                },
              ]),
        ],
      };
    });
    const file = path.join(dir, 'certprov.rules.test.yaml');
    await writeFile(file, stringify({ rule_files: ['certprov.rules.yaml'], evaluation_interval: '1m', tests }));
    const { stdout } = await promtool(['test', 'rules', file]);
    expect(stdout).toContain('SUCCESS');
    // Every alert has a scenario that makes it fire.
    expect(new Set(SCENARIOS.filter((s) => s.firesAt !== undefined).map((s) => s.alert))).toEqual(
      new Set(rules.keys()),
    );
  });
});

interface Scenario {
  readonly alert: string;
  readonly name: string;
  readonly series: { series: string; values: string }[];
  /** Times at which the alert must not be firing. */
  readonly quietAt: string[];
  readonly firesAt?: string;
  /** Labels of the fired alert besides the rule's own (severity) and alertname. */
  readonly labels?: Record<string, string>;
}

const NS = 'namespace="certprov"';
const SCENARIOS: readonly Scenario[] = [
  {
    alert: 'CertprovCaCertificateExpiresSoon',
    name: 'the CA certificate reaches 30 days before its end an hour in',
    series: [
      // notAfter = 30 days + 1 hour after the start of the test: inside the 30 days from minute 60 on.
      {
        series: `certprov_ca_certificate_expiry_timestamp_seconds{${NS},pod="certprov-a",ca_connection="wifi",backend="local"}`,
        values: `${30 * 86400 + 3600}x120`,
      },
    ],
    quietAt: ['30m', '65m'],
    firesAt: '80m',
    labels: { namespace: 'certprov', ca_connection: 'wifi' },
  },
  {
    alert: 'CertprovDeploymentFault',
    name: 'a Key Vault permission is missing for 10 minutes',
    series: [
      { series: `certprov_deployment_fault_active{${NS},pod="certprov-a",component="keyvault"}`, values: '0x10 1x30' },
    ],
    quietAt: ['8m', '13m'],
    firesAt: '30m',
    labels: { namespace: 'certprov', component: 'keyvault' },
  },
  {
    alert: 'CertprovReplicaNotReady',
    name: 'one replica stays unready',
    series: [
      { series: `certprov_ready{${NS},pod="certprov-a"}`, values: '1x60' },
      { series: `certprov_ready{${NS},pod="certprov-b"}`, values: '1x10 0x50' },
    ],
    quietAt: ['20m'],
    firesAt: '40m',
    labels: { namespace: 'certprov', pod: 'certprov-b' },
  },
  {
    alert: 'CertprovAdapterAbsent',
    name: 'no replica is scraped',
    series: [
      { series: `certprov_build_info{${NS},pod="certprov-a",version="0.1.0",node="24.21.0"}`, values: '1x10 _x30' },
    ],
    quietAt: ['5m', '20m'],
    firesAt: '35m',
  },
  {
    alert: 'CertprovHighFailureRatio',
    name: 'half of the processes fail',
    series: [
      {
        series: `certprov_processes_failed_total{${NS},pod="certprov-a",reason="ca_rejected",ca_connection="default_ca_config"}`,
        values: '0+1x90',
      },
      {
        series: `certprov_processes_issued_total{${NS},pod="certprov-a",ca_connection="default_ca_config",backend="digicert"}`,
        values: '0+1x90',
      },
    ],
    quietAt: ['5m'],
    firesAt: '60m',
    labels: { namespace: 'certprov' },
  },
  {
    alert: 'CertprovHighFailureRatio',
    name: 'a connection that only fails (its issued series is declared at 0)',
    series: [
      {
        series: `certprov_processes_failed_total{${NS},pod="certprov-a",reason="ca_rejected",ca_connection="default_ca_config"}`,
        values: '0+1x90',
      },
      {
        series: `certprov_processes_issued_total{${NS},pod="certprov-a",ca_connection="default_ca_config",backend="digicert"}`,
        values: '0x90',
      },
    ],
    quietAt: [],
    firesAt: '60m',
    labels: { namespace: 'certprov' },
  },
  {
    alert: 'CertprovHighFailureRatio',
    name: 'one failure in twenty-one is normal',
    series: [
      {
        series: `certprov_processes_failed_total{${NS},pod="certprov-a",reason="signature_timeout",ca_connection="default_ca_config"}`,
        values: '0+1x90',
      },
      {
        series: `certprov_processes_issued_total{${NS},pod="certprov-a",ca_connection="default_ca_config",backend="digicert"}`,
        values: '0+20x90',
      },
    ],
    quietAt: ['60m', '90m'],
  },
  {
    alert: 'CertprovPendingCaOrdersStuck',
    name: 'orders pend for hours and none completes',
    series: [
      { series: `certprov_ca_pending_orders{${NS},pod="certprov-a"}`, values: '3x500' },
      {
        series: `certprov_step_duration_seconds_count{${NS},pod="certprov-a",step="await_ca",outcome="ok"}`,
        values: '0x500',
      },
    ],
    quietAt: ['5h'],
    firesAt: '7h',
    labels: { namespace: 'certprov' },
  },
  {
    // One replica counts the gauge (the named lease waiting-process-gauges), the others report 0; the count moves to
    // another replica when the lease does, and the orders pending all along must still page.
    alert: 'CertprovPendingCaOrdersStuck',
    name: 'orders pend for hours while the counting moves from one replica to another',
    series: [
      { series: `certprov_ca_pending_orders{${NS},pod="certprov-a"}`, values: '3x180 0x320' },
      { series: `certprov_ca_pending_orders{${NS},pod="certprov-b"}`, values: '0x180 3x320' },
      {
        series: `certprov_step_duration_seconds_count{${NS},pod="certprov-a",step="await_ca",outcome="ok"}`,
        values: '0x500',
      },
    ],
    quietAt: ['5h'],
    firesAt: '7h',
    labels: { namespace: 'certprov' },
  },
  {
    alert: 'CertprovPendingCaOrdersStuck',
    name: 'orders pend but keep completing',
    series: [
      { series: `certprov_ca_pending_orders{${NS},pod="certprov-a"}`, values: '3x500' },
      {
        series: `certprov_step_duration_seconds_count{${NS},pod="certprov-a",step="await_ca",outcome="ok"}`,
        values: '0+1x500',
      },
    ],
    quietAt: ['7h', '8h'],
  },
  {
    alert: 'CertprovRateLimitSaturated',
    name: 'requests wait 2 s on average for the order budget',
    series: [
      {
        series: `certprov_rate_limiter_wait_seconds_sum{${NS},pod="certprov-a",bucket="digicert_order"}`,
        values: '0+120x60',
      },
      {
        series: `certprov_rate_limiter_wait_seconds_count{${NS},pod="certprov-a",bucket="digicert_order"}`,
        values: '0+60x60',
      },
    ],
    quietAt: ['10m'],
    firesAt: '40m',
    labels: { namespace: 'certprov', bucket: 'digicert_order' },
  },
  {
    alert: 'CertprovRemoteThrottled',
    name: 'a sixth of DigiCert requests get 429',
    series: [
      {
        series: `certprov_remote_requests_total{${NS},pod="certprov-a",api="digicert",method="order",status_class="${statusClass(429)}"}`,
        values: '0+10x60',
      },
      {
        series: `certprov_remote_requests_total{${NS},pod="certprov-a",api="digicert",method="order",status_class="${statusClass(201)}"}`,
        values: '0+50x60',
      },
    ],
    quietAt: ['10m'],
    firesAt: '40m',
    labels: { namespace: 'certprov', api: 'digicert' },
  },
  {
    alert: 'CertprovStoreCheckpointsFailing',
    name: "checkpoints on the store's connection keep failing",
    series: [
      {
        series: `certprov_store_checkpoint_failures_total{${NS},pod="certprov-0",where="connection"}`,
        values: '0x5 0+240x40',
      },
      { series: `certprov_store_checkpoint_failures_total{${NS},pod="certprov-0",where="worker"}`, values: '0x45' },
    ],
    quietAt: ['4m', '10m'],
    firesAt: '20m',
    labels: { namespace: 'certprov', where: 'connection' },
  },
  {
    alert: 'CertprovStoreCheckpointsFailing',
    name: 'one failed checkpoint on the connection, then none',
    series: [
      {
        series: `certprov_store_checkpoint_failures_total{${NS},pod="certprov-0",where="connection"}`,
        values: '0x5 1x40',
      },
    ],
    quietAt: ['8m', '15m', '30m'],
  },
  {
    alert: 'CertprovStoreCheckpointsFailing',
    name: 'the checkpoint worker failed once',
    series: [
      { series: `certprov_store_checkpoint_failures_total{${NS},pod="certprov-0",where="worker"}`, values: '0x5 1x40' },
    ],
    quietAt: ['4m'],
    firesAt: '20m',
    labels: { namespace: 'certprov', where: 'worker' },
  },
  {
    alert: 'CertprovUndecodableMessages',
    name: 'one message cannot be decoded',
    series: [{ series: `certprov_messages_malformed_total{${NS},pod="certprov-a"}`, values: '0x5 1x30' }],
    quietAt: ['4m', '30m'],
    firesAt: '8m',
    labels: { namespace: 'certprov' },
  },
  {
    alert: 'CertprovNoProgressWhileBacklogGrows',
    name: 'the backlog grows and nothing is acknowledged',
    series: [
      { series: `${BACKLOG_METRIC}{subscription_id="certprov",project_id="p"}`, values: '0+10x60' },
      { series: `certprov_messages_acked_total{${NS},pod="certprov-a"}`, values: '0x60' },
    ],
    quietAt: ['10m'],
    firesAt: '40m',
  },
  {
    alert: 'CertprovNoProgressWhileBacklogGrows',
    name: 'the backlog grows while the adapter works through it',
    series: [
      { series: `${BACKLOG_METRIC}{subscription_id="certprov",project_id="p"}`, values: '0+10x60' },
      { series: `certprov_messages_acked_total{${NS},pod="certprov-a"}`, values: '0+5x60' },
    ],
    quietAt: ['40m', '60m'],
  },
];

describe('Grafana dashboard', () => {
  it('charts only metrics and labels the adapter exports, with a data source variable', async () => {
    const dashboard = JSON.parse(await readFile(path.join(DEPLOY, 'monitoring', 'grafana-dashboard.json'), 'utf8')) as {
      uid: string;
      panels: { id: number; type: string; title: string; datasource?: { uid: string }; targets?: { expr: string }[] }[];
      templating: { list: { name: string }[] };
    };
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'namespace']);
    const panels = dashboard.panels.filter((p) => p.type !== 'row');
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    const charted = new Set<string>();
    for (const panel of panels) {
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const { expr } of panel.targets ?? []) {
        expect(referenceProblems(expr), `${panel.title}: ${expr}`).toEqual([]);
        for (const m of referencesOf(expr).metrics) charted.add(m.replace(/_(bucket|sum|count)$/, ''));
      }
    }
    // The metrics the alerts are about are on the dashboard too.
    for (const name of [
      'certprov_processes_failed_total',
      'certprov_ca_pending_orders',
      'certprov_rate_limiter_wait_seconds',
      'certprov_deployment_fault_active',
      'certprov_messages_malformed_total',
      BACKLOG_METRIC,
    ]) {
      expect(charted, name).toContain(name);
    }
  });
});

describe('deploy/ as shipped', () => {
  it("docs/operations.md's checklist names exactly the keys of each overlay's settings.env", async () => {
    const docs = await readFile(path.join(REPO, 'docs', 'operations.md'), 'utf8');
    const listed = [...docs.matchAll(/^ *\| `([A-Z][A-Z_]+)` \|/gm)].map((m) => m[1]);
    for (const overlay of OVERLAYS) expect(listed.sort()).toEqual([...(await readSettings(overlay)).keys()].sort());
  });

  it('holds no secret material', async () => {
    const { stdout } = await import('node:child_process').then(({ execFileSync }) => ({
      stdout: execFileSync('git', ['ls-files', '--others', '--cached', '--exclude-standard', 'deploy'], {
        cwd: REPO,
        encoding: 'utf8',
      }),
    }));
    for (const file of stdout.split('\n').filter((f) => f !== '')) {
      const text = await readFile(path.join(REPO, file), 'utf8');
      expect(text, file).not.toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----/);
      expect(text, file).not.toMatch(/^kind:\s*Secret\s*$/m);
    }
  });
});
/* eslint-enable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-explicit-any */
