// The session clock in the call: time since the session began, and the planned end
// ("12:34 · bis 15:50"). The session begins the first time both are in the call; that moment is
// kept in sessionStorage for this tab, so a reload does not start the clock again. Once the
// server says when the session began (`session_started_at`), that moment wins: `startAt`.
import { t, formatTime } from "./i18n.js";

const STORAGE_KEY = "sprechzimmer.sessionStart";
// Therapists plan the last minutes of a session (a summary, the next appointment): say so in
// time, once.
const WARN_BEFORE_END_MS = 5 * 60_000;

export class SessionClock {
  /**
   * `element` holds `.elapsed` and `.planned-end`; `appointmentKey` names the appointment
   * (its id or start time) so a stored start from another appointment is never reused;
   * `plannedEnd` is a Date or null; `announce(text)` speaks through the page's live region.
   */
  constructor(element, { appointmentKey, plannedEnd = null, announce = () => {} }) {
    this.element = element;
    this.key = String(appointmentKey);
    this.plannedEnd = plannedEnd;
    this.announce = announce;
    this.startedAt = null;
    this.timer = 0;
    this.warned = false;
    this.elapsed = element.querySelector(".elapsed");
    this.end = element.querySelector(".planned-end");
    const stored = readStored();
    if (stored && stored.key === this.key) this.startedAt = stored.startedAt;
    if (this.startedAt !== null) this.run();
  }

  /** Both are in the call: start counting, unless this appointment's session already began. */
  begin() {
    if (this.startedAt !== null) return;
    this.startedAt = Date.now();
    try {
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ key: this.key, startedAt: this.startedAt }));
    } catch {
      // storage refused (private mode quota): the clock still runs for this page
    }
    this.run();
  }

  /** The server's start of the session (ms since the epoch): every device counts from it. */
  startAt(startedAt) {
    if (this.startedAt === startedAt) return;
    this.startedAt = startedAt;
    try {
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ key: this.key, startedAt }));
    } catch {
      // storage refused: the clock still runs for this page
    }
    this.run();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = 0;
  }

  run() {
    this.element.hidden = false;
    this.end.textContent = this.plannedEnd ? ` · ${t("clock.until", { time: formatTime(this.plannedEnd) })}` : "";
    this.tick();
    if (!this.timer) this.timer = setInterval(() => this.tick(), 1000);
  }

  tick() {
    const now = Date.now();
    this.elapsed.textContent = formatElapsed(now - this.startedAt);
    this.elapsed.dateTime = `PT${Math.floor((now - this.startedAt) / 1000)}S`;
    if (!this.plannedEnd) return;
    const left = this.plannedEnd - now;
    this.element.dataset.phase = left <= 0 ? "over" : left <= WARN_BEFORE_END_MS ? "ending" : "running";
    if (left <= WARN_BEFORE_END_MS && left > 0 && !this.warned) {
      this.warned = true;
      this.announce(t("clock.fiveMinutes", { time: formatTime(this.plannedEnd) }));
    }
  }
}

/** Forget the stored start: the session is over or the client left in a hurry. */
export function forgetSessionStart() {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // nothing stored
  }
}

/** 754 s → "12:34"; from an hour on "1:02:34". Digits only, the same in every language. */
export function formatElapsed(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const mm = String(minutes).padStart(hours ? 2 : 1, "0");
  const ss = String(seconds).padStart(2, "0");
  return hours ? `${hours}:${mm}:${ss}` : `${mm.padStart(2, "0")}:${ss}`;
}

function readStored() {
  try {
    const value = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || "null");
    return value && typeof value.startedAt === "number" && typeof value.key === "string" ? value : null;
  } catch {
    return null;
  }
}
