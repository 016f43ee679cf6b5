// A sandbox's envd, called from the page through the edge (https://49983-<id>.<domain>) with the sandbox's
// access token, as the E2B SDKs call it: Connect RPC with the JSON codec, and signed /files URLs.

const ENVD_PORT = 49983;
const USER = "user";
const STREAM = "application/connect+json";

export class Envd {
  constructor(sandbox, domain) {
    this.base = `https://${ENVD_PORT}-${sandbox.sandboxID}.${domain}`;
    this.token = sandbox.envdAccessToken;
  }

  headers(contentType) {
    return {
      "Content-Type": contentType,
      "Connect-Protocol-Version": "1",
      "X-Access-Token": this.token,
      Authorization: "Basic " + btoa(`${USER}:`),
    };
  }

  async unary(method, message) {
    const response = await fetch(`${this.base}/${method}`, {
      method: "POST",
      headers: this.headers("application/json"),
      body: JSON.stringify(message),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.message || `${method}: ${response.status}`);
    return body;
  }

  // Calls a server-streaming method; `onMessage` gets each message; resolves when the stream ends.
  async stream(method, message, onMessage, signal) {
    const response = await fetch(`${this.base}/${method}`, {
      method: "POST",
      headers: this.headers(STREAM),
      body: envelope(message),
      signal,
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.message || `${method}: ${response.status}`);
    }
    const reader = response.body.getReader();
    let pending = new Uint8Array(0);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      pending = concat(pending, value);
      while (pending.length >= 5) {
        const length = new DataView(pending.buffer, pending.byteOffset + 1, 4).getUint32(0);
        if (pending.length < 5 + length) break;
        const flags = pending[0];
        const payload = JSON.parse(new TextDecoder().decode(pending.subarray(5, 5 + length)));
        pending = pending.slice(5 + length);
        if (flags & 0x02) {
          if (payload.error) throw new Error(payload.error.message || payload.error.code);
          return;
        }
        onMessage(payload);
      }
    }
  }

  async signedUrl(path, operation, lifetimeS = 300) {
    const expiration = Math.floor(Date.now() / 1000) + lifetimeS;
    const raw = `${path}:${operation}:${USER}:${this.token}:${expiration}`;
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(raw));
    const signature = "v1_" + btoa(String.fromCharCode(...new Uint8Array(digest))).replace(/=+$/, "");
    const query = new URLSearchParams({
      path,
      username: USER,
      signature,
      signature_expiration: String(expiration),
    });
    return `${this.base}/files?${query}`;
  }

  async listDir(path) {
    const answer = await this.unary("filesystem.Filesystem/ListDir", { path, depth: 1 });
    return answer.entries || [];
  }

  async upload(directory, file) {
    const path = `${directory.replace(/\/$/, "")}/${file.name}`;
    const form = new FormData();
    form.append("file", file, file.name);
    const response = await fetch(await this.signedUrl(path, "write"), { method: "POST", body: form });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.message || `upload: ${response.status}`);
    }
    return path;
  }
}

function envelope(message) {
  const payload = new TextEncoder().encode(JSON.stringify(message));
  const framed = new Uint8Array(5 + payload.length);
  new DataView(framed.buffer).setUint32(1, payload.length);
  framed.set(payload, 5);
  return framed;
}

function concat(a, b) {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

export function toBase64(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}

export function fromBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}
