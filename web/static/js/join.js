// The client's page /j/{token}: waiting room (consent, devices, connection check), then the call.
import { CallSession } from "./call.js";
import { showCall } from "./callview.js";
import { secretFromFragment } from "./e2ee-keys.js";
import { showEndScreen } from "./endscreen.js";
import { ready, t, formatDay, formatTime } from "./i18n.js";
import { icon } from "./icons.js";
import {
  browserSupported, fillDeviceSelects, getMedia, mediaErrorKind, playTestTone,
  setSpeaker, speakerSelectable, startLevelMeter,
} from "./media.js";
import { e2eeSupported } from "./e2ee-media.js";
import { ERROR } from "./protocol.js";
import { forgetSessionStart } from "./sessionclock.js";
import { openSocket } from "./socket.js";

const $ = (id) => document.getElementById(id);
const SECTIONS = ["prepare", "resume", "unsupported", "denied", "invalid", "ended"];
// What the server accepts as a phone number on the crisis card (signaling/routes_client.py).
const PHONE = /^\+?[0-9 ()/.-]+$/;
const token = decodeURIComponent(location.pathname.split("/")[2] || "");
// The end-to-end secret in the link's fragment (#k=…), which the browser never sends.
const linkSecret = secretFromFragment(location.hash);
const apiPath = `/api/client/${encodeURIComponent(token)}`;
const selects = { camera: $("select-camera"), microphone: $("select-microphone"), speaker: $("select-speaker") };

let info = null; // GET /api/client/{token}
let stream = null;
let stopMeter = () => {};
let openTimer = 0;
let session = null; // the CallSession once joined
let exiting = false;

// Quick exit: wired before anything else (even before the texts load), so it works at once.
// Escape pressed twice within this long also leaves; one Escape alone stays what it is
// everywhere (closing a menu or a select), so a single stray press never ends a session.
const DOUBLE_ESCAPE_MS = 1500;
let lastEscape = -Infinity;
$("btn-quick-exit").addEventListener("click", quickExit);
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.repeat) return;
  const now = performance.now();
  if (now - lastEscape <= DOUBLE_ESCAPE_MS) quickExit();
  lastEscape = now;
});

await ready;
main();

async function main() {
  if (!browserSupported()) return show("unsupported");
  try {
    info = await loadInfo();
  } catch {
    $("join-error").textContent = t("common.networkError");
    return;
  }
  if (!info) return show("invalid");
  // The server requires end-to-end encryption and this browser cannot encrypt frames: say so
  // and which browsers can, before consent and camera, rather than a call that never starts.
  if (info.e2ee === "required" && !e2eeSupported) {
    $("unsupported-e2ee").hidden = false;
    return show("unsupported");
  }
  describeAppointment();
  $("crisis-fields").hidden = !info.crisis_card;
  if (info.bound) {
    $("accept-terms").checked = true;
    $("consent-processing").checked = true;
    $("display-name").value = info.display_name || "";
  }
  $("btn-devices-on").addEventListener("click", startDevices);
  $("btn-retry-devices").addEventListener("click", () => {
    show("prepare");
    startDevices();
  });
  selects.camera.addEventListener("change", restartDevices);
  selects.microphone.addEventListener("change", restartDevices);
  selects.speaker.addEventListener("change", () => setSpeaker($("preview"), selects.speaker.value).catch(() => {}));
  $("btn-test-sound").addEventListener("click", () => playTestTone(selects.speaker.value).catch(() => {}));
  $("btn-check").addEventListener("click", checkConnection);
  $("join-form").addEventListener("submit", join);
  // Disabled in the HTML until these listeners exist.
  for (const id of ["btn-devices-on", "btn-check", "btn-join"]) $(id).disabled = false;
  $("btn-resume").addEventListener("click", startCall);
  $("btn-resume-setup").addEventListener("click", () => {
    show("prepare");
    startDevices();
  });
  if (info.bound && info.resume && info.state === "open") resume();
}

/**
 * A reload, or the link opened again after the tab closed: this browser consented already, so
 * no long waiting room, only the camera preview and one button. Not straight into the call:
 * after a reload the page has no user gesture, so browsers would keep the therapist's voice
 * muted (Safari always, Chrome often), and the client sees the camera is on before going back.
 */
async function resume() {
  $("resume-text").textContent = info.display_name
    ? t("join.resumeNamed", { name: info.display_name })
    : t("join.resumeText");
  show("resume");
  $("btn-resume").disabled = true;
  try {
    stream = await getMedia({});
  } catch (failure) {
    // devices need attention: the full page, where they can be chosen and checked
    show("prepare");
    $("device-error").textContent = t(`media.${mediaErrorKind(failure)}`);
    return;
  }
  const preview = $("resume-preview");
  preview.srcObject = stream;
  preview.play().catch(() => {});
  $("btn-resume").disabled = false;
  $("btn-resume").focus();
}

async function loadInfo() {
  const response = await fetch(apiPath, { credentials: "same-origin", cache: "no-store" });
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(String(response.status));
  return response.json();
}

function show(section) {
  for (const id of SECTIONS) $(id).hidden = id !== section;
  if (section !== "prepare") $(section).querySelector("h1")?.focus?.();
}

function describeAppointment() {
  const starts = new Date(info.starts_at);
  $("appointment-when").textContent = t("join.when", { day: formatDay(starts), time: formatTime(starts) });
  const notYet = $("not-yet-open");
  clearTimeout(openTimer);
  if (info.state === "not_yet_open") {
    const opens = new Date(info.opens_at);
    notYet.hidden = false;
    notYet.textContent = t("join.notYetOpen", { time: formatTime(opens) });
    // Refresh when the room opens (setTimeout caps at ~24 days; rooms open within a year).
    const wait = Math.min(opens - Date.now() + 500, 2 ** 31 - 1);
    openTimer = setTimeout(async () => {
      info = (await loadInfo().catch(() => info)) || info;
      describeAppointment();
    }, Math.max(wait, 1000));
  } else {
    notYet.hidden = true;
  }
}

// --- camera and microphone

async function startDevices() {
  const error = $("device-error");
  error.textContent = "";
  const button = $("btn-devices-on");
  button.disabled = true;
  try {
    await openDevices({});
    $("device-controls").hidden = false;
    button.hidden = true;
    await fillDeviceSelects(selects, stream, deviceLabels());
    selects.camera.focus();
  } catch (failure) {
    const kind = mediaErrorKind(failure);
    if (kind === "denied") show("denied");
    else error.textContent = t(`media.${kind}`);
  } finally {
    button.disabled = false;
  }
}

async function restartDevices() {
  try {
    await openDevices({ camera: selects.camera.value, microphone: selects.microphone.value });
  } catch (failure) {
    $("device-error").textContent = t(`media.${mediaErrorKind(failure)}`);
  }
}

async function openDevices(choice) {
  const next = await getMedia(choice);
  stopMeter();
  if (stream) for (const track of stream.getTracks()) track.stop();
  stream = next;
  const preview = $("preview");
  preview.srcObject = stream;
  preview.play().catch(() => {});
  $("preview-placeholder").hidden = true;
  const audio = stream.getAudioTracks()[0];
  if (audio) stopMeter = startLevelMeter(audio, $("meter-fill"), $("meter"));
}

function deviceLabels() {
  return { camera: t("devices.camera"), microphone: t("devices.microphone"), speaker: t("devices.speaker") };
}

// --- connection check: the signaling server, then the browser's WebRTC stack

async function checkConnection() {
  const list = $("check-results");
  const button = $("btn-check");
  button.disabled = true;
  list.replaceChildren(result("pending", t("check.running")));
  const socketOk = await socketReachable();
  const webrtcOk = await webrtcWorks();
  list.replaceChildren(
    result(socketOk ? "ok" : "bad", t(socketOk ? "check.serverOk" : "check.serverBad")),
    result(webrtcOk ? "ok" : "bad", t(webrtcOk ? "check.webrtcOk" : "check.webrtcBad")),
    result(socketOk && webrtcOk ? "ok" : "bad", t(socketOk && webrtcOk ? "check.summaryOk" : "check.summaryBad")),
  );
  button.disabled = false;
}

function result(kind, text) {
  const item = document.createElement("li");
  item.className = `status-${kind}`;
  if (kind !== "pending") item.append(icon(kind === "ok" ? "check" : "cross"), " ");
  item.append(text);
  return item;
}

function socketReachable() {
  return new Promise((resolve) => {
    let socket;
    try {
      socket = openSocket();
    } catch {
      resolve(false);
      return;
    }
    const timer = setTimeout(() => done(false), 5000);
    const done = (ok) => {
      clearTimeout(timer);
      socket.onopen = socket.onerror = null;
      if (socket.readyState <= WebSocket.OPEN) socket.close(1000);
      resolve(ok);
    };
    socket.onopen = () => done(true);
    socket.onerror = () => done(false);
  });
}

async function webrtcWorks() {
  let pc;
  try {
    pc = new RTCPeerConnection();
    pc.addTransceiver("audio");
    const gathered = new Promise((resolve) => {
      pc.onicecandidate = (event) => {
        if (event.candidate && event.candidate.candidate) resolve(true);
      };
      setTimeout(() => resolve(false), 4000);
    });
    await pc.setLocalDescription(await pc.createOffer());
    return await gathered;
  } catch {
    return false;
  } finally {
    pc?.close();
  }
}

// --- joining

async function join(event) {
  event.preventDefault();
  const error = $("join-error");
  error.textContent = "";
  if (!$("accept-terms").checked || !$("consent-processing").checked) {
    error.textContent = t("join.needConsent");
    ($("accept-terms").checked ? $("consent-processing") : $("accept-terms")).focus();
    return;
  }
  if (info.state === "not_yet_open") {
    error.textContent = t("join.notYetOpen", { time: formatTime(new Date(info.opens_at)) });
    return;
  }
  const card = crisisCard();
  if (card === null) return;
  if (!stream) {
    await startDevices();
    if (!stream) return;
  }
  const button = $("btn-join");
  button.disabled = true;
  try {
    const name = $("display-name").value.trim();
    const response = await fetch(`${apiPath}/consent`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({
        terms_version: info.terms_version,
        accept_terms: true,
        consent_processing: true,
        ...(name ? { display_name: name } : {}),
        ...card,
      }),
    });
    if (response.status === 404) return show("invalid");
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      if (body.error && body.error.code === "terms_changed") {
        info = (await loadInfo()) || info;
        $("accept-terms").checked = false;
        error.textContent = t("join.termsChanged");
        $("accept-terms").focus();
      } else {
        error.textContent = t("common.unexpectedError");
      }
      return;
    }
  } catch {
    error.textContent = t("common.networkError");
    return;
  } finally {
    button.disabled = false;
  }
  startCall();
}

/** The crisis card's fields for the consent ({} when not asked for); null, with the error shown,
 * when they are missing or the number is none. */
function crisisCard() {
  if (!info.crisis_card) return {};
  const location = $("crisis-location").value.trim();
  const phone = $("crisis-phone").value.trim();
  const error = $("join-error");
  if (!location || !phone) {
    error.textContent = t("join.crisisMissing");
    $(location ? "crisis-phone" : "crisis-location").focus();
    return null;
  }
  if (!PHONE.test(phone) || phone.replace(/\D/g, "").length < 3) {
    error.textContent = t("join.crisisBadPhone");
    $("crisis-phone").focus();
    return null;
  }
  return { crisis_location: location, crisis_phone: phone };
}

function startCall() {
  stopMeter();
  $("resume").hidden = true;
  session = new CallSession({ invite: token }, stream, { role: "client", linkSecret });
  // For browser tests and support: the live session (its peer connection) of this page.
  window.sprechzimmerCall = session;
  $("prepare").hidden = true;
  document.querySelector("footer").hidden = true;
  showCall({
    session,
    stream,
    role: "client",
    speakerId: speakerSelectable ? selects.speaker.value : null,
    onFinished: finished,
    clock: { appointmentKey: `client-${info.starts_at}`, plannedEnd: info.ends_at ? new Date(info.ends_at) : null },
  });
  session.start();
}

function finished(kind, detail) {
  stream = null;
  document.querySelector("footer").hidden = false;
  if (kind === "fatal" && [ERROR.USED, ERROR.UNAUTHORIZED].includes(detail.code)) return show("invalid");
  show("ended");
  showEndScreen("client", kind, detail);
}

/**
 * Quick exit, for a client who is suddenly not alone: leave the session (a `leave` message, then
 * the socket and the peer connection close), stop camera and microphone, empty the page, and
 * replace it with about:blank.
 *
 * Why about:blank and not a page of ours: our address names the practice's video service
 * (often its domain), so any page of ours in the address bar gives away what was open; a
 * third-party "neutral" site would send a request elsewhere and is not ours to rely on.
 * about:blank needs no network and looks like a new tab. location.replace() drops this page's
 * history entry, so Back leads to what was open before the link, not into the waiting room.
 */
function quickExit() {
  if (exiting) return;
  exiting = true;
  const tracks = [...(stream ? stream.getTracks() : []), ...(session ? session.stream.getTracks() : [])];
  try {
    if (session) session.leave();
  } catch {
    // leaving must not stop the exit; the server sees the socket close instead
  }
  stopMeter();
  for (const track of tracks) track.stop();
  for (const video of document.querySelectorAll("video")) video.srcObject = null;
  forgetSessionStart();
  clearTimeout(openTimer);
  // Nothing readable stays on screen, even for the moment the navigation takes.
  document.title = "";
  document.body.replaceChildren();
  location.replace("about:blank");
}
