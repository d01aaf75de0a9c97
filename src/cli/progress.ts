/**
 * A progress bar on stderr for long loops (simulations, training, evaluation).
 *
 * On a terminal it redraws one line in place (at most every `minIntervalMs`); elsewhere (CI logs,
 * pipes) it prints one plain line each time another tenth of the work is done, so logs stay short.
 * stdout is left alone for results.
 *
 * @example
 * ```ts
 * const bar = new Progress({ total: steps, label: "train" });
 * for (let step = 0; step < steps; step++) {
 *   // ... one step ...
 *   bar.tick(1, `loss ${loss.toFixed(3)}`);
 * }
 * bar.finish();
 * ```
 *
 * @module
 */

/** Options of {@linkcode Progress}. */
export interface ProgressOptions {
  /** Units of work in all (> 0). */
  total: number;
  /** Shown before the bar. */
  label?: string;
  /** Print nothing at all. */
  quiet?: boolean;
  /** Where text goes; defaults to stderr. */
  write?: (text: string) => void;
  /** Redraw in place (terminal) or print tenths (log); defaults to whether stderr is a terminal. */
  isTty?: boolean;
  /** Clock in milliseconds; defaults to `performance.now`. */
  now?: () => number;
  /**
   * When the work began, on the {@link now} clock (default: when the bar is made): a bar made at
   * the first report of a long job (once its total is known) still counts the time before it.
   */
  startedAt?: number;
  /** Bar width in characters on a terminal. */
  width?: number;
  /** Least time between two terminal redraws. */
  minIntervalMs?: number;
}

const encoder = new TextEncoder();

function writeStderr(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

/** `1.2s`, `3m05s`, `1h02m`: short durations for progress lines. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "?";
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/** A progress indicator over `total` units of work; see the module example. */
export class Progress {
  readonly total: number;
  readonly label: string;
  #done = 0;
  #quiet: boolean;
  #write: (text: string) => void;
  #tty: boolean;
  #now: () => number;
  #width: number;
  #minInterval: number;
  #start: number;
  #lastDraw = -Infinity;
  #lastTenth = 0;
  #finished = false;

  /** Starts the clock; prints nothing until the first update. */
  constructor(options: ProgressOptions) {
    const { total } = options;
    if (!(Number.isFinite(total) && total > 0)) {
      throw new RangeError(`progress total must be a positive number, got ${total}`);
    }
    this.total = total;
    this.label = options.label ?? "";
    this.#quiet = options.quiet ?? false;
    this.#write = options.write ?? writeStderr;
    this.#tty = options.isTty ?? Deno.stderr.isTerminal();
    this.#now = options.now ?? (() => performance.now());
    this.#width = options.width ?? 30;
    this.#minInterval = options.minIntervalMs ?? 100;
    this.#start = options.startedAt ?? this.#now();
  }

  /** Units done so far. */
  get done(): number {
    return this.#done;
  }

  /**
   * Sets the units done (clamped to [0, total]; a non-finite value is a RangeError); `detail` is
   * appended to the line (e.g. a loss).
   */
  update(done: number, detail?: string): void {
    if (this.#finished) return;
    // A NaN would stick (every later tick adds to it) and print "NaN%" until the end.
    if (!Number.isFinite(done)) {
      throw new RangeError(`progress: units done must be a finite number, got ${done}`);
    }
    this.#done = Math.min(this.total, Math.max(0, done));
    if (this.#quiet) return;
    const now = this.#now();
    if (this.#tty) {
      if (now - this.#lastDraw < this.#minInterval && this.#done < this.total) return;
      this.#lastDraw = now;
      this.#write(`\r\x1b[2K${this.line(now, detail, true)}`);
      return;
    }
    const tenth = Math.floor((10 * this.#done) / this.total);
    if (tenth > this.#lastTenth) {
      this.#lastTenth = tenth;
      this.#write(this.line(now, detail, false) + "\n");
    }
  }

  /** Adds `n` units done. */
  tick(n = 1, detail?: string): void {
    this.update(this.#done + n, detail);
  }

  /**
   * Ends the bar: on a terminal, draws the last state and a newline; in a log, prints the final line
   * if the last tenth was not printed yet. `message` replaces the detail. Further updates are ignored.
   */
  finish(message?: string): void {
    if (this.#finished) return;
    if (!this.#quiet) {
      const now = this.#now();
      if (this.#tty) this.#write(`\r\x1b[2K${this.line(now, message, true)}\n`);
      else if (this.#lastTenth < 10 || message) this.#write(this.line(now, message, false) + "\n");
    }
    this.#finished = true;
  }

  /** The text of one progress line at time `now`. */
  line(now: number, detail: string | undefined, bar: boolean): string {
    const fraction = this.#done / this.total;
    const elapsed = now - this.#start;
    const eta = this.#done > 0 && this.#done < this.total
      ? ` eta ${formatDuration((elapsed / this.#done) * (this.total - this.#done))}`
      : "";
    const filled = Math.round(fraction * this.#width);
    const drawn = bar ? ` [${"#".repeat(filled)}${".".repeat(this.#width - filled)}]` : "";
    const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
    const head = this.label ? `${this.label}${drawn}` : drawn.trimStart();
    return `${head} ${pct} (${this.#done}/${this.total}) ${formatDuration(elapsed)}${eta}` +
      (detail ? ` ${detail}` : "");
  }
}
