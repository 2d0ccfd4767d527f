/**
 * mulberry32: tiny, fast, good enough for fault dice and test inputs; deterministic from a 32-bit seed, so a failing
 * run can be repeated with the seed it printed. The sandbox's fault injection and the tests draw from this one copy.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
