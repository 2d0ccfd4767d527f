/**
 * `npm run bench [-- [--faults] [--quick] [scenario …]]` — runs the scenarios in bench/scenarios/ and prints
 * their figures; also writes them to bench/results/latest.json.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { BenchFigure, BenchScenario } from './scenario.ts';

const { values, positionals } = parseArgs({
  options: {
    faults: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
  },
  allowPositionals: true,
});
/**
 * What `--smoke` (CI) runs, at their smallest sizes: the floor, the backlog (100 devices, about 15 s), and the fleet
 * (30 processes; most of its ~45 s is starting the Java emulators) so that the multi-process rig cannot rot.
 */
const SMOKE: ReadonlySet<string> = new Set(['floor', 'backlog', 'fleet']);
const dir = path.join(import.meta.dirname, 'scenarios');
const scenarios: BenchScenario[] = [];
for (const file of (await readdir(dir)).filter((f) => f.endsWith('.ts')).sort()) {
  const module = (await import(path.join(dir, file))) as { default: BenchScenario };
  scenarios.push(module.default);
}
const selected = scenarios.filter((s) =>
  positionals.length === 0
    ? values.smoke
      ? SMOKE.has(s.name)
      : !s.faultsOnly || values.faults
    : positionals.includes(s.name),
);
if (selected.length === 0) {
  console.error(`no scenario selected; available: ${scenarios.map((s) => s.name).join(', ')}`);
  process.exit(2);
}
const results: Record<string, readonly BenchFigure[]> = {};
for (const scenario of selected) {
  console.log(`\n## ${scenario.name} — ${scenario.description}`);
  const figures = await scenario.run({
    faults: values.faults,
    quick: values.quick || values.smoke,
    smoke: values.smoke,
  });
  results[scenario.name] = figures;
  const width = Math.max(...figures.map((f) => f.name.length));
  for (const f of figures) {
    // A ratio over nothing (a replica that issued no certificate) has no value: printed as a dash.
    const value = !Number.isFinite(f.value)
      ? '—'
      : Number.isInteger(f.value)
        ? String(f.value)
        : f.value.toPrecision(4);
    console.log(
      `  ${f.name.padEnd(width)}  ${value} ${f.unit}${f.target === undefined ? '' : `   (target ${f.target})`}`,
    );
  }
}
await mkdir(path.join(import.meta.dirname, 'results'), { recursive: true });
await writeFile(path.join(import.meta.dirname, 'results', 'latest.json'), JSON.stringify(results, null, 2) + '\n');
