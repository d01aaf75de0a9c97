/**
 * A self-contained HTML page for a run: title, notes, inline SVG charts and tables.
 *
 * Charts are embedded as SVG (no script, no CDN), so the page opens offline and in CI artifacts.
 *
 * @module
 */

/** One block of a report page. */
export type ReportSection =
  | { kind: "text"; heading?: string; text: string }
  | { kind: "svg"; heading?: string; svg: string; caption?: string }
  | { kind: "html"; heading?: string; html: string }
  | { kind: "keyValues"; heading?: string; entries: Record<string, unknown> };

/** Options of {@linkcode htmlReport}. */
export interface HtmlReportOptions {
  /** Page title and top heading. */
  title: string;
  /** Blocks, in page order. */
  sections: readonly ReportSection[];
}

/** Escapes `& < > " '` for HTML text and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string,
  );
}

/** Drops an XML prolog so an SVG document can be inlined in HTML. */
function inlineSvg(svg: string): string {
  return svg.replace(/^\s*<\?xml[^>]*\?>\s*/, "");
}

function section(s: ReportSection): string {
  const head = s.heading ? `<h2>${escapeHtml(s.heading)}</h2>\n` : "";
  switch (s.kind) {
    case "text":
      return `${head}<p>${escapeHtml(s.text)}</p>`;
    case "svg": {
      const caption = s.caption ? `<figcaption>${escapeHtml(s.caption)}</figcaption>` : "";
      return `${head}<figure>${inlineSvg(s.svg)}${caption}</figure>`;
    }
    case "html":
      return `${head}${s.html}`;
    case "keyValues": {
      const rows = Object.entries(s.entries).map(([k, v]) =>
        `<tr><th>${escapeHtml(k)}</th><td>${
          escapeHtml(typeof v === "string" ? v : JSON.stringify(v))
        }</td></tr>`
      );
      return `${head}<table class="kv">${rows.join("")}</table>`;
    }
  }
}

/**
 * The HTML text of a report page. Text and key/value blocks are escaped; `svg` and `html` blocks
 * are trusted markup produced by this project (renderSvg, tableToHtml).
 *
 * @example
 * ```ts
 * const page = htmlReport({
 *   title: "simulate",
 *   sections: [{ kind: "text", text: "hello" }, { kind: "svg", svg }],
 * });
 * ```
 */
export function htmlReport({ title, sections }: HtmlReportOptions): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1200px; }
table { border-collapse: collapse; font-size: 0.8em; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
table.kv th { text-align: left; }
figure { margin: 1em 0; overflow-x: auto; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
${sections.map(section).join("\n")}
</body>
</html>
`;
}
