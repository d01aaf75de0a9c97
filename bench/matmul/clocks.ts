/**
 * GPU clock sampling during the matmul benchmark, through `nvidia-smi` when there is one: the first
 * H100 sweep showed the same dispatch 4× slower when it ran later in a shape's block, the pattern of
 * a GPU that drops to a low clock between bursts of work. This records what the clocks were while
 * each shape was timed, so a slow figure can be told from a slow GPU.
 *
 * Samples carry nvidia-smi's own timestamp (its stdout is block-buffered when piped, so the time a
 * line arrives says little) and are matched to wall-clock windows afterwards.
 *
 * @module
 */

/** One nvidia-smi reading. */
export interface ClockSample {
  /** Wall-clock time of the reading (ms since the epoch, from nvidia-smi's timestamp). */
  at: number;
  /** SM clock, MHz. */
  smMHz: number;
  /** Power draw, W (NaN when not reported). */
  watts: number;
  /** Active clock-event (throttle) reasons bitmask (0 when not reported). */
  reasons: number;
}

/** Clocks over one window. */
export interface ClockSummary {
  /** Readings in the window. */
  samples: number;
  /** Median SM clock, MHz. */
  medianMHz: number;
  /** Lowest SM clock, MHz. */
  minMHz: number;
  /** Highest SM clock, MHz. */
  maxMHz: number;
  /** Highest power draw, W. */
  maxWatts: number;
  /** OR of the active clock-event reasons seen (nvidia-smi's bitmask, e.g. 0x1 = GPU idle). */
  reasons: number;
}

// Tried in order: newer drivers name the throttle reasons "clocks_event_reasons", older ones
// "clocks_throttle_reasons"; the last set has no reasons at all.
const FIELD_SETS = [
  "timestamp,clocks.sm,power.draw,clocks_event_reasons.active",
  "timestamp,clocks.sm,power.draw,clocks_throttle_reasons.active",
  "timestamp,clocks.sm,power.draw",
];

/**
 * Parses one line of `nvidia-smi --query-gpu=timestamp,clocks.sm,power.draw[,reasons]
 * --format=csv,noheader,nounits`, e.g. `2026/11/23 04:10:01.123, 1980, 512.30, 0x0000000000000000`;
 * undefined for a line that is not a reading.
 */
export function parseClockLine(line: string): ClockSample | undefined {
  const parts = line.split(",").map((p) => p.trim());
  if (parts.length < 3) return undefined;
  const m = /^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{3})$/.exec(parts[0]);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s, ms] = m.slice(1).map(Number);
  // nvidia-smi prints local time, as does Date's local constructor.
  const at = new Date(y, mo - 1, d, h, mi, s, ms).getTime();
  const smMHz = Number(parts[1]);
  if (!Number.isFinite(smMHz)) return undefined;
  const watts = Number(parts[2]);
  const reasons = parts[3] !== undefined && /^0x[0-9a-f]+$/i.test(parts[3])
    ? Number(BigInt(parts[3]) & 0xffffffffn)
    : 0;
  return { at, smMHz, watts: Number.isFinite(watts) ? watts : NaN, reasons };
}

/** Summary of the samples taken in [from, to] (wall-clock ms), or undefined when none were. */
export function summariseClocks(
  samples: readonly ClockSample[],
  from: number,
  to: number,
): ClockSummary | undefined {
  const inside = samples.filter((s) => s.at >= from && s.at <= to);
  if (inside.length === 0) return undefined;
  const mhz = inside.map((s) => s.smMHz).sort((a, b) => a - b);
  const mid = mhz.length >> 1;
  return {
    samples: inside.length,
    medianMHz: mhz.length % 2 ? mhz[mid] : (mhz[mid - 1] + mhz[mid]) / 2,
    minMHz: mhz[0],
    maxMHz: mhz[mhz.length - 1],
    maxWatts: Math.max(...inside.map((s) => (Number.isNaN(s.watts) ? 0 : s.watts))),
    reasons: inside.reduce((r, s) => r | s.reasons, 0),
  };
}

/** A running `nvidia-smi` sampler; {@link startClockSampler} makes one. */
export interface ClockSampler {
  /** Readings so far (parsed as they arrive). */
  readonly samples: ClockSample[];
  /** Stops nvidia-smi and waits for its last lines. */
  stop(): Promise<void>;
}

async function fieldsThatWork(): Promise<string | undefined> {
  for (const fields of FIELD_SETS) {
    try {
      const out = await new Deno.Command("nvidia-smi", {
        args: [`--query-gpu=${fields}`, "--format=csv,noheader,nounits"],
        stdout: "piped",
        stderr: "null",
      }).output();
      const first = new TextDecoder().decode(out.stdout).split("\n")[0] ?? "";
      if (out.success && parseClockLine(first)) return fields;
    } catch {
      return undefined; // no nvidia-smi (not an NVIDIA machine, or not allowed to run it)
    }
  }
  return undefined;
}

/**
 * Starts sampling the first GPU's clocks every `intervalMs` with nvidia-smi, or returns undefined
 * when nvidia-smi is missing or answers nothing usable.
 *
 * @example
 * ```ts
 * const sampler = await startClockSampler(100);
 * const t0 = Date.now(); // ... GPU work ...
 * console.log(summariseClocks(sampler?.samples ?? [], t0, Date.now()));
 * await sampler?.stop();
 * ```
 */
export async function startClockSampler(intervalMs = 100): Promise<ClockSampler | undefined> {
  const fields = await fieldsThatWork();
  if (!fields) return undefined;
  const child = new Deno.Command("nvidia-smi", {
    args: [
      `--query-gpu=${fields}`,
      "--format=csv,noheader,nounits",
      "-i",
      "0",
      `-lms`,
      String(intervalMs),
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const samples: ClockSample[] = [];
  const reading = (async () => {
    let rest = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) {
        const s = parseClockLine(line);
        if (s) samples.push(s);
      }
    }
    const s = parseClockLine(rest);
    if (s) samples.push(s);
  })();
  return {
    samples,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await reading.catch(() => {});
      await child.status;
    },
  };
}
