/**
 * Every shell command the README and docs/ show is checked: a `certprov` command exists and takes every option it
 * is shown with; the dead-letter replay reads the subscription `setup-pubsub` creates (not the topic); the
 * kustomize directories render; the commands that can run here do.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../src/main.ts';
import { kustomize } from '../../deploy/kustomize.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');

interface DocCommand {
  readonly file: string;
  readonly line: string;
}

/** Shell lines inside fenced code blocks, `\` continuations joined, comments cut. */
function docCommands(): DocCommand[] {
  const files = [
    'README.md',
    ...readdirSync(path.join(ROOT, 'docs'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.md'))
      .map((f) => path.join('docs', f)),
  ];
  const commands: DocCommand[] = [];
  for (const file of files) {
    const text = readFileSync(path.join(ROOT, file), 'utf8');
    for (const block of text.matchAll(/```(\w*)\n([\s\S]*?)```/g)) {
      const body = (block[2] ?? '').replace(/\\\n\s*/g, ' ');
      for (const raw of body.split('\n')) {
        const line = raw.replace(/\s+#\s.*$/, '').trim();
        if (/^(certprov|node src\/main\.ts|kubectl) /.test(line)) commands.push({ file, line });
      }
    }
  }
  return commands;
}

const all = docCommands();
const certprovLines = all.filter((c) => /^(certprov|node src\/main\.ts) /.test(c.line));

describe('shell commands in the README and docs/', () => {
  it('are found', () => {
    expect(certprovLines.length).toBeGreaterThan(5);
  });

  it.each(certprovLines.map((c) => [`${c.file}: ${c.line}`, c] as const))(
    '%s — the command exists and takes every option shown',
    async (_, { line }) => {
      const words = line.replace(/^node src\/main\.ts /, 'certprov ').split(/\s+/);
      const entry = COMMANDS.find((c) => c.name === words[1]);
      expect(entry, `no command ${words[1]}`).toBeDefined();
      const help = (await entry?.load())?.help ?? '';
      for (const flag of line.matchAll(/(?<![\w-])--[a-z][a-z-]*/g)) {
        expect(help, `${words[1]} ${flag[0]}`).toMatch(new RegExp(`${flag[0]}\\b`));
      }
    },
  );

  it('dead-letter replay reads the dead-letter subscription setup-pubsub creates, not a topic', () => {
    const topics = all
      .flatMap((c) => [...c.line.matchAll(/--dead-letter-topic (\S+)/g)].map((m) => m[1]))
      .concat(
        readdirSync(path.join(ROOT, 'docs'))
          .filter((f) => f.endsWith('.md'))
          .flatMap((f) => [
            ...readFileSync(path.join(ROOT, 'docs', f), 'utf8').matchAll(/--dead-letter-topic (\S+?)`/g),
          ])
          .map((m) => m[1]),
      );
    expect(topics.length).toBeGreaterThan(0);
    const replays = all.filter((c) => /^certprov dead-letter replay /.test(c.line));
    expect(replays.length).toBeGreaterThan(0);
    for (const { file, line } of replays) {
      const subscription = /--subscription (\S+)/.exec(line)?.[1];
      if (subscription === undefined || /^[A-Z]+$/.test(subscription)) continue; // a synopsis placeholder
      // setup-pubsub names it `<dead-letter topic id>-sub` (src/cli/pubsub-resources.ts).
      expect(
        topics.map((t) => `${t}-sub`),
        `${file}: ${line}`,
      ).toContain(subscription);
    }
  });

  it.each(all.filter((c) => /^kubectl (kustomize|apply -k) /.test(c.line)).map((c) => [c.line, c] as const))(
    '%s — the directory renders',
    async (_, { line }) => {
      const dir = /(?:kustomize|-k) (\S+)/.exec(line)?.[1] ?? '';
      expect((await kustomize(path.join(ROOT, dir))).length).toBeGreaterThan(3);
    },
  );

  it('local-ca init, as docs/backends/local.md shows it, runs here', () => {
    const shown = certprovLines.find((c) => /local-ca init --dir \S+ --key ec/.test(c.line));
    expect(shown).toBeDefined();
    const cwd = mkdtempSync(path.join(tmpdir(), 'certprov-doc-'));
    try {
      const args = (shown?.line ?? '').replace(/^(node src\/main\.ts|certprov) /, '').split(/\s+/);
      const run = spawnSync(process.execPath, [path.join(ROOT, 'src/main.ts'), ...args], { cwd, encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
      expect(readdirSync(path.join(cwd, 'ca')).sort()).toEqual(['ca.cert.pem', 'ca.key.pem']);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
