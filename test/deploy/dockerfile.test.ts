/**
 * The container image, checked without a Docker daemon (none is available here): the Dockerfile's structure
 * (stages, production-only install, non-root user, entrypoint `certprov run`, labels), its build context
 * (.dockerignore), that the runtime needs only production dependencies, and that the build output it packages
 * (`npm run build` → dist/) actually runs — all cross-checked with package.json, tsconfig.build.json and deploy/.
 */
import { execFile } from 'node:child_process';
import { cp, mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config/schema.ts';
import { REPO, only, readSettings, renderOverlay } from './kustomize.ts';

const run = promisify(execFile);

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}
interface Stage {
  readonly image: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions (continuation lines joined, comments dropped, ARGs expanded in FROM). */
function parseDockerfile(text: string): { globalArgs: Map<string, string>; stages: Stage[] } {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const upper = keyword.toUpperCase();
    if (upper === 'FROM') {
      const [, image = '', name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args) ?? [];
      const expanded = image.replace(
        /\$\{(\w+)\}|\$(\w+)/g,
        (_, a: string | undefined, b: string | undefined) => globalArgs.get(a ?? b ?? '') ?? '',
      );
      stages.push({ image: expanded, name, instructions: [] });
    } else if (stages.length === 0) {
      if (upper === 'ARG') {
        const [n = '', v = ''] = args.split('=', 2);
        globalArgs.set(n, v);
      }
    } else {
      stages.at(-1)?.instructions.push({ keyword: upper, args });
    }
  }
  return { globalArgs, stages };
}

const execForm = (args: string): string[] => JSON.parse(args) as string[];

/** moby's .dockerignore semantics, enough for our file: last matching rule wins; a rule matching a parent dir matches its files. */
function dockerignored(rules: readonly string[], file: string): boolean {
  const toRegex = (pattern: string) =>
    new RegExp(
      '^' +
        pattern
          .replace(/\/+$/, '')
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*\*\/?/g, '<<globstar>>')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]')
          .replace(/<<globstar>>/g, '(?:.*/)?') +
        '$',
    );
  const parents = file.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
  let excluded = false;
  for (const rule of rules) {
    const negate = rule.startsWith('!');
    const regex = toRegex(negate ? rule.slice(1) : rule);
    if (parents.some((p) => regex.test(p))) excluded = !negate;
  }
  return excluded;
}

let dockerfile: ReturnType<typeof parseDockerfile>;
let ignoreRules: string[];
let pkg: {
  name: string;
  license: string;
  version: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

beforeAll(async () => {
  dockerfile = parseDockerfile(await readFile(path.join(REPO, 'Dockerfile'), 'utf8'));
  ignoreRules = (await readFile(path.join(REPO, '.dockerignore'), 'utf8'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  pkg = JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as typeof pkg;
});

function runs(stage: Stage): string[] {
  return stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
}
function finalStage(): Stage {
  const last = dockerfile.stages.at(-1);
  if (last === undefined) throw new Error('no stage');
  return last;
}
function stageNamed(name: string): Stage {
  const stage = dockerfile.stages.find((s) => s.name === name);
  if (stage === undefined) throw new Error(`no stage ${name}`);
  return stage;
}
function instructionsOf(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword);
}

describe('Dockerfile', () => {
  it('builds in a stage with dev dependencies and runs on Node.js 24 in a separate, final stage', () => {
    expect(dockerfile.stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of dockerfile.stages)
      expect(stage.image, stage.name).toMatch(/^(docker\.io\/library\/)?node:24[.-]|distroless\/nodejs24/);
    const builder = dockerfile.stages.find((s) => runs(s).some((r) => /\bnpm run build\b/.test(r)));
    expect(builder, 'a stage runs npm run build').toBeDefined();
    // The build stage installs everything (TypeScript is a dev dependency) from the lock file.
    expect(runs(builder as Stage).some((r) => /\bnpm ci\b/.test(r) && !r.includes('--omit=dev'))).toBe(true);
    expect(builder).not.toBe(finalStage());
  });

  it('ships production dependencies only: the runtime node_modules come from `npm ci --omit=dev`', () => {
    const final = finalStage();
    for (const r of runs(final))
      expect(r, 'no install in the runtime stage beyond --omit=dev').not.toMatch(
        /\bnpm (ci|install)\b(?!.*--omit=dev)/,
      );
    const copies = instructionsOf(final, 'COPY').map((i) => i.args);
    const modules = copies.find((c) => /\/app\/node_modules\s/.test(c));
    const from = /--from=(\S+)/.exec(modules ?? '')?.[1];
    expect(from, 'node_modules copied from another stage').toBeDefined();
    expect(runs(stageNamed(from as string)).some((r) => /\bnpm ci\b.*--omit=dev/.test(r))).toBe(true);
    // dist/ comes from the build stage, at tsconfig.build.json's outDir.
    expect(copies.some((c) => /--from=build\b.*\/app\/dist\s+\.\/dist$/.test(c))).toBe(true);
  });

  it('runs as a non-root numeric user, the same uid the Deployment runs as', async () => {
    const users = instructionsOf(finalStage(), 'USER').map((i) => i.args);
    expect(users).toHaveLength(1);
    const [uid, gid] = (users[0] ?? '').split(':').map(Number);
    expect(uid).toBeGreaterThan(0);
    expect(gid).toBeGreaterThan(0);
    const deployment = only(await renderOverlay('digicert'), 'Deployment');
    /* eslint-disable @typescript-eslint/no-unsafe-member-access */
    expect(deployment.spec.template.spec.securityContext.runAsUser).toBe(uid);
    expect(deployment.spec.template.spec.securityContext.runAsGroup).toBe(gid);
    /* eslint-enable @typescript-eslint/no-unsafe-member-access */
  });

  it('starts `certprov run` with node as PID 1 (exec form, never npm start), reading the path the Deployment mounts', async () => {
    const final = finalStage();
    const entrypoint = instructionsOf(final, 'ENTRYPOINT').map((i) => execForm(i.args));
    const cmd = instructionsOf(final, 'CMD').map((i) => execForm(i.args));
    expect(entrypoint).toEqual([['node', pkg.bin.certprov]]);
    expect(pkg.bin.certprov).toBe('dist/main.js');
    expect(cmd[0]?.[0]).toBe('run');
    const all = dockerfile.stages
      .flatMap((s) => s.instructions)
      .filter((i) => i.keyword === 'ENTRYPOINT' || i.keyword === 'CMD');
    for (const i of all) expect(i.args).not.toMatch(/npm/);
    const deployment = only(await renderOverlay('digicert'), 'Deployment');
    // eslint-disable-next-line @typescript-eslint/no-unsafe-member-access
    expect(cmd[0]).toEqual(deployment.spec.template.spec.containers[0].args);
  });

  it('exposes the ops port and carries OCI labels consistent with package.json', () => {
    const final = finalStage();
    expect(instructionsOf(final, 'EXPOSE').map((i) => i.args)).toEqual([String(DEFAULTS.http.port)]);
    const labels = instructionsOf(final, 'LABEL')
      .map((i) => i.args)
      .join(' ');
    for (const key of ['title', 'description', 'licenses', 'version', 'revision']) {
      expect(labels).toContain(`org.opencontainers.image.${key}=`);
    }
    expect(labels).toContain(`org.opencontainers.image.licenses="${pkg.license}"`);
    expect(labels).toContain(`org.opencontainers.image.title="${pkg.name}"`);
  });

  it('sends the daemon only what the build copies: sources and manifests in, secrets, tests and node_modules out', async () => {
    const copied = dockerfile.stages
      .flatMap((s) => instructionsOf(s, 'COPY'))
      .filter((i) => !i.args.includes('--from='));
    const sources = copied.flatMap((i) => i.args.replace(/--\S+/g, '').trim().split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      const probe = source === 'src' ? 'src/main.ts' : source;
      expect(dockerignored(ignoreRules, probe), `${probe} reaches the build`).toBe(false);
    }
    for (const dir of (await readdir(path.join(REPO, 'src'), { withFileTypes: true })).filter((d) => d.isDirectory())) {
      expect(dockerignored(ignoreRules, `src/${dir.name}/x.ts`), `src/${dir.name}`).toBe(false);
    }
    for (const kept of [
      'node_modules/pino/package.json',
      'dist/main.js',
      '.git/config',
      'test/unit/x.test.ts',
      'ca/ca.key.pem',
      '.env',
      'demo-output/a.pem',
      'deploy/overlays/digicert/config.yaml',
      'src/x.test.ts',
    ]) {
      expect(dockerignored(ignoreRules, kept), `${kept} stays out`).toBe(true);
    }
  });
});

/** Bare-specifier imports a source file needs at run time (`import type` is erased, so it does not count). */
function runtimeImports(source: string): string[] {
  const specifiers: string[] = [];
  for (const m of source.matchAll(/^\s*(import|export)\s+(?!type\b)[^'";]*?\bfrom\s*['"]([^'"]+)['"]/gm))
    specifiers.push(m[2] as string);
  for (const m of source.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)) specifiers.push(m[1] as string);
  for (const m of source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) specifiers.push(m[1] as string);
  return specifiers.filter((s) => !s.startsWith('.') && !s.startsWith('/'));
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

describe('the image’s contents', () => {
  it('need only production dependencies (and Node.js built-ins) at run time', async () => {
    const builtins = new Set(builtinModules);
    const used = new Map<string, string>();
    for (const file of await sourceFiles(path.join(REPO, 'src'))) {
      for (const specifier of runtimeImports(await readFile(file, 'utf8'))) {
        const name = specifier.startsWith('@')
          ? specifier.split('/').slice(0, 2).join('/')
          : (specifier.split('/')[0] ?? specifier);
        if (specifier.startsWith('node:') || builtins.has(name)) continue;
        used.set(name, path.relative(REPO, file));
      }
    }
    expect(used.size).toBeGreaterThan(5);
    for (const [name, file] of used)
      expect(pkg.dependencies, `${name} (imported by ${file}) is a production dependency`).toHaveProperty([name]);
  });

  describe('npm run build output', () => {
    // Inside node_modules so that the built files resolve the installed packages, as /app/dist does in the image.
    const root = path.join(REPO, 'node_modules', '.cache', `certprov-build-test-${process.pid}`);
    const main = path.join(root, 'dist', 'main.js');
    beforeAll(async () => {
      await mkdir(root, { recursive: true });
      await run(
        path.join(REPO, 'node_modules', '.bin', 'tsc'),
        ['-p', path.join(REPO, 'tsconfig.build.json'), '--outDir', path.join(root, 'dist')],
        { cwd: REPO },
      );
      // src/version.ts reads ../package.json from dist/, as in the image (/app/package.json).
      await cp(path.join(REPO, 'package.json'), path.join(root, 'package.json'));
    }, 120_000);
    afterAll(async () => {
      await rm(root, { recursive: true, force: true });
    });

    it('runs: --help, --version, and check-config on an overlay configuration', async () => {
      const help = await run(process.execPath, [main, '--help']);
      expect(help.stdout).toContain('certprov run --config FILE');
      expect((await run(process.execPath, [main, '--version'])).stdout.trim()).toBe(pkg.version);
      // The overlay as shipped still holds its placeholders: with the project its settings.env gives the pod, the
      // built check-config refuses them (exit 2), naming the place to edit — as it must before anyone applies it.
      const project = (await readSettings('digicert')).get('PROJECT_ID');
      const check = await run(
        process.execPath,
        [main, 'check-config', '--config', path.join(REPO, 'deploy/overlays/digicert/config.yaml')],
        { env: { ...process.env, GOOGLE_CLOUD_PROJECT: project } },
      ).then(
        () => ({ code: 0, stderr: '' }),
        (error: { code: number; stderr: string }) => error,
      );
      expect(check.code).toBe(2);
      expect(check.stderr).toMatch(
        /pubsub\.subscription: GOOGLE_CLOUD_PROJECT is "PROJECT_ID", a placeholder: .*settings\.env/,
      );
      expect(check.stderr).toMatch(/organizationId: 123456 is the example's organization id/);
    });
  });
});
