/**
 * The tests' seeded random numbers: mulberry32, a tiny PRNG giving the same sequence everywhere for a seed
 * (fuzzers and random-input tests must be reproducible, not cryptographic). Floats in [0, 1).
 */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
