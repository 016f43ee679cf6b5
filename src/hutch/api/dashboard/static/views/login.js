// The login form: an API key opens a session; the key itself is not kept by the page.
import { html, useState } from "../vendor/preact-htm.mjs";
import { logIn } from "../api.js";
import { ErrorLine } from "./common.js";

export function Login() {
  const [key, setKey] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    try {
      await logIn(key.trim());
    } catch (failure) {
      setError(failure.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="login" onSubmit=${submit}>
    <h1>Hutch</h1>
    <label for="api-key">API key</label>
    <input id="api-key" name="apiKey" type="password" autocomplete="off" value=${key}
      onInput=${(event) => setKey(event.target.value)} placeholder="e2b_…" required />
    <button type="submit" disabled=${busy}>Log in</button>
    <${ErrorLine} error=${error} />
  </form>`;
}
