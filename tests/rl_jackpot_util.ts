/**
 * Shared by the jackpotTensors and joint-step tests: GPU Jackpot outputs (read back from the
 * tensors) against the float64 reference's `ObrsBatchResult`, with the same straddle rule as
 * tests/obrs_gpu_jackpot_test.ts (a mask may differ only where the uniform lies within f32
 * rounding of the acceptance probability).
 *
 * @module
 */
import assert from "node:assert/strict";
import { uniformAt } from "../src/util/rng.ts";
import type { ObrsBatchResult } from "../src/obrs/reference/mod.ts";
import type { JackpotStats } from "../src/obrs/gpu/mod.ts";

/** Host copies of a jackpotTensors result. */
export interface JackpotHost {
  mask: Uint32Array;
  rho: Float32Array;
  w: Float32Array;
  /** `[N, 8]` per-row data. */
  rowData: Float32Array;
  stats: JackpotStats;
}

/** The largest errors found by {@link compareJackpot}. */
export interface JackpotErrors {
  /** Max |ΔZ_approx|. */
  z: number;
  /** Max |Δ log a|. */
  logA: number;
  /** Max relative error of w and ρ (valid rows; only when no mask straddles). */
  weights: number;
  /** Max relative error of κ and the statistics (only when no mask straddles). */
  stats: number;
  /** Rows whose mask differs from the reference (each within f32 rounding of a). */
  straddles: number;
}

/** Relative error with an absolute floor for values near 0. */
export function relErr(a: number, b: number, floor = 1e-30): number {
  if (a === b) return 0;
  return Math.abs(a - b) / Math.max(floor, Math.abs(b));
}

/**
 * Compares one batch; asserts the tolerances (|ΔZ_approx| < 1e-5, |Δ log a| < 1e-4, w/ρ relative
 * 2e-5, statistics relative 1e-4, κ relative 1e-5) and returns the errors found.
 */
export function compareJackpot(
  label: string,
  want: ObrsBatchResult,
  got: JackpotHost,
  valid: ArrayLike<number>,
  seed: number,
): JackpotErrors {
  const rows = valid.length;
  const e: JackpotErrors = { z: 0, logA: 0, weights: 0, stats: 0, straddles: 0 };
  for (let r = 0; r < rows; r++) {
    if (!valid[r]) {
      assert.equal(got.mask[r], 0, `${label}: padded row ${r} accepted`);
      assert.equal(got.rho[r], 0, `${label}: padded row ${r} has ρ ${got.rho[r]}`);
      continue;
    }
    const o = r * 8;
    assert.equal(got.rowData[o + 7], 0, `${label}: row ${r} flagged ${got.rowData[o + 7]}`);
    e.z = Math.max(e.z, Math.abs(got.rowData[o + 4] - want.zApprox[r]));
    e.logA = Math.max(e.logA, Math.abs(got.rowData[o + 6] - want.logAccept[r]));
    if (got.mask[r] !== want.mask[r]) {
      const u = uniformAt(seed, r, 0);
      assert.ok(Math.abs(u - Math.exp(want.logAccept[r])) < 1e-5, `${label}: mask row ${r}`);
      e.straddles++;
    }
  }
  assert.ok(e.straddles <= Math.max(1, rows / 500), `${label}: ${e.straddles} straddles`);
  assert.ok(e.z < 1e-5, `${label}: Z_approx error ${e.z}`);
  assert.ok(e.logA < 1e-4, `${label}: log a error ${e.logA}`);
  const s = want.stats, g = got.stats;
  assert.equal(g.validCount, s.validCount, `${label}: valid count`);
  if (e.straddles === 0) {
    assert.equal(g.acceptedCount, s.acceptedCount, `${label}: accepted count`);
    for (let r = 0; r < rows; r++) {
      if (!valid[r]) continue;
      e.weights = Math.max(
        e.weights,
        relErr(got.w[r], want.weight[r], 1e-6),
        relErr(got.rho[r], want.rho[r], 1e-6),
      );
    }
    assert.ok(e.weights < 2e-5, `${label}: w/ρ relative error ${e.weights}`);
    e.stats = relErr(g.kappa, s.kappa);
    assert.ok(e.stats < 1e-5, `${label}: κ ${g.kappa} vs ${s.kappa}`);
    for (
      const key of [
        "acceptRate",
        "meanZApprox",
        "weightMean",
        "weightMax",
        "rhoMean",
        "clipFractionC1",
        "clipFractionC2",
        "clippedFraction",
        "ess",
      ] as const
    ) {
      const err = relErr(g[key], s[key], 1e-6);
      e.stats = Math.max(e.stats, err);
      assert.ok(err < 1e-4, `${label}: ${key} ${g[key]} vs ${s[key]}`);
    }
  }
  return e;
}
