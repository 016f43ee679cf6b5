// Charts: a sparkline drawn as SVG, and a time series drawn with uPlot (a global, loaded with the first chart).
import { html, useEffect, useRef } from "../vendor/preact-htm.mjs";

export function Sparkline({ values, max, label }) {
  const width = 80;
  const height = 20;
  if (!values || values.length === 0) return "—";
  const top = Math.max(max || 0, ...values, 1e-9);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const points = values
    .map((value, index) => `${(index * step).toFixed(1)},${(height - (value / top) * height).toFixed(1)}`)
    .join(" ");
  return html`<svg class="sparkline" width=${width} height=${height} viewBox="0 0 ${width} ${height}"
      role="img" aria-label=${label}>
    <polyline points=${points} fill="none" stroke="currentColor" stroke-width="1.5" />
  </svg>`;
}

// uPlot loads with the first chart, not with the page.
let uPlotLoaded = null;

function loadUPlot() {
  uPlotLoaded ||= new Promise((loaded, failed) => {
    const script = document.createElement("script");
    script.src = "/dashboard/static/vendor/uplot.min.js";
    script.onload = () => loaded(globalThis.uPlot);
    script.onerror = () => failed(new Error("uPlot did not load"));
    document.head.append(script);
  });
  return uPlotLoaded;
}

// `series`: [{label, values}] over `times` (unix seconds); redrawn when they change.
export function TimeChart({ title, times, series, height = 180 }) {
  const box = useRef(null);
  useEffect(() => {
    if (!box.current || !times || times.length === 0) return undefined;
    let chart = null;
    let gone = false;
    loadUPlot().then((UPlot) => {
      if (!gone) chart = draw(UPlot);
    });
    return () => {
      gone = true;
      if (chart) chart.destroy();
    };
  }, [times, series]);
  function draw(UPlot) {
    const options = {
      title,
      width: box.current.clientWidth || 600,
      height,
      series: [{}, ...series.map((one, index) => ({ label: one.label, stroke: COLOURS[index % COLOURS.length] }))],
      axes: [{}, { size: 60, values: (_, splits) => splits.map((value) => +value.toPrecision(3)) }],
    };
    return new UPlot(options, [times, ...series.map((one) => one.values)], box.current);
  }
  if (!times || times.length === 0) return html`<p class="muted">No samples yet.</p>`;
  return html`<div class="chart" ref=${box}></div>`;
}

const COLOURS = ["#2563eb", "#16a34a", "#d97706", "#dc2626"];
