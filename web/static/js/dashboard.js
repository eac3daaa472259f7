// The therapist's dashboard: today's and upcoming appointments with their live status, the
// form to create or edit one (and, where mail is on, to send the invitation by e-mail),
// copying and re-minting links, cancelling, and joining.
import { request, requireSignedIn, redirectIfSignedOut, ApiError } from "./api.js";
import { SECRET_PARAMETER, forgetLinkSecret, newLinkSecret, storeLinkSecret } from "./e2ee-keys.js";
import { ready, t, translate, formatTime, formatDay, lang } from "./i18n.js";
import { ReconnectingSocket } from "./socket.js";

const $ = (id) => document.getElementById(id);
const listToday = $("list-today");
const listUpcoming = $("list-upcoming");
const template = $("appointment-template");
const dialog = $("appointment-dialog");
const form = $("appointment-form");
const announcer = $("announcer");

// Invite links are shown once by the API; this tab keeps the ones it minted so they can be
// copied again after a reload. sessionStorage ends with the tab.
const LINKS_KEY = "sprechzimmer.links";
const links = new Map(Object.entries(JSON.parse(sessionStorage.getItem(LINKS_KEY) || "{}")));
let appointments = [];
const live = new Map(); // appointment id → {state, client_name} from the WebSocket
let editing = null; // the appointment being edited, or null for a new one
const expandedNotes = new Set(); // ids whose note the therapist opened in full
let arrivalAlert = true; // the therapist's setting (loadSettings)
let audio = null; // one AudioContext for the page, started by the first gesture
const mailed = new Map(); // appointment id → the invitation mail's outcome, for this page's life

await ready;
const me = await requireSignedIn();
$("user-name").textContent = me.username;
$("nav-admin").hidden = !me.is_admin;
// null where the operator has not switched invitations by e-mail on
const invitationMail = me.invitation_mail;

$("btn-logout").addEventListener("click", async () => {
  try {
    await request("POST", "/api/therapist/logout");
  } finally {
    sessionStorage.removeItem(LINKS_KEY);
    location.replace("/login");
  }
});
$("btn-new").addEventListener("click", () => openForm(null));
$("arrival-alert").addEventListener("change", changeArrivalAlert);
$("btn-notifications").addEventListener("click", askNotificationPermission);
// A browser starts an AudioContext only after a gesture on the page: take the first one.
document.addEventListener("pointerdown", unlockSound, { once: true });
document.addEventListener("keydown", unlockSound, { once: true });
$("btn-new").disabled = false;
$("btn-cancel-dialog").addEventListener("click", () => dialog.close());
form.addEventListener("submit", saveForm);

await loadSettings();
await refresh();
watchStatus();
// The list also refreshes on its own: join buttons appear when a room opens, and it heals a
// missed WebSocket update.
setInterval(refresh, 30_000);

async function refresh() {
  try {
    const data = await request("GET", "/api/therapist/appointments");
    appointments = data.appointments;
    render();
    $("dashboard-error").textContent = "";
  } catch (error) {
    if (!redirectIfSignedOut(error)) $("dashboard-error").textContent = t("dashboard.loadError");
  }
}

function render() {
  const now = new Date();
  const endOfToday = new Date(now);
  endOfToday.setHours(23, 59, 59, 999);
  const visible = appointments
    .filter((a) => a.state !== "cancelled" || new Date(a.starts_at) > now)
    .sort((a, b) => a.starts_at.localeCompare(b.starts_at));
  const today = visible.filter((a) => new Date(a.starts_at) <= endOfToday);
  const upcoming = visible.filter((a) => new Date(a.starts_at) > endOfToday);
  fill(listToday, today, $("empty-today"));
  fill(listUpcoming, upcoming, $("empty-upcoming"));
}

function fill(list, items, empty) {
  // Keep focus on the same control across a re-render (the list refreshes every 30 s).
  const focused = document.activeElement;
  const focusKey = focused && list.contains(focused) ? focusKeyOf(focused) : null;
  list.replaceChildren(...items.map(renderItem));
  empty.hidden = items.length > 0;
  if (focusKey) list.querySelector(focusKey)?.focus();
}

function focusKeyOf(element) {
  const item = element.closest("li");
  const action = [...element.classList].find((c) => c !== "button" && c !== "primary" && c !== "danger");
  return item && action ? `li[data-id="${item.dataset.id}"] .${action}` : null;
}

function renderItem(appointment) {
  const item = template.content.firstElementChild.cloneNode(true);
  translate(item);
  const id = String(appointment.id);
  item.dataset.id = id;
  const starts = new Date(appointment.starts_at);
  const now = new Date();
  item.querySelector(".time").textContent = formatTime(starts);
  item.querySelector(".date").textContent =
    formatDay(starts) + " · " + t("dashboard.minutes", { minutes: appointment.duration_minutes });
  const { state, name } = currentState(appointment);
  const badge = item.querySelector(".badge");
  badge.classList.add(state);
  const status = stateText(state, name);
  badge.querySelector(".badge-text").textContent = status;
  badge.title = status; // a long name is cut with an ellipsis; the whole text is here
  item.querySelector(".crisis-tag").hidden = !appointment.crisis_card;
  showNote(item.querySelector(".note"), id, appointment.note);

  const scheduled = appointment.state === "scheduled";
  const active = ["scheduled", "waiting", "in_call"].includes(appointment.state) && state !== "ended";
  const join = item.querySelector(".join");
  join.href = `/call/${id}`;
  // The therapist may enter early to get ready: from the day of the appointment on.
  const sameDay = starts.toDateString() === now.toDateString();
  join.hidden = !(active && (sameDay || new Date(appointment.opens_at) <= now));
  join.setAttribute("aria-label", t("dashboard.joinAt", { time: formatTime(starts) }));

  const remint = item.querySelector(".remint");
  remint.hidden = !scheduled;
  remint.addEventListener("click", () => remintLink(appointment));
  const edit = item.querySelector(".edit");
  edit.hidden = !scheduled;
  edit.addEventListener("click", () => openForm(appointment));
  const cancel = item.querySelector(".cancel");
  cancel.hidden = !scheduled;
  cancel.addEventListener("click", () => cancelAppointment(appointment));

  const link = links.get(id);
  const box = item.querySelector(".link-box");
  const input = box.querySelector(".link");
  input.id = `link-${id}`;
  box.querySelector(".link-label").htmlFor = input.id;
  if (link && appointment.has_invite && active) {
    box.hidden = false;
    input.value = link;
    input.addEventListener("focus", () => input.select());
    box.querySelector(".copy").addEventListener("click", (event) => copyLink(link, event.currentTarget));
    showMailStatus(box.querySelector(".mail-status"), mailed.get(id));
  }
  return item;
}

/**
 * The note, clamped to two lines by the stylesheet so a long one does not make the row tall.
 * The whole text stays in the DOM (screen readers read it all, so it is no button) and in the
 * title; a click, or Enter or Space on it, opens it in full, and it stays open across refreshes.
 */
function showNote(note, id, text) {
  note.textContent = text || "";
  note.hidden = !text;
  note.title = text || "";
  const open = expandedNotes.has(id);
  note.classList.toggle("expanded", open);
  const toggle = () => {
    const nowOpen = !expandedNotes.has(id);
    if (nowOpen) expandedNotes.add(id);
    else expandedNotes.delete(id);
    note.classList.toggle("expanded", nowOpen);
  };
  note.addEventListener("click", toggle);
  note.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      toggle();
    }
  });
}

function currentState(appointment) {
  const update = live.get(String(appointment.id));
  let state = appointment.state === "scheduled" ? "invited" : appointment.state;
  if (update) state = update.state;
  return { state, name: update ? update.client_name : null };
}

function stateText(state, name) {
  if (state === "waiting") return name ? t("status.waitingNamed", { name }) : t("status.waiting");
  if (state === "in_call") return name ? t("status.inCallNamed", { name }) : t("status.in_call");
  return t(`status.${state}`);
}

// --- live status over the WebSocket (docs/protocol.md: watch → status)

function watchStatus() {
  // A dashboard may stay open all day: wait up to 30 s between tries while the server is away.
  const socket = new ReconnectingSocket({ maxDelayMs: 30_000 });
  socket.addEventListener("open", () => socket.send({ type: "watch" }));
  socket.addEventListener("message", (event) => {
    if (event.detail.type === "status") onStatus(event.detail);
  });
  socket.open();
}

function onStatus(message) {
  const id = String(message.appointment);
  const before = live.get(id);
  live.set(id, { state: message.state, client_name: message.client_name || null });
  const appointment = appointments.find((a) => String(a.id) === id);
  if (message.state === "waiting" && (!before || before.state !== "waiting")) arrived(appointment);
  updateTitle();
  if (!appointment) {
    refresh();
    return;
  }
  render();
  if (!before || before.state !== message.state) {
    const time = formatTime(new Date(appointment.starts_at));
    announcer.textContent = `${time}: ${stateText(message.state, message.client_name)}`;
  }
}

// --- the arrival alert: a sound, a desktop notification, and a count in the tab's title, so the
// therapist can work in another tab. Switched per therapist on the server (GET/PUT settings).

async function loadSettings() {
  try {
    arrivalAlert = (await request("GET", "/api/therapist/settings")).arrival_alert;
  } catch (error) {
    if (redirectIfSignedOut(error)) return;
  }
  $("arrival-alert").checked = arrivalAlert;
  $("arrival-alert").disabled = false;
  showNotificationState();
}

async function changeArrivalAlert(event) {
  const on = event.currentTarget.checked;
  unlockSound();
  try {
    arrivalAlert = (await request("PUT", "/api/therapist/settings", { arrival_alert: on })).arrival_alert;
    $("dashboard-error").textContent = "";
  } catch (error) {
    if (redirectIfSignedOut(error)) return;
    $("dashboard-error").textContent = t("dashboard.settingsError");
  }
  $("arrival-alert").checked = arrivalAlert;
  updateTitle();
  showNotificationState();
  // Turning it on is the moment to ask: a click of the therapist's, never on page load.
  if (arrivalAlert) askNotificationPermission();
}

function notificationsAvailable() {
  return "Notification" in window;
}

function showNotificationState() {
  const permission = notificationsAvailable() ? Notification.permission : "denied";
  $("btn-notifications").hidden = !arrivalAlert || permission !== "default";
  $("notifications-blocked").hidden = !arrivalAlert || permission !== "denied";
}

async function askNotificationPermission() {
  if (!notificationsAvailable() || Notification.permission !== "default") return;
  try {
    await Notification.requestPermission();
  } catch {
    // an old Safari takes a callback instead; the button stays for another try
  }
  showNotificationState();
}

function unlockSound() {
  try {
    audio ??= new AudioContext();
    if (audio.state === "suspended") audio.resume().catch(() => {});
  } catch {
    audio = null; // no Web Audio: the notification and the title still tell
  }
}

/** A client entered the waiting room of `appointment` (undefined: not in the list yet). */
function arrived(appointment) {
  if (!arrivalAlert) return;
  chime();
  if (notificationsAvailable() && Notification.permission === "granted") {
    const body = appointment
      ? t("dashboard.arrivalBody", { time: formatTime(new Date(appointment.starts_at)) })
      : "";
    try {
      // No name: a notification may show on a screen others can see.
      const note = new Notification(t("dashboard.arrivalTitle"), { body, tag: "sprechzimmer-arrival" });
      note.addEventListener("click", () => {
        window.focus();
        note.close();
      });
    } catch {
      // some mobile browsers allow notifications only from a service worker
    }
  }
}

/** Two soft tones, made here (no sound file, nothing fetched). */
function chime() {
  unlockSound();
  if (!audio) return;
  const start = audio.currentTime + 0.02;
  for (const [offset, frequency] of [[0, 880], [0.18, 660]]) {
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.3);
    tone.connect(gain).connect(audio.destination);
    tone.start(start + offset);
    tone.stop(start + offset + 0.32);
  }
}

/** "(2) Termine – Sprechzimmer" while two clients wait; the plain title otherwise. */
function updateTitle() {
  const waiting = [...live.values()].filter((entry) => entry.state === "waiting").length;
  const title = t("dashboard.title");
  document.title = arrivalAlert && waiting > 0 ? `(${waiting}) ${title}` : title;
}

// --- actions

async function copyLink(link, button) {
  let copied = false;
  try {
    await navigator.clipboard.writeText(link);
    copied = true;
  } catch {
    const input = button.closest(".link-box").querySelector("input");
    input.select();
    copied = document.execCommand && document.execCommand("copy");
  }
  const text = copied ? t("dashboard.copied") : t("dashboard.copyFailed");
  button.textContent = text;
  announcer.textContent = text;
  setTimeout(() => {
    button.textContent = t("dashboard.copy");
  }, 2500);
}

async function remintLink(appointment) {
  if (appointment.has_invite && !confirm(t("dashboard.remintConfirm"))) return;
  try {
    const updated = await request("POST", `/api/therapist/appointments/${appointment.id}/invite`);
    await rememberLink(updated);
    replace(updated);
    announcer.textContent = t("dashboard.reminted");
    focusCopy(updated.id);
  } catch (error) {
    showActionError(error);
  }
}

async function cancelAppointment(appointment) {
  const when = `${formatDay(new Date(appointment.starts_at))}, ${formatTime(new Date(appointment.starts_at))}`;
  if (!confirm(t("dashboard.cancelConfirm", { when }))) return;
  try {
    const updated = await request("DELETE", `/api/therapist/appointments/${appointment.id}`);
    links.delete(String(updated.id));
    forgetLinkSecret(updated.id);
    saveLinks();
    replace(updated);
    announcer.textContent = t("dashboard.cancelled");
    $("btn-new").focus();
  } catch (error) {
    showActionError(error);
  }
}

function showActionError(error) {
  if (redirectIfSignedOut(error)) return;
  const text = error instanceof ApiError && error.status === 409 ? t("dashboard.conflict") : t("common.unexpectedError");
  $("dashboard-error").textContent = text;
  refresh();
}

function replace(updated) {
  const index = appointments.findIndex((a) => a.id === updated.id);
  if (index >= 0) appointments[index] = updated;
  else appointments.push(updated);
  render();
}

/**
 * Keep a freshly minted link, with a new end-to-end secret in its fragment (`#k=…`): the
 * browser never sends a fragment, so the server never sees it. This browser keeps the secret
 * in IndexedDB for the call page (e2ee-keys.js); a re-minted link gets a new one.
 */
async function rememberLink(appointment) {
  if (appointment.invite_url) {
    const secret = newLinkSecret();
    await storeLinkSecret(appointment.id, secret).catch(() => {});
    links.set(String(appointment.id), `${appointment.invite_url}#${SECRET_PARAMETER}=${secret}`);
    saveLinks();
  }
}

function saveLinks() {
  sessionStorage.setItem(LINKS_KEY, JSON.stringify(Object.fromEntries(links)));
}

function focusCopy(id) {
  document.querySelector(`li[data-id="${id}"] .copy`)?.focus();
}

/** What became of the invitation mail, beside the link: a failure says the link is still here. */
function showMailStatus(element, outcome) {
  element.hidden = !outcome;
  if (!outcome) return;
  element.textContent = mailStatusText(outcome);
  element.classList.toggle("failed", !outcome.sent);
}

function mailStatusText(outcome) {
  if (!outcome.sent) {
    const reasons = {
      unreachable: t("mail.unreachable"),
      timeout: t("mail.timeout"),
      recipient_refused: t("mail.recipientRefused"),
    };
    return t("dashboard.mailFailed", { reason: reasons[outcome.reason] || t("mail.other") });
  }
  if (!outcome.reminder_at) return t("dashboard.mailSent");
  const when = new Date(outcome.reminder_at);
  return t("dashboard.mailSentReminder", { when: `${formatDay(when)}, ${formatTime(when)}` });
}

// --- the form

function openForm(appointment) {
  editing = appointment;
  $("form-error").textContent = "";
  $("dialog-heading").textContent = t(appointment ? "form.editHeading" : "form.newHeading");
  const starts = appointment ? new Date(appointment.starts_at) : nextSlot();
  $("field-date").value = showDate(starts);
  $("field-time").value = `${pad(starts.getHours())}:${pad(starts.getMinutes())}`;
  for (const id of ["field-date", "field-time"]) $(id).removeAttribute("aria-invalid");
  $("field-duration").value = appointment ? appointment.duration_minutes : 50;
  $("field-note").value = appointment ? appointment.note || "" : "";
  $("field-crisis").checked = Boolean(appointment && appointment.crisis_card);
  // The link exists only when the appointment is made, so only a new one can be mailed.
  $("email-field").hidden = !invitationMail || Boolean(appointment);
  $("field-email").value = "";
  $("field-email").removeAttribute("aria-invalid");
  if (invitationMail) $("email-kept").textContent = addressKeptText(invitationMail.reminder_minutes_before);
  dialog.showModal();
  $("field-date").focus();
}

async function saveForm(event) {
  event.preventDefault();
  const error = $("form-error");
  error.textContent = "";
  const dateText = $("field-date").value.trim();
  const timeText = $("field-time").value.trim();
  const duration = Number($("field-duration").value);
  for (const id of ["field-date", "field-time"]) $(id).removeAttribute("aria-invalid");
  if (!dateText || !timeText) {
    error.textContent = t("form.missingDateTime");
    $(dateText ? "field-time" : "field-date").focus();
    return;
  }
  const date = parseDate(dateText);
  const time = parseTime(timeText);
  if (!date || !time) {
    const field = $(date ? "field-time" : "field-date");
    error.textContent = t(date ? "form.badTime" : "form.badDate");
    field.setAttribute("aria-invalid", "true");
    field.focus();
    return;
  }
  if (!Number.isInteger(duration) || duration < 5 || duration > 240) {
    error.textContent = t("form.badDuration");
    $("field-duration").focus();
    return;
  }
  const email = editing ? "" : $("field-email").value.trim();
  $("field-email").removeAttribute("aria-invalid");
  if (email && !$("field-email").checkValidity()) {
    error.textContent = t("form.badEmail");
    $("field-email").setAttribute("aria-invalid", "true");
    $("field-email").focus();
    return;
  }
  const note = $("field-note").value.trim();
  const body = {
    starts_at: withOffset(date, time),
    duration_minutes: duration,
    note: note || null,
    crisis_card: $("field-crisis").checked,
  };
  if (email) body.email = email;
  const button = $("btn-save");
  button.disabled = true;
  try {
    let saved;
    if (editing) {
      saved = await request("PATCH", `/api/therapist/appointments/${editing.id}`, body);
    } else {
      saved = await request("POST", "/api/therapist/appointments", body);
      await rememberLink(saved);
      if (saved.invitation_mail) mailed.set(String(saved.id), saved.invitation_mail);
    }
    dialog.close();
    replace(saved);
    announcer.textContent = saved.invitation_mail
      ? `${t("form.created")} ${mailStatusText(saved.invitation_mail)}`
      : t(editing ? "form.saved" : "form.created");
    if (editing) document.querySelector(`li[data-id="${saved.id}"] .edit`)?.focus();
    else focusCopy(saved.id);
  } catch (failure) {
    if (redirectIfSignedOut(failure)) return;
    const badEmail = failure instanceof ApiError && failure.code === "invalid_request" && /^email/.test(failure.message);
    if (badEmail) $("field-email").setAttribute("aria-invalid", "true");
    error.textContent = badEmail
      ? t("form.badEmail")
      : failure instanceof ApiError && failure.code === "invalid_request"
        ? t("form.invalid")
        : failure instanceof ApiError && failure.status === 409
          ? t("dashboard.conflict")
          : t("common.unexpectedError");
  } finally {
    button.disabled = false;
  }
}

/** "The address is kept until the reminder 1 day before…", or "not stored" without reminders. */
function addressKeptText(minutes) {
  if (!minutes) return t("form.emailNotKept");
  let before;
  if (minutes % 1440 === 0) before = minutes === 1440 ? t("form.beforeDay") : t("form.beforeDays", { n: minutes / 1440 });
  else if (minutes % 60 === 0) before = minutes === 60 ? t("form.beforeHour") : t("form.beforeHours", { n: minutes / 60 });
  else before = t("form.beforeMinutes", { n: minutes });
  return t("form.emailKept", { before });
}

/** The next half hour that is at least 15 minutes away, in local time. */
function nextSlot() {
  const slot = new Date(Date.now() + 15 * 60_000);
  slot.setSeconds(0, 0);
  slot.setMinutes(slot.getMinutes() <= 30 ? 30 : 60);
  return slot;
}

/** "2026-03-02" + "09:00" in the browser's zone → "2026-03-02T09:00:00+01:00". */
export function withOffset(date, time) {
  const local = new Date(`${date}T${time}:00`);
  const minutes = -local.getTimezoneOffset();
  const sign = minutes >= 0 ? "+" : "-";
  const abs = Math.abs(minutes);
  return `${date}T${time}:00${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/** A date as the page's language writes it: 24.03.2027 (German), 24/03/2027 (English). */
function showDate(date) {
  const separator = lang === "de" ? "." : "/";
  return [pad(date.getDate()), pad(date.getMonth() + 1), date.getFullYear()].join(separator);
}

/**
 * "24.03.2027", "24/03/2027", "24-03-2027" (day first, as in German and British English; a
 * one-digit day or month is fine) or ISO "2027-03-24" → "2027-03-24"; null if it is no real
 * date (31.02. is refused, not moved to March).
 */
export function parseDate(text) {
  let match = /^(\d{1,2})[./-](\d{1,2})[./-](\d{4})$/.exec(text);
  let [day, month, year] = match ? [match[1], match[2], match[3]].map(Number) : [];
  if (!match) {
    match = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(text);
    if (!match) return null;
    [year, month, day] = [match[1], match[2], match[3]].map(Number);
  }
  const check = new Date(year, month - 1, day);
  if (check.getFullYear() !== year || check.getMonth() !== month - 1 || check.getDate() !== day) return null;
  return `${year}-${pad(month)}-${pad(day)}`;
}

/** "15:30", "9:05", "15.30" or "1530", 24-hour → "15:30"; null otherwise. */
export function parseTime(text) {
  const match = /^(\d{1,2})[:.]?(\d{2})$/.exec(text);
  if (!match) return null;
  const [hours, minutes] = [Number(match[1]), Number(match[2])];
  if (hours > 23 || minutes > 59) return null;
  return `${pad(hours)}:${pad(minutes)}`;
}

function pad(value) {
  return String(value).padStart(2, "0");
}
