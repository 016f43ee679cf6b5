// The cluster's nodes (for the operator): health, capacity and load, drained or not; drain and undrain.
import { html, useState } from "../vendor/preact-htm.mjs";
import { api, currentSession, giveOperatorKey } from "../api.js";
import { ErrorLine, age, usePolling } from "./common.js";

// A node that has not reported for this long is shown as late (it is marked lost after the cluster's limit).
const LATE_S = 10;

export function Cluster() {
  return currentSession().operator ? html`<${Nodes} />` : html`<${OperatorForm} />`;
}

function OperatorForm() {
  const [key, setKey] = useState("");
  const [error, setError] = useState(null);
  const submit = async (event) => {
    event.preventDefault();
    try {
      await giveOperatorKey(key.trim());
    } catch (failure) {
      setError(failure.message);
    }
  };
  return html`<section>
    <h2>Cluster</h2>
    <p class="muted">The cluster's pages are the operator's: give the operator key to this session.</p>
    <form class="inline" onSubmit=${submit}>
      <input type="password" autocomplete="off" aria-label="operator key" value=${key}
        onInput=${(event) => setKey(event.target.value)} />
      <button type="submit">Open</button>
    </form>
    <${ErrorLine} error=${error} />
  </section>`;
}

function Nodes() {
  const [nodes, error, reload] = usePolling(() => api("/nodes"), 2000);
  const [actionError, setActionError] = useState(null);
  const change = async (node, status) => {
    try {
      await api(`/nodes/${encodeURIComponent(node.nodeID)}`, { method: "POST", body: { status } });
      reload();
    } catch (failure) {
      setActionError(failure.message);
    }
  };
  const used = (part, whole, unit) => `${part} / ${whole} ${unit}`;
  return html`<section>
    <h2>Cluster <span class="count">${nodes ? nodes.length : ""}</span></h2>
    <${ErrorLine} error=${actionError || error} />
    <table>
      <thead><tr><th>Node</th><th>Status</th><th>Last report</th><th>Sandboxes</th><th>CPU</th>
        <th>Memory</th><th>Disk</th><th>Version</th><th></th></tr></thead>
      <tbody>${(nodes || []).map((node) => {
        const silent = (Date.now() - Date.parse(node.heartbeatAt)) / 1000;
        return html`<tr key=${node.nodeID} data-node=${node.nodeID}>
          <td>${node.nodeID}<br /><span class="muted">${node.address}</span></td>
          <td><span class="state ${node.status}" data-testid="node-status">${node.status}</span></td>
          <td class=${silent > LATE_S ? "error" : ""}>${age(node.heartbeatAt)} ago</td>
          <td>${node.sandboxCount}</td>
          <td>${used(node.allocatedCPU, node.cpuCount, "vCPU")}</td>
          <td>${used(node.allocatedMemoryMB, node.memoryMB, "MiB")}</td>
          <td>${used(node.allocatedDiskMB, node.diskMB, "MiB")}</td>
          <td>${node.version}</td>
          <td>${node.status === "ready" ? html`<button onClick=${() => change(node, "draining")}>Drain</button>` : null}
            ${node.status === "draining" ? html`<button onClick=${() => change(node, "ready")}>Undrain</button>` : null}</td>
        </tr>`;
      })}</tbody>
    </table>
  </section>`;
}
