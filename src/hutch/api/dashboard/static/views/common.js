// What several views share: polling, times and sizes written for people, and an error line.
import { html, useLayoutEffect, useRef, useState } from "../vendor/preact-htm.mjs";

// Calls `load` now and every `intervalMs` while the view is shown; [value, error, reload].
export function usePolling(load, intervalMs, deps = []) {
  const [value, setValue] = useState(null);
  const [error, setError] = useState(null);
  const generation = useRef(0);
  const reload = async () => {
    const mine = ++generation.current;
    try {
      const loaded = await load();
      if (mine === generation.current) {
        setValue(loaded);
        setError(null);
      }
    } catch (failure) {
      if (mine === generation.current) setError(failure.message);
    }
  };
  // A layout effect: the first call starts as the view is drawn, not a frame later.
  useLayoutEffect(() => {
    reload();
    if (!intervalMs) return undefined;
    const timer = setInterval(reload, intervalMs);
    return () => {
      clearInterval(timer);
      generation.current++;
    };
  }, deps);
  return [value, error, reload];
}

export function age(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return duration(seconds);
}

export function remaining(iso) {
  const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
  return seconds <= 0 ? "due" : duration(seconds);
}

export function duration(seconds) {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}

export function bytes(count) {
  if (count === null || count === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function ErrorLine({ error }) {
  return error ? html`<p class="error" role="alert">${error}</p>` : null;
}
