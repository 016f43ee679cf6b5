// Templates: the team's and the built-in ones with their aliases and sizes; a template's builds and their
// tags, each build's log as it is written, and deleting a template.
import { html, useEffect, useRef, useState } from "../vendor/preact-htm.mjs";
import { api } from "../api.js";
import { ErrorLine, age, usePolling } from "./common.js";

export function Templates() {
  const [templates, error] = usePolling(() => api("/templates"), 5000);
  return html`<section>
    <h2>Templates</h2>
    <${ErrorLine} error=${error} />
    <table>
      <thead><tr><th>Template</th><th>Aliases</th><th>Status</th><th>Size</th><th>Builds</th><th>Updated</th></tr></thead>
      <tbody>
        ${(templates || []).map(
          (template) => html`<tr key=${template.templateID} data-template=${template.templateID}>
            <td><a href="#/templates/${encodeURIComponent(template.templateID)}">${template.templateID}</a>
              ${template.isDefault ? html` <span class="muted">built-in</span>` : null}</td>
            <td>${template.aliases.join(", ")}</td>
            <td><span class="state ${template.buildStatus}">${template.buildStatus}</span></td>
            <td>${template.cpuCount} vCPU, ${template.memoryMB} MiB, ${template.diskSizeMB} MiB disk</td>
            <td>${template.buildCount}</td>
            <td>${age(template.updatedAt)} ago</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

export function Template({ id }) {
  const [template, error] = usePolling(() => api(`/templates/${encodeURIComponent(id)}`), 5000, [id]);
  const [tags] = usePolling(() => api(`/templates/${encodeURIComponent(id)}/tags`), 5000, [id]);
  const [chosen, setChosen] = useState(null);
  const [actionError, setActionError] = useState(null);
  const builds = template && template.builds ? template.builds : [];
  const shown = chosen || (builds[0] && builds[0].buildID);
  const remove = async () => {
    if (!confirm(`Delete template ${id}?`)) return;
    try {
      await api(`/templates/${encodeURIComponent(id)}`, { method: "DELETE" });
      location.hash = "#/templates";
    } catch (failure) {
      setActionError(failure.message);
    }
  };
  return html`<section>
    <h2><a href="#/templates">Templates</a> / ${id}</h2>
    <${ErrorLine} error=${actionError || error} />
    ${template ? html`<dl class="facts">
      <dt>Aliases</dt><dd>${template.aliases.join(", ") || "—"}</dd>
      <dt>Size</dt><dd>${template.cpuCount} vCPU, ${template.memoryMB} MiB, ${template.diskSizeMB} MiB disk</dd>
      <dt>Status</dt><dd><span class="state ${template.buildStatus}">${template.buildStatus}</span></dd>
    </dl>
    ${template.isDefault ? null : html`<div class="actions"><button class="danger" onClick=${remove}>Delete</button></div>`}
    <h3>Builds</h3>
    <table>
      <thead><tr><th>Build</th><th>Status</th><th>Tags</th><th>Started</th></tr></thead>
      <tbody>${builds.map(
        (build) => html`<tr key=${build.buildID} class=${build.buildID === shown ? "chosen" : ""}>
          <td><a href="#/templates/${encodeURIComponent(id)}" onClick=${(event) => { event.preventDefault(); setChosen(build.buildID); }}>${build.buildID}</a></td>
          <td><span class="state ${build.status}">${build.status}</span></td>
          <td>${(tags || []).filter((tag) => tag.buildID === build.buildID).map((tag) => html`<code class="tag">${tag.tag}</code> `)}</td>
          <td>${age(build.createdAt)} ago</td>
        </tr>`,
      )}</tbody>
    </table>
    ${shown ? html`<${BuildLog} templateId=${id} buildId=${shown} />` : null}` : null}
  </section>`;
}

// A build's log, read on from where the last read ended while the build runs.
function BuildLog({ templateId, buildId }) {
  const [lines, setLines] = useState([]);
  const [status, setStatus] = useState(null);
  const [error, setError] = useState(null);
  const offset = useRef(0);
  useEffect(() => {
    offset.current = 0;
    setLines([]);
    let stopped = false;
    let timer = null;
    const read = async () => {
      try {
        const info = await api(`/templates/${encodeURIComponent(templateId)}/builds/${buildId}/status`, {
          query: { logsOffset: offset.current },
        });
        if (stopped) return;
        offset.current += info.logEntries.length;
        if (info.logEntries.length) setLines((now) => [...now, ...info.logEntries]);
        setStatus(info.status);
        setError(info.reason ? info.reason.message : null);
        const more = info.logEntries.length > 0 || info.status === "building" || info.status === "waiting";
        timer = setTimeout(read, more ? 500 : 5000);
      } catch (failure) {
        if (stopped) return;
        setError(failure.message);
        timer = setTimeout(read, 2000);
      }
    };
    read();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [templateId, buildId]);
  return html`<div>
    <h3>Log of ${buildId} <span class="state ${status}" data-testid="build-status">${status}</span></h3>
    <${ErrorLine} error=${error} />
    <pre class="log" data-testid="build-log">${lines.map((line) => `${line.timestamp}  ${line.message}\n`)}</pre>
  </div>`;
}
