// The sandbox's files: a directory listing from envd, downloads and uploads through signed URLs.
import { html, useState } from "../vendor/preact-htm.mjs";
import { ErrorLine, bytes, usePolling } from "./common.js";

export function Files({ envd }) {
  const [directory, setDirectory] = useState("/home/user");
  const [notice, setNotice] = useState(null);
  const [entries, error, reload] = usePolling(() => envd.listDir(directory), 0, [directory]);
  const open = async (entry) => {
    if (entry.type === "FILE_TYPE_DIRECTORY") {
      setDirectory(entry.path);
      return;
    }
    const link = document.createElement("a");
    link.href = await envd.signedUrl(entry.path, "read");
    link.download = entry.name;
    link.click();
  };
  const upload = async (event) => {
    const chosen = [...event.target.files];
    event.target.value = "";
    try {
      for (const file of chosen) setNotice(`uploaded ${await envd.upload(directory, file)}`);
      reload();
    } catch (failure) {
      setNotice(`upload failed: ${failure.message}`);
    }
  };
  const parent = directory === "/" ? null : directory.replace(/\/[^/]*$/, "") || "/";
  const sorted = (entries || []).slice().sort((a, b) => a.name.localeCompare(b.name));
  return html`<div class="files">
    <div class="toolbar">
      <code data-testid="directory">${directory}</code>
      ${parent ? html`<button onClick=${() => setDirectory(parent)}>Up</button>` : null}
      <button onClick=${reload}>Refresh</button>
      <label class="button">Upload<input type="file" multiple hidden onChange=${upload}
        data-testid="upload" /></label>
    </div>
    <${ErrorLine} error=${error} />
    ${notice ? html`<p class="muted" data-testid="files-notice">${notice}</p>` : null}
    <table>
      <thead><tr><th>Name</th><th>Size</th><th>Modified</th></tr></thead>
      <tbody>
        ${sorted.map(
          (entry) => html`<tr key=${entry.path}>
            <td><a href="#" data-path=${entry.path}
              onClick=${(event) => { event.preventDefault(); open(entry); }}>
              ${entry.name}${entry.type === "FILE_TYPE_DIRECTORY" ? "/" : ""}</a></td>
            <td>${entry.type === "FILE_TYPE_DIRECTORY" ? "" : bytes(Number(entry.size || 0))}</td>
            <td>${entry.modifiedTime ? new Date(entry.modifiedTime).toLocaleString() : ""}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}
