// The signaling WebSocket on this origin (docs/protocol.md). CSP connect-src 'self' covers it.
//
// ReconnectingSocket is the one owner of opening, reconnecting with back-off, and reading close
// codes; call.js and dashboard.js both use it. Events:
//   open                 the socket is open (again): say join or watch now
//   message {…}          one parsed message
//   dropped {code, delayMs}  the connection was lost; it opens again after delayMs
//   closed {code}        the server closed for good (a final code), or close() was called
import {
  CLOSE_ENDED, CLOSE_RATE_LIMITED, CLOSE_REFUSED, CLOSE_REPLACED, CLOSE_UNAUTHORIZED, PROTOCOL_VERSION,
} from "./protocol.js";

// After these the server will not take us back by trying again: a refusal, the end, or another
// tab took the seat. Everything else (network, restart 1001, internal 1011, join timeout 4008)
// is worth another try.
export const FINAL_CLOSE_CODES = new Set([
  CLOSE_UNAUTHORIZED, CLOSE_REFUSED, CLOSE_ENDED, CLOSE_REPLACED, CLOSE_RATE_LIMITED,
]);
// Doubling from one second: a restarting server is back within a few; the cap keeps a long
// outage from turning into minutes between tries.
const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 10000;

/** A plain socket to /ws, for a one-off reachability check. */
export function openSocket() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return new WebSocket(`${scheme}//${location.host}/ws`);
}

export class ReconnectingSocket extends EventTarget {
  constructor({ maxDelayMs = MAX_DELAY_MS } = {}) {
    super();
    this.maxDelayMs = maxDelayMs;
    this.delayMs = FIRST_DELAY_MS;
    this.socket = null;
    this.timer = 0;
    this.stopped = false;
    this.drops = 0; // connections lost and tried again, for support and tests
  }

  open() {
    if (this.stopped) return;
    const socket = openSocket();
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (socket !== this.socket) return;
      this.delayMs = FIRST_DELAY_MS;
      this.emit("open");
    });
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // not ours to understand; the server only sends JSON
      }
      if (message && typeof message === "object") this.emit("message", message);
    });
    socket.addEventListener("close", (event) => this.onClose(socket, event.code));
  }

  get isOpen() {
    return Boolean(this.socket) && this.socket.readyState === WebSocket.OPEN;
  }

  /** Send one message with the protocol version; false when the socket is not open. */
  send(message) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify({ v: PROTOCOL_VERSION, ...message }));
    return true;
  }

  /** Close for good: no reconnect, no more events. */
  close(code = 1000) {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(code);
  }

  onClose(socket, code) {
    if (socket !== this.socket || this.stopped) return;
    if (FINAL_CLOSE_CODES.has(code)) {
      this.stopped = true;
      this.socket = null;
      this.emit("closed", { code });
      return;
    }
    const delayMs = this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, this.maxDelayMs);
    this.drops++;
    this.emit("dropped", { code, delayMs });
    this.timer = setTimeout(() => this.open(), delayMs);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
