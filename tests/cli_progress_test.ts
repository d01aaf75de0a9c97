import assert from "node:assert/strict";
import { formatDuration, Progress } from "../src/cli/progress.ts";

/** A progress bar writing into an array, with a hand-driven clock. */
function fake(
  total: number,
  isTty: boolean,
  extra: { quiet?: boolean; minIntervalMs?: number } = {},
) {
  const out: string[] = [];
  let t = 0;
  const bar = new Progress({
    total,
    label: "work",
    isTty,
    write: (s) => out.push(s),
    now: () => t,
    ...extra,
  });
  return { bar, out, advance: (ms: number) => (t += ms) };
}

Deno.test("in a log it prints one line per tenth, whatever the total", () => {
  for (const total of [1, 7, 10, 99, 1000, 12345]) {
    const { bar, out, advance } = fake(total, false);
    for (let i = 0; i < total; i++) {
      advance(1);
      bar.tick();
    }
    bar.finish();
    const expected = Math.min(total, 10);
    assert.equal(out.length, expected, `total ${total}`);
    assert.ok(out.every((l) => l.endsWith("\n") && !l.includes("\r")));
    assert.match(out.at(-1)!, new RegExp(`100% \\(${total}/${total}\\)`));
    // Percentages printed are increasing.
    const pcts = out.map((l) => Number(l.match(/(\d+)%/)![1]));
    assert.deepEqual([...pcts].sort((a, b) => a - b), pcts);
  }
});

Deno.test("in a log, finish before the end prints the final state once", () => {
  const { bar, out } = fake(100, false);
  bar.update(55); // one jump over five tenths prints one line, not five
  bar.finish("stopped");
  assert.equal(out.length, 2);
  assert.match(out[0], /55% \(55\/100\)/);
  assert.match(out[1], /55% \(55\/100\).*stopped/);
  bar.update(100); // ignored after finish
  bar.finish();
  assert.equal(out.length, 2);
});

Deno.test("on a terminal it redraws one line at most every minIntervalMs and ends with a newline", () => {
  const { bar, out, advance } = fake(1000, true, { minIntervalMs: 100 });
  for (let i = 0; i < 1000; i++) {
    advance(1); // 1 ms per unit: 1000 ms in all
    bar.tick(1, `loss ${i}`);
  }
  bar.finish();
  // Draws at t = 1, 101, 201, ... 901 (10), the forced draw at 100%, and the final line.
  assert.equal(out.length, 12);
  assert.ok(out.every((s) => s.startsWith("\r\x1b[2K")));
  assert.ok(out.slice(0, -1).every((s) => !s.endsWith("\n")));
  assert.ok(out.at(-1)!.endsWith("\n"));
  assert.match(out[0], /work \[\.{30}\]\s+0% \(1\/1000\).*loss 0/);
  assert.match(out[5], /\[#{15}\.{15}\]\s+50% \(501\/1000\).*eta.*loss 500/);
});

Deno.test("quiet prints nothing but still counts", () => {
  const { bar, out } = fake(10, false, { quiet: true });
  bar.tick(4);
  bar.finish("x");
  assert.equal(out.length, 0);
  assert.equal(bar.done, 4);
});

Deno.test("updates are clamped to [0, total] and bad totals are refused", () => {
  const { bar } = fake(10, false);
  bar.update(25);
  assert.equal(bar.done, 10);
  bar.update(-3);
  assert.equal(bar.done, 0);
  for (const total of [0, -1, NaN, Infinity]) {
    assert.throws(() => new Progress({ total, write: () => {} }), /positive number/);
  }
});

Deno.test("formatDuration picks seconds, minutes or hours", () => {
  for (const ms of [0, 999, 59_949, 60_000, 3_599_000, 3_600_000, 90_061_000]) {
    const s = formatDuration(ms);
    const total = ms / 1000;
    if (total < 60) assert.equal(s, `${total.toFixed(1)}s`);
    else if (total < 3600) {
      assert.equal(
        s,
        `${Math.floor(total / 60)}m${String(Math.floor(total % 60)).padStart(2, "0")}s`,
      );
    } else {
      const m = Math.floor(total / 60);
      assert.equal(s, `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`);
    }
  }
  assert.equal(formatDuration(NaN), "?");
});

Deno.test("a non-finite update is an error, not a 'NaN%' bar that stays broken", () => {
  const { bar } = fake(10, true);
  bar.update(3);
  for (const bad of [NaN, Infinity, -Infinity]) {
    assert.throws(() => bar.update(bad), /progress: units done must be a finite number, got/);
  }
  assert.equal(bar.done, 3);
  assert.throws(() => bar.tick(NaN), /finite/);
  assert.equal(bar.done, 3);
});
