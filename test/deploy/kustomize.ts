/**
 * Renders deploy/ with the real `kubectl kustomize` (what `kubectl apply -k` applies) and gives typed access to the
 * objects. Missing tools fail the run with how to install them — they are never skipped silently.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';

const run = promisify(execFile);

export const REPO = path.resolve(import.meta.dirname, '../..');
export const DEPLOY = path.join(REPO, 'deploy');
export const OVERLAYS = ['digicert', 'azure-key-vault', 'google-cas'] as const;
export type Overlay = (typeof OVERLAYS)[number];

// Kubernetes objects are open-ended; tests read them through these loose shapes.
/* eslint-disable @typescript-eslint/no-explicit-any */
export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: any;
};
/* eslint-enable @typescript-eslint/no-explicit-any */

async function tool(command: string, args: string[], hint: string): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(command, args, { maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') throw new Error(`${command} is not installed: ${hint}`, { cause: error });
    throw new Error(`${command} ${args.join(' ')} failed:\n${e.stderr ?? ''}${e.stdout ?? ''}`, { cause: error });
  }
}

/** `kubectl kustomize DIR`, parsed. */
export async function kustomize(dir: string): Promise<K8sObject[]> {
  const { stdout } = await tool('kubectl', ['kustomize', dir], KUBECTL_HINT);
  return parseObjects(stdout);
}

const KUBECTL_HINT = 'install kubectl (it bundles kustomize), or run .ci/run';

function parseObjects(stdout: string): K8sObject[] {
  return parseAllDocuments(stdout)
    .map((doc) => doc.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

/** Renders an overlay as shipped. */
export function renderOverlay(overlay: Overlay): Promise<K8sObject[]> {
  return kustomize(path.join(DEPLOY, 'overlays', overlay));
}

export type Component = 'prometheus-operator' | 'hpa-cpu-only' | 'crl';

/**
 * Renders an overlay with components added (what an overlay's comment or docs/operations.md tell operators to add),
 * from a temporary kustomization next to nothing: kustomize wants relative paths.
 */
export async function renderOverlayWith(overlay: Overlay, components: readonly Component[]): Promise<K8sObject[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'certprov-kustomize-'));
  try {
    const rel = (p: string) => path.relative(dir, p);
    await writeFile(
      path.join(dir, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'namespace: certprov',
        'resources:',
        `  - ${rel(path.join(DEPLOY, 'overlays', overlay))}`,
        'components:',
        ...components.map((c) => `  - ${rel(path.join(DEPLOY, 'components', c))}`),
        '',
      ].join('\n'),
    );
    return await kustomize(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The KEY=value lines of an overlay's settings.env (components/settings copies them into the manifests). */
export async function readSettings(overlay: Overlay): Promise<Map<string, string>> {
  const text = await readFile(path.join(DEPLOY, 'overlays', overlay, 'settings.env'), 'utf8');
  const lines = text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  return new Map(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/** Renders an overlay from a copy of deploy/ whose settings.env holds `settings`, as an admin would edit it. */
export async function renderOverlayWithSettings(
  overlay: Overlay,
  settings: ReadonlyMap<string, string>,
): Promise<{ objects: K8sObject[]; text: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'certprov-settings-'));
  try {
    await cp(DEPLOY, dir, { recursive: true });
    const lines = [...settings].map(([k, v]) => `${k}=${v}`);
    await writeFile(path.join(dir, 'overlays', overlay, 'settings.env'), `${lines.join('\n')}\n`);
    const { stdout } = await tool('kubectl', ['kustomize', path.join(dir, 'overlays', overlay)], KUBECTL_HINT);
    return { objects: parseObjects(stdout), text: stdout };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function only(objects: readonly K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0] as K8sObject;
}

/** `promtool ARGS…`; resolves with its output, rejects with it. */
export function promtool(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return tool(
    'promtool',
    args,
    'install the Debian package `prometheus` (apt-get install --no-install-recommends prometheus), or run .ci/run',
  );
}
