/**
 * Seeded, counter-based random numbers.
 *
 * Every random choice in jackpot (data order, Dirichlet draws, OBRS masks) comes from here so that a
 * seed reproduces a run exactly. The generator is counter-based: the value at `(seed, stream, index)`
 * is a pure hash, which is what lets a GPU kernel draw the same OBRS mask as the float64 reference
 * whatever the dispatch shape. Only 32-bit integer multiplies and xor-shifts are used, so WGSL can
 * mirror `hash3` exactly (`kernels/rng.wgsl` does).
 *
 * @module
 */

/** The murmur3 32-bit finaliser: a bijective avalanche mix of one u32. */
export function mix32(x: number): number {
  x = x >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * Hash of three u32 words to one u32; the primitive both the CPU and the GPU generators share.
 * Each word is mixed in with a different odd constant so that (a, b, c) and its permutations differ.
 */
export function hash3(seed: number, stream: number, index: number): number {
  let h = mix32((seed >>> 0) ^ 0x9e3779b9);
  h = mix32((h ^ Math.imul(stream >>> 0, 0x85ebca77)) >>> 0);
  h = mix32((h ^ Math.imul(index >>> 0, 0xc2b2ae3d)) >>> 0);
  return h;
}

/**
 * Uniform in [0, 1) at a counter position, with 24 bits of resolution so that the value is exactly
 * representable in float32 and a GPU kernel using the same hash compares against the same number.
 *
 * @example
 * ```ts
 * const u = uniformAt(7, 3, 0); // the draw for row 3 under seed 7
 * ```
 */
export function uniformAt(seed: number, stream: number, index: number): number {
  return (hash3(seed, stream, index) >>> 8) / 16777216;
}

/**
 * A sequential generator over one `(seed, stream)` pair; `fork` derives independent streams.
 *
 * @example
 * ```ts
 * const rng = new Rng(42);
 * const p = rng.dirichlet(new Float64Array(10).fill(0.5));
 * ```
 */
export class Rng {
  #seed: number;
  #stream: number;
  #counter = 0;
  #spareNormal: number | null = null;

  /** A generator for `seed` (any integer; taken mod 2^32) on stream `stream`. */
  constructor(seed: number, stream = 0) {
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite integer, got ${seed}`);
    this.#seed = Math.trunc(seed) >>> 0;
    this.#stream = stream >>> 0;
  }

  /** An independent generator with the same seed on another stream. */
  fork(stream: number): Rng {
    return new Rng(this.#seed, mix32(this.#stream ^ mix32(stream + 0x632be5ab)));
  }

  /** Next u32. */
  nextU32(): number {
    return hash3(this.#seed, this.#stream, this.#counter++);
  }

  /** Uniform in [0, 1) with 53 bits of resolution. */
  uniform(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n >= 1)) throw new RangeError(`int(n) needs n >= 1, got ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box–Muller, both values used). */
  normal(): number {
    if (this.#spareNormal !== null) {
      const v = this.#spareNormal;
      this.#spareNormal = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Gamma(shape, 1) by Marsaglia–Tsang, with the boost for shape < 1. */
  gamma(shape: number): number {
    if (!(shape > 0)) throw new RangeError(`gamma shape must be > 0, got ${shape}`);
    if (shape < 1) {
      // Gamma(a) = Gamma(a + 1) · U^(1/a); keeps the rejection loop efficient for small a.
      let u = 0;
      while (u === 0) u = this.uniform();
      return this.gamma(shape + 1) * Math.pow(u, 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number, v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.uniform();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /**
   * A draw from Dirichlet(alpha). Small concentrations can underflow every gamma draw to 0; the
   * result is then a point mass on a uniformly drawn index (there is no largest draw) rather
   * than NaN.
   */
  dirichlet(alpha: ArrayLike<number>): Float64Array {
    const out = new Float64Array(alpha.length);
    let sum = 0;
    for (let i = 0; i < alpha.length; i++) {
      out[i] = this.gamma(alpha[i]);
      sum += out[i];
    }
    if (sum > 0 && Number.isFinite(sum)) {
      for (let i = 0; i < out.length; i++) out[i] /= sum;
    } else {
      out.fill(0);
      out[this.int(out.length)] = 1;
    }
    return out;
  }

  /** Fisher–Yates shuffle in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}
