// A desktop sandbox's stream (noVNC on port 6080, as `e2b-desktop`'s `stream.start()` serves it), embedded.
// It loads when asked, or at once for a sandbox of a desktop template; a stream with a password asks for it.
import { html, useState } from "../vendor/preact-htm.mjs";

const STREAM_PORT = 6080;

export function Desktop({ sandbox, domain }) {
  const [shown, setShown] = useState((sandbox.alias || "").includes("desktop"));
  const [password, setPassword] = useState("");
  const query = new URLSearchParams({ autoconnect: "true", resize: "scale" });
  if (password) query.set("password", password);
  const url = `https://${STREAM_PORT}-${sandbox.sandboxID}.${domain}/vnc.html?${query}`;
  return html`<div class="desktop">
    <div class="toolbar">
      <input type="password" autocomplete="off" placeholder="stream password, if it has one"
        aria-label="stream password" value=${password} onChange=${(event) => setPassword(event.target.value)} />
      <button onClick=${() => setShown(true)}>${shown ? "Reconnect" : "Show the stream"}</button>
      <span class="muted">Start it with <code>desktop.stream.start()</code> (e2b-desktop).</span>
    </div>
    ${shown ? html`<iframe key=${url} src=${url} title="desktop stream" data-testid="desktop-stream"></iframe>` : null}
  </div>`;
}
