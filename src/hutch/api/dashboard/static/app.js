// The dashboard's entry: restores the session, then draws the view the location's hash names.
import { html, render, useEffect, useState } from "./vendor/preact-htm.mjs";
import { currentSession, logOut, onSessionChange, restoreSession } from "./api.js";
import { Cluster } from "./views/cluster.js";
import { Keys } from "./views/keys.js";
import { Login } from "./views/login.js";
import { Sandbox } from "./views/sandbox.js";
import { Sandboxes } from "./views/sandboxes.js";
import { Template, Templates } from "./views/templates.js";
import { Usage } from "./views/usage.js";

const ROUTES = [
  [/^#\/sandboxes\/([a-z0-9-]+)$/, (id) => html`<${Sandbox} id=${id} />`],
  [/^#\/templates\/([^/]+)$/, (id) => html`<${Template} id=${decodeURIComponent(id)} />`],
  [/^#\/templates$/, () => html`<${Templates} />`],
  [/^#\/keys$/, () => html`<${Keys} />`],
  [/^#\/usage$/, () => html`<${Usage} />`],
  [/^#\/cluster$/, () => html`<${Cluster} />`],
  [/^(#\/sandboxes)?$/, () => html`<${Sandboxes} />`],
];

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return hash;
}

function useSession() {
  const [session, setSession] = useState(currentSession());
  useEffect(() => onSessionChange(setSession), []);
  return session;
}

function Nav({ session, hash }) {
  const link = (href, label) =>
    html`<a href=${href} class=${hash.startsWith(href) ? "active" : ""}>${label}</a>`;
  return html`<header>
    <strong class="brand">Hutch</strong>
    <nav>${link("#/sandboxes", "Sandboxes")} ${link("#/templates", "Templates")} ${link("#/keys", "API keys")} ${link("#/usage", "Usage")}
      ${session.cluster ? link("#/cluster", "Cluster") : null}</nav>
    <span class="team" data-testid="team">${session.teamName}</span>
    <button class="link" onClick=${() => logOut()}>Log out</button>
  </header>`;
}

function App() {
  const session = useSession();
  const hash = useHash();
  if (!session) return html`<${Login} />`;
  const [pattern, view] = ROUTES.find(([pattern]) => pattern.test(hash)) || ROUTES[ROUTES.length - 1];
  const match = hash.match(pattern) || [];
  return html`<${Nav} session=${session} hash=${hash || "#/sandboxes"} />
    <main>${view(...match.slice(1))}</main>`;
}

restoreSession();
render(html`<${App} />`, document.getElementById("app"));
