/**
 * A benchmark scenario. Each file in bench/scenarios/ default-exports one; `npm run bench` runs them all
 * (or those named on the command line). Figures are reported as per-operation costs or ratios measured in one run:
 * the machine is noisy, absolute wall times are not comparable across runs.
 */
export interface BenchOptions {
  /** `npm run bench -- --faults`: run the fault-injection scenarios too. */
  readonly faults: boolean;
  /** `--quick`: smaller sizes (used by the test that keeps the benchmark runnable). */
  readonly quick: boolean;
  /** `--smoke`: the smallest sizes, seconds in all (CI runs it so the benchmark cannot rot). */
  readonly smoke: boolean;
}

export interface BenchFigure {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  /** The target this figure is held to, in words (e.g. "= 1.0", "independent of pending orders"). */
  readonly target?: string;
}

export interface BenchScenario {
  readonly name: string;
  readonly description: string;
  /** Only with --faults. */
  readonly faultsOnly?: boolean;
  run(options: BenchOptions): Promise<readonly BenchFigure[]>;
}

/** The `p`th percentile (0–100) of ascending `sorted` (nearest rank); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}
