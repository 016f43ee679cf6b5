// One sandbox: what it is, pause / resume / kill / timeout, and tabs for its terminal, files, desktop
// stream, metrics and log.
import { html, useMemo, useState } from "../vendor/preact-htm.mjs";
import { api, currentSession } from "../api.js";
import { Envd } from "../envd.js";
import { TimeChart } from "./charts.js";
import { ErrorLine, age, remaining, usePolling } from "./common.js";
import { Desktop } from "./desktop.js";
import { Files } from "./files.js";
import { Terminal } from "./terminal.js";

const TABS = ["terminal", "files", "desktop", "metrics", "logs"];

export function Sandbox({ id }) {
  const [sandbox, error, reload] = usePolling(() => api(`/sandboxes/${id}`), 3000, [id]);
  const [tab, setTab] = useState("terminal");
  const [actionError, setActionError] = useState(null);
  const [busy, setBusy] = useState(false);
  const act = async (call) => {
    setBusy(true);
    setActionError(null);
    try {
      await call();
      await reload();
    } catch (failure) {
      setActionError(failure.message);
    } finally {
      setBusy(false);
    }
  };
  const token = sandbox ? sandbox.envdAccessToken : null;
  const envd = useMemo(
    () => (sandbox && sandbox.state === "running" ? new Envd(sandbox, sandbox.domain || currentSession().domain) : null),
    [token, sandbox && sandbox.state],
  );
  if (!sandbox) {
    return html`<section><h2>${id}</h2><${ErrorLine} error=${error} /></section>`;
  }
  const running = sandbox.state === "running";
  const setTimeoutS = () => {
    const answer = prompt("Seconds from now until the sandbox times out", "300");
    if (answer !== null) act(() => api(`/sandboxes/${id}/timeout`, { method: "POST", body: { timeout: Number(answer) } }));
  };
  const kill = () => {
    if (confirm(`Kill ${id}? Its files are lost.`)) {
      act(async () => {
        await api(`/sandboxes/${id}`, { method: "DELETE" });
        location.hash = "#/sandboxes";
      });
    }
  };
  return html`<section>
    <h2><a href="#/sandboxes">Sandboxes</a> / <span data-testid="sandbox-id">${id}</span></h2>
    <dl class="facts">
      <dt>State</dt><dd><span class="state ${sandbox.state}" data-testid="sandbox-state">${sandbox.state}</span></dd>
      <dt>Template</dt><dd>${sandbox.alias || sandbox.templateID}</dd>
      <dt>Resources</dt><dd>${sandbox.cpuCount} vCPU, ${sandbox.memoryMB} MiB, ${sandbox.diskSizeMB} MiB disk</dd>
      <dt>Age</dt><dd>${age(sandbox.startedAt)}</dd>
      <dt>Time left</dt><dd>${running ? remaining(sandbox.endAt) : "—"}</dd>
      <dt>Metadata</dt><dd>${Object.entries(sandbox.metadata || {}).map(([k, v]) => html`<code>${k}=${v}</code> `)}</dd>
    </dl>
    <div class="actions">
      ${running ? html`<button disabled=${busy} onClick=${() => act(() => api(`/sandboxes/${id}/pause`, { method: "POST" }))}>Pause</button>` : null}
      ${sandbox.state === "paused" ? html`<button disabled=${busy} onClick=${() => act(() => api(`/sandboxes/${id}/resume`, { method: "POST", body: {} }))}>Resume</button>` : null}
      ${running ? html`<button disabled=${busy} onClick=${setTimeoutS}>Set timeout</button>` : null}
      <button class="danger" disabled=${busy} onClick=${kill}>Kill</button>
    </div>
    <${ErrorLine} error=${actionError || error} />
    <div class="tabs" role="tablist">
      ${TABS.map((name) => html`<button role="tab" class=${tab === name ? "active" : ""} onClick=${() => setTab(name)}>${name}</button>`)}
    </div>
    ${tab === "terminal" && (envd ? html`<${Terminal} envd=${envd} />` : html`<p class="muted">Resume the sandbox to open a terminal.</p>`)}
    ${tab === "files" && (envd ? html`<${Files} envd=${envd} />` : html`<p class="muted">Resume the sandbox to see its files.</p>`)}
    ${tab === "desktop" && (envd ? html`<${Desktop} sandbox=${sandbox} domain=${sandbox.domain || currentSession().domain} />` : html`<p class="muted">Resume the sandbox to see its desktop.</p>`)}
    ${tab === "metrics" && html`<${Metrics} id=${id} />`}
    ${tab === "logs" && html`<${Logs} id=${id} />`}
  </section>`;
}

function Metrics({ id }) {
  const [samples, error] = usePolling(() => api(`/sandboxes/${id}/metrics`), 5000, [id]);
  const charts = useMemo(() => {
    if (!samples) return null;
    const times = samples.map((sample) => sample.timestampUnix);
    return {
      times,
      cpu: [{ label: "CPU %", values: samples.map((sample) => sample.cpuUsedPct) }],
      memory: [{ label: "memory MiB", values: samples.map((sample) => sample.memUsed / 1048576) }],
      disk: [{ label: "disk MiB", values: samples.map((sample) => sample.diskUsed / 1048576) }],
    };
  }, [samples]);
  return html`<div>
    <${ErrorLine} error=${error} />
    ${charts ? html`<${TimeChart} title="CPU" times=${charts.times} series=${charts.cpu} />
      <${TimeChart} title="Memory" times=${charts.times} series=${charts.memory} />
      <${TimeChart} title="Disk" times=${charts.times} series=${charts.disk} />` : null}
  </div>`;
}

function Logs({ id }) {
  const [found, error] = usePolling(() => api(`/v2/sandboxes/${id}/logs`, { query: { limit: 1000 } }), 3000, [id]);
  return html`<div>
    <${ErrorLine} error=${error} />
    <pre class="log" data-testid="log">${(found ? found.logs : []).map(
      (line) => `${line.timestamp}  ${line.level.padEnd(5)}  ${line.message}\n`,
    )}</pre>
  </div>`;
}
