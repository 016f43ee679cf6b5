// The team's usage per UTC day: sandbox-hours, and the most sandboxes that ran at once.
import { html, useMemo, useState } from "../vendor/preact-htm.mjs";
import { api } from "../api.js";
import { TimeChart } from "./charts.js";
import { ErrorLine, usePolling } from "./common.js";

const RANGES = [7, 30, 90];

export function Usage() {
  const [days, setDays] = useState(30);
  const [usage, error] = usePolling(() => api("/dashboard/api/usage", { query: { days } }), 30000, [days]);
  const charts = useMemo(() => {
    if (!usage) return null;
    const times = usage.days.map((day) => Date.parse(`${day.date}T00:00:00Z`) / 1000);
    return {
      times,
      hours: [{ label: "sandbox-hours", values: usage.days.map((day) => day.sandboxHours) }],
      peak: [{ label: "most running at once", values: usage.days.map((day) => day.peakRunning) }],
    };
  }, [usage]);
  return html`<section>
    <h2>Usage</h2>
    <div class="filters">
      ${RANGES.map((range) => html`<label><input type="radio" name="range" checked=${days === range}
        onChange=${() => setDays(range)} /> ${range} days</label>`)}
    </div>
    <${ErrorLine} error=${error} />
    ${charts ? html`<${TimeChart} title="Sandbox-hours per day" times=${charts.times} series=${charts.hours} />
      <${TimeChart} title="Most sandboxes running at once" times=${charts.times} series=${charts.peak} />` : null}
    <table class="usage">
      <thead><tr><th>Day (UTC)</th><th>Sandbox-hours</th><th>Most running at once</th></tr></thead>
      <tbody>${(usage ? usage.days.slice().reverse() : []).map(
        (day) => html`<tr key=${day.date} data-day=${day.date}>
          <td>${day.date}</td><td>${day.sandboxHours.toFixed(3)}</td><td>${day.peakRunning}</td>
        </tr>`,
      )}</tbody>
    </table>
  </section>`;
}
