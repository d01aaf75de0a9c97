/**
 * The safetensors element types this project reads and writes, and the exact conversions of the
 * 16-bit floats to float32 (every f16 and bf16 value is representable in f32, so these are exact).
 *
 * @module
 */

/** Element types read: F32, F16 and BF16 (converted to f32), I32, I64. Written: F32, I32, I64. */
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
