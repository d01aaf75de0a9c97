/**
 * Reports of runs: crash-safe files, arquero tables (CSV/JSON), Vega-Lite chart specs, SVG
 * rendering and HTML pages. Knows nothing of the GPU or of any particular experiment.
 *
 * @module
 */
export * from "./files.ts";
export * from "./table.ts";
export * from "./charts.ts";
export * from "./render.ts";
export * from "./html.ts";
