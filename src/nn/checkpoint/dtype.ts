/**
 * The safetensors element types this project reads and writes, the exact conversions of the
 * 16-bit floats to float32 (every f16 and bf16 value is representable in f32, so these are exact),
 * and the rounding conversions back (round to nearest, ties to even, as PyTorch's `.to()` does).
 *
 * @module
 */

/**
 * Element types read: F32, F16 and BF16 (converted to f32), I32, I64. Written: the same (float
 * tensors as F32, BF16 or F16, see `FloatDType`).
 */
export type SafetensorsDType = "F32" | "F16" | "BF16" | "I32" | "I64";

/** Bytes per element of each supported dtype. */
export const DTYPE_SIZE: Readonly<Record<SafetensorsDType, number>> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  I32: 4,
  I64: 8,
};

/** Whether `s` names a supported dtype. */
export function isDType(s: unknown): s is SafetensorsDType {
  return typeof s === "string" && Object.hasOwn(DTYPE_SIZE, s);
}

/**
 * float32 bit pattern of an IEEE half-precision bit pattern: exact, subnormals normalised, ±Inf
 * kept, NaN payloads shifted into the top of the f32 mantissa (as hardware conversions do).
 */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  let exp = (h >>> 10) & 0x1f;
  let man = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (man << 13)) >>> 0;
  if (exp === 0) {
    if (man === 0) return sign >>> 0;
    // Subnormal m·2^-24: shift until the implicit bit appears, lowering the exponent each time.
    exp = 1;
    while ((man & 0x400) === 0) {
      man <<= 1;
      exp--;
    }
    man &= 0x3ff;
  }
  return (sign | ((exp + 112) << 23) | (man << 13)) >>> 0;
}

/** float32 bit pattern of a bfloat16 bit pattern: bf16 is the top half of an f32. */
export function bf16BitsToF32Bits(h: number): number {
  return (h << 16) >>> 0;
}

/** The float types `encodeSafetensors` and `saveCheckpoint` can write float tensors as. */
export type FloatDType = "F32" | "BF16" | "F16";

/** The float dtypes that can be written, in the order error messages list them. */
export const FLOAT_DTYPES: readonly FloatDType[] = ["F32", "BF16", "F16"];

/** Whether `s` names a writable float dtype. */
export function isFloatDType(s: unknown): s is FloatDType {
  return typeof s === "string" && (FLOAT_DTYPES as readonly string[]).includes(s);
}

const F32_SCRATCH = new Float32Array(1);
const U32_SCRATCH = new Uint32Array(F32_SCRATCH.buffer);

/** The float32 bit pattern of `x` (rounded to f32 first). */
export function f32Bits(x: number): number {
  F32_SCRATCH[0] = x;
  return U32_SCRATCH[0];
}

/**
 * bfloat16 bit pattern of a float32 bit pattern: round to nearest, ties to even (what PyTorch's
 * `tensor.to(torch.bfloat16)` does), so values past the largest bf16 go to ±Inf; NaN stays NaN
 * (made quiet, sign kept), ±0 keep their sign. f32 subnormals round like any other value.
 */
export function f32BitsToBf16Bits(bits: number): number {
  const b = bits >>> 0;
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x0040) & 0xffff;
  // Adding 0x7fff plus the kept part's lowest bit carries into it exactly when the dropped half
  // is above one half, or exactly one half with an odd kept part. (No 32-bit overflow: b is
  // unsigned below 2^32 and JS adds in float64.)
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * IEEE half-precision bit pattern of a float32 bit pattern: round to nearest, ties to even;
 * magnitudes from 65520 up become ±Inf; below 2^-14 the result is subnormal (down to 2^-24; from
 * 2^-25 down, ±0); NaN stays NaN (quiet, sign and the top payload bits kept); ±0 keep their sign.
 */
export function f32BitsToF16Bits(bits: number): number {
  const b = bits >>> 0;
  const sign = (b >>> 16) & 0x8000;
  const abs = b & 0x7fffffff;
  if (abs >= 0x7f800000) {
    if (abs === 0x7f800000) return sign | 0x7c00;
    return sign | 0x7e00 | ((abs >>> 13) & 0x3ff);
  }
  const e = abs >>> 23; // biased f32 exponent
  if (e >= 143) return sign | 0x7c00; // |x| >= 2^16: beyond any rounding to 65504
  const man = abs & 0x7fffff;
  if (e >= 113) {
    // Normal in f16: keep 10 of the 23 mantissa bits. A carry out of the mantissa raises the
    // exponent, which is the correct result (up to 0x7c00 = Inf for 65520 ≤ |x| < 65536).
    let h = ((e - 112) << 10) | (man >>> 13);
    const rest = man & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
    return sign | h;
  }
  // Subnormal in f16: counted in units of 2^-24 the value is full / 2^(126 - e), with full the
  // 24-bit significand (implicit bit included when e > 0; an f32 subnormal has e = 0 but the
  // scale of e = 1).
  const shift = 126 - (e === 0 ? 1 : e);
  if (shift > 24) return sign; // below 2^-25: rounds to zero
  const full = e === 0 ? man : man | 0x800000;
  let q = full >>> shift;
  const rest = full - q * 2 ** shift;
  const half = 2 ** (shift - 1);
  if (rest > half || (rest === half && (q & 1) === 1)) q++;
  return sign | q; // q = 0x400 is the smallest normal, encoded correctly
}

/** bfloat16 bit pattern of `x` (rounded to f32 first, as the values come from a Float32Array). */
export function f32ToBf16Bits(x: number): number {
  return f32BitsToBf16Bits(f32Bits(x));
}

/** Half-precision bit pattern of `x` (rounded to f32 first, as the values come from a Float32Array). */
export function f32ToF16Bits(x: number): number {
  return f32BitsToF16Bits(f32Bits(x));
}

/** The f32 value of a bfloat16 bit pattern. */
export function bf16BitsToF32(h: number): number {
  U32_SCRATCH[0] = bf16BitsToF32Bits(h);
  return F32_SCRATCH[0];
}

/** The f32 value of a half-precision bit pattern. */
export function f16BitsToF32(h: number): number {
  U32_SCRATCH[0] = f16BitsToF32Bits(h);
  return F32_SCRATCH[0];
}

/**
 * `data` converted to `dtype`'s bit patterns, in host order (the body of a safetensors tensor on a
 * little-endian host), written into `out` (same length) when given.
 */
export function f32ArrayTo16Bits(
  data: Float32Array,
  dtype: "BF16" | "F16",
  out: Uint16Array = new Uint16Array(data.length),
): Uint16Array {
  if (out.length !== data.length) {
    throw new RangeError(`f32ArrayTo16Bits: out has ${out.length} elements, data ${data.length}`);
  }
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  if (dtype === "BF16") {
    for (let i = 0; i < bits.length; i++) {
      out[i] = f32BitsToBf16Bits(bits[i]);
    }
  } else for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}
