// The live sandbox list: state, template, engine, node, age, time left and CPU and memory sparklines,
// filtered by state and metadata; refreshed every two seconds.
import { html, useRef, useState } from "../vendor/preact-htm.mjs";
import { api } from "../api.js";
import { Sparkline } from "./charts.js";
import { ErrorLine, age, bytes, remaining, usePolling } from "./common.js";

const STATES = ["running", "paused"];
const COLUMNS = ["Sandbox", "Template", "State", "Engine", "Node", "Age", "Time left", "CPU", "Memory"];
const HISTORY = 30;

// The SDK's encoding of a metadata filter: each key and value quoted, then the pairs form-encoded.
export function metadataFilter(text) {
  const quote = (part) => encodeURIComponent(encodeURIComponent(part.trim()));
  return text
    .split(",")
    .map((pair) => pair.trim())
    .filter(Boolean)
    .map((pair) => {
      const [key, ...rest] = pair.split("=");
      return `${quote(key)}=${quote(rest.join("="))}`;
    })
    .join("&");
}

export function Sandboxes() {
  const [states, setStates] = useState(new Set(STATES));
  const [metadata, setMetadata] = useState("");
  const history = useRef(new Map());
  const [overview, error] = usePolling(
    async () => {
      const found = await api("/dashboard/api/sandboxes", {
        query: { state: [...states].join(","), metadata: metadataFilter(metadata) },
      });
      remember(history.current, found.sandboxes);
      return found;
    },
    2000,
    [[...states].join(","), metadata],
  );
  const toggle = (state) => {
    const next = new Set(states);
    if (next.has(state)) next.delete(state);
    else next.add(state);
    if (next.size) setStates(next);
  };
  const sandboxes = overview ? overview.sandboxes : [];
  return html`<section>
    <h2>Sandboxes <span class="count" data-testid="sandbox-count">${overview ? sandboxes.length : ""}</span></h2>
    <div class="filters">
      ${STATES.map(
        (state) => html`<label><input type="checkbox" checked=${states.has(state)}
          onChange=${() => toggle(state)} /> ${state}</label>`,
      )}
      <input class="metadata" placeholder="metadata: key=value, …" value=${metadata}
        onChange=${(event) => setMetadata(event.target.value)} aria-label="metadata filter" />
    </div>
    <${ErrorLine} error=${error} />
    ${overview && overview.truncated ? html`<p class="muted">Only the newest ${sandboxes.length} are listed.</p>` : null}
    <div class="grid sandboxes" role="table" aria-label="sandboxes">
      <div class="head" role="row">
        ${COLUMNS.map((name) => html`<span role="columnheader">${name}</span>`)}
      </div>
      ${sandboxes.map((sandbox) => html`<${Row} key=${sandbox.sandboxID} sandbox=${sandbox}
          samples=${history.current.get(sandbox.sandboxID) || []} />`)}
    </div>
    ${overview && sandboxes.length === 0 ? html`<p class="muted">No sandboxes.</p>` : null}
  </section>`;
}

function Row({ sandbox, samples }) {
  const latest = sandbox.latest;
  return html`<div class="row" role="row" data-sandbox=${sandbox.sandboxID}>
    <span role="cell"><a href="#/sandboxes/${sandbox.sandboxID}">${sandbox.sandboxID}</a></span>
    <span role="cell">${sandbox.alias || sandbox.templateID}</span>
    <span role="cell"><span class="state ${sandbox.state}">${sandbox.state}</span></span>
    <span role="cell">${sandbox.engine || "—"}</span>
    <span role="cell">${sandbox.nodeID}</span>
    <span role="cell">${age(sandbox.startedAt)}</span>
    <span role="cell">${sandbox.state === "running" ? remaining(sandbox.endAt) : "—"}</span>
    <span role="cell" title=${latest ? `${latest.cpuUsedPct.toFixed(1)} %` : ""}>
      <${Sparkline} values=${samples.map((sample) => sample.cpuUsedPct)} max=${100} label="CPU" />
    </span>
    <span role="cell" title=${latest ? bytes(latest.memUsed) : ""}>
      <${Sparkline} values=${samples.map((sample) => sample.memUsed)} max=${sandbox.memoryMB * 1048576} label="memory" />
    </span>
  </div>`;
}

// Keeps the last HISTORY distinct samples of each listed sandbox, and forgets those no longer listed.
function remember(history, sandboxes) {
  const listed = new Set();
  for (const sandbox of sandboxes) {
    listed.add(sandbox.sandboxID);
    if (!sandbox.latest) continue;
    const samples = history.get(sandbox.sandboxID) || [];
    const last = samples[samples.length - 1];
    if (!last || last.timestampUnix !== sandbox.latest.timestampUnix) samples.push(sandbox.latest);
    history.set(sandbox.sandboxID, samples.slice(-HISTORY));
  }
  for (const id of history.keys()) if (!listed.has(id)) history.delete(id);
}
