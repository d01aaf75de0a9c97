import assert from "node:assert/strict";
import * as vl from "vega-lite";
import { Rng } from "../src/util/rng.ts";
import { escapeHtml, htmlReport, lineChartSpec, renderSvg, type Row } from "../src/report/mod.ts";

/**
 * Checks that `xml` is well-formed enough for browsers and XML tools: every tag closes in order,
 * attributes are quoted, and the root is one <svg> element. Returns the number of elements.
 */
function checkWellFormed(xml: string): number {
  const body = xml.replace(/^\s*<\?xml[^>]*\?>/, "").trim();
  assert.ok(body.startsWith("<svg"), "document does not start with <svg");
  const stack: string[] = [];
  let elements = 0;
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"]*")*)\s*(\/?)>|<!--[\s\S]*?-->/g;
  let last = 0;
  for (let m = tag.exec(body); m !== null; m = tag.exec(body)) {
    // Text between tags must not contain a stray '<' (an unparsed or malformed tag).
    assert.ok(!body.slice(last, m.index).includes("<"), `malformed markup near ${m.index}`);
    last = tag.lastIndex;
    if (m[0].startsWith("<!--")) continue;
    const [, close, name, , selfClose] = m;
    if (close) {
      assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    } else {
      elements++;
      if (!selfClose) stack.push(name);
    }
    if (stack.length === 0 && last < body.length) {
      assert.equal(body.slice(last).trim(), "", "content after the root element");
    }
  }
  assert.ok(!body.slice(last).includes("<"), "malformed markup at the end");
  assert.deepEqual(stack, [], `unclosed elements: ${stack.join(", ")}`);
  return elements;
}

/** Groups of line marks that Vega drew: one per series per facet panel. */
function countMarkGroups(svg: string, mark: string): number {
  return svg.match(new RegExp(`<g class="mark-${mark} role-mark`, "g"))?.length ?? 0;
}

function randomData(rng: Rng, series: number, facets: number, points: number): Row[] {
  const rows: Row[] = [];
  for (let f = 0; f < facets; f++) {
    for (let s = 0; s < series; s++) {
      for (let i = 0; i < points; i++) {
        const y = rng.uniform();
        rows.push({
          panel: `f${f}`,
          series: `s${s}`,
          x: i + rng.uniform(),
          y,
          lo: y - 0.1,
          hi: y + 0.1,
        });
      }
    }
  }
  return rows;
}

Deno.test("lineChartSpec compiles and renders one line per series per panel", async () => {
  const rng = new Rng(21);
  for (const [series, facets] of [[1, 1], [3, 1], [4, 3], [2, 2]]) {
    const spec = lineChartSpec({
      title: `t${series}x${facets}`,
      data: randomData(rng, series, facets, 5),
      x: { field: "x" },
      y: { field: "y" },
      color: { field: "series" },
      facet: facets > 1 ? { field: "panel" } : undefined,
    });
    vl.compile(spec); // throws on an invalid spec
    const svg = await renderSvg(spec);
    checkWellFormed(svg);
    assert.equal(
      countMarkGroups(svg, "line"),
      series * facets,
      `${series} series x ${facets} panels`,
    );
  }
});

Deno.test("band and diagonal add one area per series and one dashed line per panel", async () => {
  const rng = new Rng(8);
  const series = 3, facets = 2;
  const spec = lineChartSpec({
    title: "band",
    data: randomData(rng, series, facets, 6),
    x: { field: "x" },
    y: { field: "y" },
    color: { field: "series" },
    facet: { field: "panel" },
    band: { lower: "lo", upper: "hi" },
    diagonal: true,
    points: true,
  });
  const svg = await renderSvg(spec);
  checkWellFormed(svg);
  assert.equal(countMarkGroups(svg, "line"), series * facets + facets);
  assert.equal(countMarkGroups(svg, "area"), series * facets);
  assert.equal(svg.match(/stroke-dasharray="4,4"/g)?.length, facets);
  // Points: one symbol per data point (symbol mark groups hold only paths, no nested groups).
  const symbols = [...svg.matchAll(/<g class="mark-symbol role-mark[^>]*>(.*?)<\/g>/gs)]
    .map((m) => m[1].match(/<path/g)?.length ?? 0);
  assert.equal(symbols.length, facets);
  assert.equal(symbols.reduce((a, b) => a + b, 0), series * facets * 6);
});

Deno.test("the well-formedness check rejects broken markup", () => {
  assert.throws(() => checkWellFormed("<svg><g></svg>"));
  assert.throws(() => checkWellFormed("<svg><g a=b></g></svg>"));
  assert.throws(() => checkWellFormed("<svg></svg><svg></svg>"));
  assert.equal(checkWellFormed('<svg a="1"><g/><g><path d="M0"/></g></svg>'), 4);
});

Deno.test("htmlReport escapes text, inlines SVG and keeps section order", async () => {
  const svg = await renderSvg(lineChartSpec({
    title: "c",
    data: randomData(new Rng(2), 2, 1, 3),
    x: { field: "x" },
    y: { field: "y" },
  }));
  const page = htmlReport({
    title: "T <1>",
    sections: [
      { kind: "text", heading: "A & B", text: "x < y" },
      { kind: "svg", heading: "chart", svg, caption: 'cap "q"' },
      { kind: "keyValues", entries: { seed: 3, list: [1, 2] } },
      { kind: "html", html: "<table><tr><td>1</td></tr></table>" },
    ],
  });
  assert.ok(page.startsWith("<!DOCTYPE html>"));
  assert.ok(page.includes("<title>T &lt;1&gt;</title>"));
  assert.ok(page.includes("<h2>A &amp; B</h2>") && page.includes("<p>x &lt; y</p>"));
  assert.ok(page.includes("cap &quot;q&quot;"));
  assert.ok(page.includes("<td>[1,2]</td>"));
  assert.equal(page.match(/<svg/g)?.length, 1);
  const order = ["A &amp; B", "<svg", "seed", "<td>1</td>"].map((s) => page.indexOf(s));
  assert.deepEqual([...order].sort((a, b) => a - b), order);
  assert.equal(escapeHtml(`&<>"'`), "&amp;&lt;&gt;&quot;&#39;");
});

Deno.test("a chart Vega cannot draw rejects with one sentence instead of printing a stack", async () => {
  // y near 1e-308 (OBRS acceptance at λ = 1e308) gives d3 a degenerate tick range: Vega used to
  // log "ERROR RangeError: Invalid array length" with a stack, then fail or return a broken SVG.
  const spec = lineChartSpec({
    title: "tiny",
    data: [{ x: 0, y: 1e-308 }, { x: 1, y: 2e-308 }],
    x: { field: "x" },
    y: { field: "y" },
  });
  const printed: unknown[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => printed.push(a);
  try {
    await assert.rejects(renderSvg(spec), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(
        e.message,
        /^Vega could not draw the chart 'tiny': RangeError: Invalid array length/,
      );
      assert.ok(!e.message.includes("\n"), e.message);
      return true;
    });
  } finally {
    console.error = error;
  }
  assert.deepEqual(printed, []);
});

Deno.test("colorOrder sets the legend's order, whatever the data's order", async () => {
  const rows: Row[] = [];
  for (const s of ["mode=tis", "mode=jackpot", "mode=on-policy"]) {
    for (let x = 0; x < 3; x++) rows.push({ s, x, y: x * x });
  }
  const legend = async (colorOrder?: string[]) => {
    const svg = await renderSvg(lineChartSpec({
      title: "order",
      data: rows,
      x: { field: "x" },
      y: { field: "y" },
      color: { field: "s" },
      colorOrder,
    }));
    const labels = [...svg.matchAll(/>(mode=[a-z-]+)</g)].map((m) => m[1]);
    return labels.filter((l, i) => labels.indexOf(l) === i);
  };
  const order = ["mode=on-policy", "mode=tis", "mode=jackpot"];
  assert.deepEqual(await legend(order), order);
  assert.deepEqual(await legend([...order].reverse()), [...order].reverse());
  // without it, Vega-Lite sorts the labels
  assert.deepEqual(await legend(), [...order].sort());
});
