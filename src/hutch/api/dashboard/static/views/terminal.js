// A live terminal: xterm.js over a PTY that the sandbox's envd starts (a login shell of `user`), as the
// SDKs' `sandbox.pty` does: output streams in, keystrokes and size changes go out as separate calls.
import { html, useEffect, useRef, useState } from "../vendor/preact-htm.mjs";
import { fromBase64, toBase64 } from "../envd.js";

const REATTACH_ATTEMPTS = 10;

export function Terminal({ envd }) {
  const box = useRef(null);
  const [status, setStatus] = useState("connecting");
  const [attached, setAttached] = useState(0);
  useEffect(() => {
    let dispose = () => {};
    let gone = false;
    // xterm.js is the page's largest file: it loads when a terminal opens, not with the page.
    Promise.all([import("../vendor/xterm.mjs"), import("../vendor/xterm-addon-fit.mjs")]).then(
      ([{ Terminal: XTerm }, { FitAddon }]) => {
        if (!gone) dispose = attach(XTerm, FitAddon);
      },
      (failure) => setStatus(`failed: ${failure.message}`),
    );
    return () => {
      gone = true;
      dispose();
    };
  }, [envd]);

  function attach(XTerm, FitAddon) {
    const term = new XTerm({ cursorBlink: true, fontSize: 13, convertEol: false });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(box.current);
    fit.fit();
    const stop = new AbortController();
    const encoder = new TextEncoder();
    let pid = null;
    let queued = Promise.resolve();
    const send = (data) => {
      if (pid === null) return;
      const input = toBase64(encoder.encode(data));
      queued = queued.then(() =>
        envd.unary("process.Process/SendInput", { process: { pid }, input: { pty: input } }).catch(() => {}),
      );
    };
    const typed = term.onData(send);
    const resized = term.onResize(({ cols, rows }) => {
      if (pid !== null) envd.unary("process.Process/Update", { process: { pid }, pty: { size: { cols, rows } } });
    });
    const observer = new ResizeObserver(() => fit.fit());
    observer.observe(box.current);
    let ended = false;
    const onEvent = ({ event }) => {
      if (!event) return;
      if (event.start) {
        pid = event.start.pid;
        setAttached((count) => count + 1);
        setStatus("connected");
        term.focus();
      } else if (event.data && event.data.pty) {
        term.write(fromBase64(event.data.pty));
      } else if (event.end) {
        ended = true;
        setStatus("ended");
      }
    };
    // The output stream may break (a proxy restarts, the browser sees its network change): the shell goes
    // on, and the terminal attaches to it again by its pid.
    const run = async () => {
      const started = {
        process: { cmd: "/bin/bash", args: ["-i", "-l"], envs: { TERM: "xterm-256color" } },
        pty: { size: { cols: term.cols, rows: term.rows } },
      };
      let call = ["process.Process/Start", started];
      for (let attempt = 0; attempt < REATTACH_ATTEMPTS && !ended && !stop.signal.aborted; attempt++) {
        try {
          await envd.stream(...call, onEvent, stop.signal);
          if (!ended) setStatus("ended");
          return;
        } catch (failure) {
          if (stop.signal.aborted) return;
          if (pid === null) {
            setStatus(`failed: ${failure.message}`);
            return;
          }
          setStatus("reconnecting");
          await new Promise((resume) => setTimeout(resume, 500 * (attempt + 1)));
          call = ["process.Process/Connect", { process: { pid } }];
        }
      }
    };
    run();
    return () => {
      if (pid !== null) {
        envd.unary("process.Process/SendSignal", { process: { pid }, signal: "SIGNAL_SIGKILL" }).catch(() => {});
      }
      stop.abort();
      observer.disconnect();
      typed.dispose();
      resized.dispose();
      term.dispose();
    };
  }
  return html`<div>
    <p class="muted">Terminal: <span data-testid="terminal-status" data-attached=${attached}>${status}</span></p>
    <div class="terminal" ref=${box} data-testid="terminal"></div>
  </div>`;
}
