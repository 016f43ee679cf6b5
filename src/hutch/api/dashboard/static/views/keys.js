// The team's API keys: create one (its text is shown once), rename nothing, revoke any.
import { html, useState } from "../vendor/preact-htm.mjs";
import { api } from "../api.js";
import { ErrorLine, usePolling } from "./common.js";

export function Keys() {
  const [keys, error, reload] = usePolling(() => api("/api-keys"), 0);
  const [name, setName] = useState("");
  const [created, setCreated] = useState(null);
  const [actionError, setActionError] = useState(null);
  const create = async (event) => {
    event.preventDefault();
    try {
      setCreated(await api("/api-keys", { method: "POST", body: { name: name.trim() || "dashboard" } }));
      setName("");
      reload();
    } catch (failure) {
      setActionError(failure.message);
    }
  };
  const revoke = async (key) => {
    if (!confirm(`Revoke ${key.name}? Clients using it stop working at once.`)) return;
    try {
      await api(`/api-keys/${key.id}`, { method: "DELETE" });
      reload();
    } catch (failure) {
      setActionError(failure.message);
    }
  };
  return html`<section>
    <h2>API keys</h2>
    <form class="inline" onSubmit=${create}>
      <input placeholder="name" value=${name} onInput=${(event) => setName(event.target.value)} aria-label="key name" />
      <button type="submit">Create key</button>
    </form>
    ${created ? html`<div class="notice" data-testid="created-key">
      <p>The new key, shown only now:</p><code>${created.key}</code>
      <button class="link" onClick=${() => setCreated(null)}>Done</button></div>` : null}
    <${ErrorLine} error=${actionError || error} />
    <table>
      <thead><tr><th>Name</th><th>Key</th><th>Created</th><th>Last used</th><th></th></tr></thead>
      <tbody>${(keys || []).map(
        (key) => html`<tr key=${key.id} data-key=${key.id}>
          <td>${key.name}</td>
          <td><code>${key.mask.maskedValuePrefix}…${key.mask.maskedValueSuffix}</code></td>
          <td>${new Date(key.createdAt).toLocaleString()}</td>
          <td>${key.lastUsed ? new Date(key.lastUsed).toLocaleString() : "never"}</td>
          <td><button class="danger" onClick=${() => revoke(key)}>Revoke</button></td>
        </tr>`,
      )}</tbody>
    </table>
  </section>`;
}
