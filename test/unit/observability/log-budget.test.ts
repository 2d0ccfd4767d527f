import { describe, expect, it } from 'vitest';
import { LogBudget } from '../../../src/observability/log-budget.ts';

describe('LogBudget', () => {
  it('allows perWindow lines a window, then counts the rest and reports them with the next allowed line', () => {
    let now = 1_000;
    const budget = new LogBudget({ perWindow: 3, windowMs: 60_000, now: () => now });
    const taken = Array.from({ length: 5 }, () => budget.take());
    expect(taken).toEqual([{ suppressed: 0 }, { suppressed: 0 }, { suppressed: 0 }, undefined, undefined]);
    now += 59_999;
    expect(budget.take()).toBeUndefined();
    now += 1;
    expect(budget.take()).toEqual({ suppressed: 3 });
    expect(budget.take()).toEqual({ suppressed: 0 });
  });
});
