// A WebSocket that keeps itself connected.
//
// The channel layer behind /ws/ is lossy by design, and servers restart, so a page must expect
// to lose its socket at any time. LiveSocket reconnects with exponential backoff and full
// jitter (so a restarted server is not hit by every browser at once), and builds the URL afresh
// on every connect: a page passes a `query()` that returns its latest cursor, and the server
// backfills everything after it.

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
const STABLE_MS = 10000;

export function wsUrl(path, params = {}) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
  }
  return url.toString();
}

export class LiveSocket {
  /**
   * @param {string} path e.g. "/ws/jobs/42/"
   * @param {object} options
   * @param {(message: object, socket: LiveSocket) => void} options.onMessage one parsed JSON message
   * @param {() => object} [options.query] query parameters for the next connect (the cursor)
   * @param {(status: "connecting"|"open"|"closed") => void} [options.onStatus]
   * @param {() => void} [options.onOpen] called on every (re)connect
   */
  constructor(path, { onMessage, query = () => ({}), onStatus = () => {}, onOpen = () => {} }) {
    this.path = path;
    this.onMessage = onMessage;
    this.query = query;
    this.onStatus = onStatus;
    this.onOpen = onOpen;
    this.failures = 0;
    this.socket = null;
    this.timer = null;
    this.stopped = false;
    this.messagesSinceOpen = 0;
  }

  start() {
    this.stopped = false;
    document.addEventListener("visibilitychange", () => {
      // A tab coming back from the background should not wait out a long backoff.
      if (document.visibilityState === "visible" && !this.socket && !this.stopped) {
        this.connectNow();
      }
    });
    window.addEventListener("online", () => this.connectNow());
    this.connectNow();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.socket) this.socket.close(1000, "page done");
    this.socket = null;
    this.onStatus("closed");
  }

  /** Drop the current socket and connect again at once, with a fresh cursor from query(). */
  reconnect() {
    if (this.stopped) return;
    const old = this.socket;
    this.socket = null;
    if (old) {
      old.onclose = null;
      old.onmessage = null;
      old.close(1000, "reconnecting");
    }
    this.connectNow();
  }

  connectNow() {
    if (this.stopped || this.socket) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.onStatus("connecting");
    const socket = new WebSocket(wsUrl(this.path, this.query()));
    this.socket = socket;
    this.messagesSinceOpen = 0;
    let openedAt = 0;
    socket.onopen = () => {
      openedAt = Date.now();
      this.onStatus("open");
      this.onOpen();
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.messagesSinceOpen += 1;
      this.onMessage(message, this);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      // Only a connection that lived a while resets the backoff: a server that accepts and
      // drops at once must not be hit in a tight loop.
      if (openedAt && Date.now() - openedAt > STABLE_MS) this.failures = 0;
      // 4401 (signed out), 4403 and 4404 (not yours), 1008 (policy): retrying cannot help.
      if ([4401, 4403, 4404, 1008].includes(event.code)) {
        this.stopped = true;
        this.onStatus("closed");
        return;
      }
      this.scheduleRetry();
    };
  }

  scheduleRetry() {
    if (this.stopped) return;
    this.onStatus("connecting");
    const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** this.failures);
    this.failures += 1;
    // Full jitter, with a small floor so a flapping server is not hammered.
    const delay = 100 + Math.random() * ceiling;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connectNow();
    }, delay);
  }
}

/** Show a LiveSocket's status in a `.live-dot` element. */
export function statusIndicator(element) {
  const labels = { open: "live", connecting: "reconnecting…", closed: "offline" };
  return (status) => {
    if (!element) return;
    element.dataset.status = status;
    element.textContent = labels[status] ?? status;
  };
}

/** Parse a `{{ value|json_script:"id" }}` block. */
export function readJson(id, fallback = null) {
  const element = document.getElementById(id);
  if (!element) return fallback;
  try {
    return JSON.parse(element.textContent);
  } catch {
    return fallback;
  }
}

/** "1h 02m", "3m 07s", "12s" — the same format the server renders. */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  if (hours) return `${hours}h ${pad(minutes)}m`;
  if (minutes) return `${minutes}m ${pad(rest)}s`;
  return `${rest}s`;
}

/** Keep every `[data-started]` element's duration ticking once a second. */
export function tickDurations(root = document) {
  const tick = () => {
    for (const element of root.querySelectorAll("[data-started]")) {
      const started = Date.parse(element.dataset.started);
      if (!Number.isNaN(started)) element.textContent = formatDuration((Date.now() - started) / 1000);
    }
  };
  tick();
  return setInterval(tick, 1000);
}
