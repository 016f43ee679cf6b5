// The API as the dashboard calls it: its own routes with the session cookie and the CSRF token, errors
// in E2B's shape turned into exceptions, and a lost session sending the page back to the login form.

let session = null;
const listeners = new Set();

export function currentSession() {
  return session;
}

export function onSessionChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function setSession(value) {
  session = value;
  for (const listener of listeners) listener(value);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.message) message = body.message;
  } catch (_) {
    // not JSON: the status says enough
  }
  return new ApiError(response.status, message);
}

export async function api(path, { method = "GET", body, query } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = {};
  if (session) headers[session.csrfHeader] = session.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (response.status === 401 && session) {
    setSession(null);
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// The page carries the session it was served with (empty when logged out).
export function restoreSession() {
  const carried = document.querySelector('meta[name="hutch-session"]').content;
  setSession(carried ? JSON.parse(carried) : null);
  return session;
}

export async function logIn(apiKey) {
  setSession(await api("/dashboard/login", { method: "POST", body: { apiKey } }));
}

export async function logOut() {
  await api("/dashboard/logout", { method: "POST" });
  setSession(null);
}

// The cluster's pages need the operator key: the session takes it, with a new CSRF token.
export async function giveOperatorKey(operatorKey) {
  setSession(await api("/dashboard/operator", { method: "POST", body: { operatorKey } }));
}
