// Writing 16-bit floats: f32 → bf16 / f16 against a float64 reference that picks the nearest of the
// two neighbouring representable values (ties to the even bit pattern, ±Inf past the largest
// finite one), every 16-bit pattern surviving a round trip, and safetensors files written as BF16
// or F16 reading back as the rounded values.
import assert from "node:assert/strict";
import {
  bf16BitsToF32,
  decodeSafetensors,
  encodeSafetensors,
  f16BitsToF32,
  f32ArrayTo16Bits,
  f32Bits,
  f32ToBf16Bits,
  f32ToF16Bits,
  type HostTensor,
} from "../src/nn/checkpoint/mod.ts";
import { Rng } from "../src/util/rng.ts";

interface Format {
  name: "BF16" | "F16";
  toBits: (x: number) => number;
  fromBits: (h: number) => number;
  /** Largest finite positive pattern; the next one is +Inf. */
  maxFinite: number;
}

const FORMATS: Format[] = [
  { name: "BF16", toBits: f32ToBf16Bits, fromBits: bf16BitsToF32, maxFinite: 0x7f7f },
  { name: "F16", toBits: f32ToF16Bits, fromBits: f16BitsToF32, maxFinite: 0x7bff },
];

const f32FromBits = (u: number) => new Float32Array(new Uint32Array([u >>> 0]).buffer)[0];

/**
 * The float64 reference: the nearest of the two representable neighbours of x, ties to the even
 * pattern; the value one ulp past the largest finite one stands for +Inf (its pattern, 0x7f80 or
 * 0x7c00, is even, as IEEE rounding wants). NaN → null (any NaN is right).
 */
function referenceRound(fmt: Format, x: number): number | null {
  if (Number.isNaN(x)) return null;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  const inf = fmt.maxFinite + 1;
  if (a === Infinity) return sign | inf;
  const valueOf = (h: number) =>
    h === inf ? 2 * fmt.fromBits(fmt.maxFinite) - fmt.fromBits(fmt.maxFinite - 1) : fmt.fromBits(h);
  // Largest pattern whose value is <= a (positive patterns are ordered as their values).
  let lo = 0, hi = inf;
  if (a >= valueOf(inf)) return sign | inf;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (valueOf(mid) <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - valueOf(lo), dHi = valueOf(hi) - a;
  if (dLo === 0) return sign | lo;
  if (dLo < dHi) return sign | lo;
  if (dHi < dLo) return sign | hi;
  return sign | (lo % 2 === 0 ? lo : hi);
}

function checkAgainstReference(fmt: Format, x: number, what: string) {
  const want = referenceRound(fmt, x);
  const got = fmt.toBits(x);
  if (want === null) {
    assert.ok(Number.isNaN(fmt.fromBits(got)), `${fmt.name} ${what}: NaN must stay NaN`);
    return;
  }
  if (got !== want) {
    assert.fail(
      `${fmt.name} ${what}: x = ${x} (f32 0x${f32Bits(x).toString(16)}) → 0x${got.toString(16)} (${
        fmt.fromBits(got)
      }), nearest is 0x${want.toString(16)} (${fmt.fromBits(want)})`,
    );
  }
}

Deno.test("16-bit write: every bf16 and f16 bit pattern survives f32 and back (NaN stays a quiet NaN of its sign)", () => {
  for (const fmt of FORMATS) {
    let nans = 0;
    for (let h = 0; h < 0x10000; h++) {
      const x = fmt.fromBits(h);
      const back = fmt.toBits(x);
      if (Number.isNaN(x)) {
        nans++;
        assert.ok(Number.isNaN(fmt.fromBits(back)), `${fmt.name} 0x${h.toString(16)}: NaN lost`);
        assert.equal(back & 0x8000, h & 0x8000, `${fmt.name} 0x${h.toString(16)}: NaN sign`);
        const quietBit = fmt.name === "BF16" ? 0x40 : 0x200;
        assert.ok((back & quietBit) !== 0, `${fmt.name} 0x${h.toString(16)}: NaN not quiet`);
      } else if (back !== h) {
        assert.fail(`${fmt.name} 0x${h.toString(16)} → ${x} → 0x${back.toString(16)}`);
      }
    }
    // 2 signs × (2^mantissa bits − 1) NaN patterns: the loop did see them
    assert.equal(nans, fmt.name === "BF16" ? 2 * 127 : 2 * 1023);
  }
});

Deno.test("16-bit write: random f32 bit patterns round to the nearest value, ties to even", () => {
  const rng = new Rng(11, 1);
  for (const fmt of FORMATS) {
    for (let i = 0; i < 100_000; i++) {
      const x = f32FromBits(rng.nextU32());
      checkAgainstReference(fmt, x, `random pattern ${i}`);
    }
  }
});

Deno.test("16-bit write: exact ties and their f32 neighbours, both signs, at every binade", () => {
  const rng = new Rng(12, 1);
  const f32Next = (x: number, dir: 1 | -1) => {
    // x > 0 here: the neighbouring f32 is one pattern up or down
    return f32FromBits(f32Bits(x) + dir);
  };
  for (const fmt of FORMATS) {
    let ties = 0;
    const patterns = [0, 1, 2, 3, fmt.maxFinite - 1, fmt.maxFinite];
    for (let i = 0; i < 20_000; i++) patterns.push(rng.int(fmt.maxFinite + 1));
    for (const h of patterns) {
      const lo = fmt.fromBits(h);
      const hi = h === fmt.maxFinite ? 2 * lo - fmt.fromBits(h - 1) : fmt.fromBits(h + 1);
      const mid = (lo + hi) / 2;
      assert.equal(Math.fround(mid), mid, "the midpoint is an f32 (the test relies on it)");
      for (const x of [mid, f32Next(mid, 1), f32Next(mid, -1)]) {
        for (const s of [1, -1]) {
          checkAgainstReference(fmt, s * x, `near tie above 0x${h.toString(16)}`);
        }
      }
      // the tie itself goes to the even one of the two
      const got = fmt.toBits(mid);
      assert.equal(got % 2, 0, `${fmt.name} tie ${mid} went to odd 0x${got.toString(16)}`);
      ties++;
    }
    assert.ok(ties > 20_000);
  }
});

Deno.test("16-bit write: huge, tiny and subnormal magnitudes, signed zeros, infinities", () => {
  const rng = new Rng(13, 1);
  const specials = [
    0,
    -0,
    Infinity,
    -Infinity,
    NaN,
    3.4028234663852886e38, // largest f32
    1.401298464324817e-45, // smallest f32 subnormal
    1.1754943508222875e-38, // smallest f32 normal
    65504,
    65519,
    65520,
    65536,
    2 ** -14,
    2 ** -24,
    2 ** -25,
    1.5 * 2 ** -25,
    2 ** -26,
    3.3895313892515355e38, // largest bf16
  ];
  for (const fmt of FORMATS) {
    for (const x of specials) {
      for (const s of [1, -1]) checkAgainstReference(fmt, s * Math.fround(x), `special ${s * x}`);
    }
    assert.equal(fmt.toBits(-0), 0x8000, `${fmt.name}: -0 keeps its sign`);
    assert.equal(fmt.toBits(-1e-45), 0x8000, `${fmt.name}: a tiny negative rounds to -0`);
    // log-uniform magnitudes across and beyond each format's range (subnormals included)
    const [lo2, hi2] = fmt.name === "F16" ? [-27, 17] : [-140, 129];
    for (let i = 0; i < 50_000; i++) {
      const x = Math.fround(
        2 ** (lo2 + (hi2 - lo2) * rng.uniform()) * (rng.uniform() < 0.5 ? -1 : 1),
      );
      checkAgainstReference(fmt, x, `log-uniform ${i}`);
    }
  }
  assert.equal(f32ToF16Bits(65519), 0x7bff, "65519 rounds down to 65504");
  assert.equal(f32ToF16Bits(65520), 0x7c00, "65520 (the tie past 65504) overflows to Inf");
  assert.equal(f32ToF16Bits(2 ** -25), 0, "2^-25 ties to +0");
  assert.equal(f32ToF16Bits(1.5 * 2 ** -25), 1, "above the tie: the smallest subnormal");
});

Deno.test("16-bit write: the array conversion equals the scalar one and checks its output length", () => {
  const rng = new Rng(14, 1);
  const data = Float32Array.from({ length: 4097 }, () => f32FromBits(rng.nextU32()));
  for (const fmt of FORMATS) {
    const bits = f32ArrayTo16Bits(data, fmt.name);
    data.forEach((x, i) => {
      if (bits[i] !== fmt.toBits(x)) assert.fail(`${fmt.name} element ${i}`);
    });
    assert.throws(() => f32ArrayTo16Bits(data, fmt.name, new Uint16Array(3)), /out has 3/);
  }
});

Deno.test("16-bit write: safetensors written as BF16/F16 read back as the rounded values; ints unchanged", () => {
  const rng = new Rng(15, 1);
  const n = 1000;
  const representable = (fmt: Format) =>
    Float32Array.from({ length: n }, () => {
      let x: number;
      do x = fmt.fromBits(rng.int(0x10000)); while (Number.isNaN(x));
      return x;
    });
  const arbitrary = Float32Array.from({ length: n }, () => rng.normal() * 2 ** (rng.int(40) - 20));
  for (const fmt of FORMATS) {
    const exact = representable(fmt);
    const ints = Int32Array.from({ length: 7 }, () => rng.nextU32() | 0);
    const longs = BigInt64Array.from({ length: 5 }, () => BigInt(rng.nextU32()) << 20n);
    const tensors = new Map<string, HostTensor>([
      ["exact", { shape: [10, 100], data: exact }],
      ["ints", { shape: [7], data: ints }],
      ["arbitrary", { shape: [n], data: arbitrary }],
      ["longs", { shape: [5, 1], data: longs }],
      ["scalar", { shape: [], data: Float32Array.of(-0) }],
    ]);
    const bytes = encodeSafetensors(tensors, { format: "pt" }, { floatDType: fmt.name });
    const { tensors: back, metadata } = decodeSafetensors(bytes);
    assert.deepEqual(metadata, { format: "pt" });
    for (const name of ["exact", "arbitrary", "scalar"]) {
      assert.equal(back.get(name)!.dtype, fmt.name);
    }
    assert.equal(back.get("ints")!.dtype, "I32");
    assert.equal(back.get("longs")!.dtype, "I64");
    assert.deepEqual(back.get("ints")!.data, ints);
    assert.deepEqual(back.get("longs")!.data, longs);
    assert.deepEqual(back.get("exact")!.data, exact, `${fmt.name}: representable values exactly`);
    assert.ok(Object.is((back.get("scalar")!.data as Float32Array)[0], -0), "-0 kept");
    const got = back.get("arbitrary")!.data as Float32Array;
    arbitrary.forEach((x, i) => {
      const want = fmt.fromBits(referenceRound(fmt, x)!);
      if (!Object.is(got[i], want)) {
        assert.fail(`${fmt.name} element ${i}: ${x} → ${got[i]}, want ${want}`);
      }
    });
    // Half the bytes of F32 for the float data (the header aside).
    const f32Bytes = encodeSafetensors(tensors, { format: "pt" }).length;
    assert.ok(bytes.length < f32Bytes - 2 * n * 2 + 200, `${bytes.length} vs ${f32Bytes}`);
  }
});

Deno.test("16-bit write: a bad floatDType is refused, naming the option", () => {
  const t = new Map([["w", { shape: [1], data: Float32Array.of(1) }]]);
  for (const bad of ["F64", "bf16", "I32", 16]) {
    assert.throws(
      () => encodeSafetensors(t, {}, { floatDType: bad as "F32" }),
      (e: Error) =>
        e instanceof RangeError && /option floatDType must be "F32", "BF16", "F16"/.test(e.message),
    );
  }
});
