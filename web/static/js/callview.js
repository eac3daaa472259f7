// The call screen shared by therapist and client: remote and self video, mute, camera, device
// switching, hang up, the peer's state and name, the connection-quality indicator, and the
// "reconnecting" banner. Status changes are announced through an aria-live region.
import { t, locale } from "./i18n.js";
import { icon } from "./icons.js";
import { AudioOnlyPolicy, judge, linkSample } from "./link-quality.js";
import {
  cameraSwitchUseful, fillDeviceSelects, getFacingTrack, getTrack, screenShareSupported, setSpeaker, speakerSelectable,
} from "./media.js";
import { CHAT_MAX_CHARS, ERROR, GONE_LEFT, GONE_LOST } from "./protocol.js";
import { SessionClock, forgetSessionStart } from "./sessionclock.js";

const $ = (id) => document.getElementById(id);
const STATS_INTERVAL_MS = 2000;

/**
 * Show the call for `session` (a started or about-to-start CallSession).
 * `role` is "therapist" or "client"; `onFinished(kind, detail)` is called once with
 * "ended" | "left" | "fatal" after the call screen has been hidden. `clock` is
 * {appointmentKey, plannedEnd: Date | null} for the session clock.
 */
export function showCall({ session, stream, role, onFinished, speakerId, clock }) {
  const remote = $("remote-video");
  const self = $("self-video");
  const placeholder = $("remote-placeholder");
  const status = $("remote-status");
  const sub = $("remote-sub");
  const banner = $("banner");
  const announcer = $("call-announcer");
  const peerName = $("peer-name");
  const micButton = $("btn-mic");
  const camButton = $("btn-cam");
  const devicesButton = $("btn-devices");
  const panel = $("device-panel");
  const selects = { camera: $("call-camera"), microphone: $("call-microphone"), speaker: $("call-speaker") };
  const screenVideo = $("screen-video");
  const screenButton = $("btn-screen");
  let viewerHidden = false; // we asked the sharer to stop: no large view until it shares anew

  let peer = { state: "absent", name: null, reason: null };
  let recovering = false; // between "reconnecting" and "connected": say so when it is back
  let finished = false;

  document.body.classList.add("in-call");
  $("call").hidden = false;
  $("btn-end").hidden = role !== "therapist";
  self.srcObject = stream;
  $("chat-input").maxLength = CHAT_MAX_CHARS;
  if (speakerId) setSpeaker(remote, speakerId).catch(() => {});

  const announce = (text) => {
    announcer.textContent = text;
  };
  const sessionClock = new SessionClock($("session-clock"), { ...clock, announce });
  updatePlaceholder();
  micButton.focus();

  // --- session events

  session.addEventListener("track", (event) => {
    remote.srcObject = event.detail;
    play();
  });
  // The server keeps when both were first in the room, so every device and a reload agree.
  const serverStart = (iso) => {
    const at = Date.parse(iso || "");
    if (!Number.isNaN(at)) sessionClock.startAt(at);
  };
  session.addEventListener("joined", (event) => serverStart(event.detail.session_started_at));
  session.addEventListener("peer", (event) => {
    const before = peer.state;
    serverStart(event.detail.session_started_at);
    peer = { state: event.detail.state, name: event.detail.name ?? peer.name, reason: event.detail.reason ?? null };
    if (role === "therapist") peerName.textContent = peer.name || "";
    updatePlaceholder();
    if (before !== peer.state) announce(peerAnnouncement());
  });
  session.addEventListener("phase", (event) => {
    const { to } = event.detail;
    if (to === "reconnecting") {
      if (!recovering) announce(t("call.reconnecting"));
      recovering = true;
      banner.textContent = t("call.reconnecting");
    } else if (to === "connected") {
      if (recovering) announce(t("call.reconnected"));
      recovering = false;
      banner.textContent = session.e2eeState.state === "warning" ? t("e2ee.warning") : "";
    }
    updatePlaceholder();
  });
  session.addEventListener("screen-track", (event) => {
    screenVideo.srcObject = event.detail;
    screenVideo.play().catch(() => {});
  });
  session.addEventListener("screen", (event) => showScreen(event.detail));
  session.addEventListener("audio-only", (event) => showAudioOnly(event.detail));
  session.addEventListener("e2ee", (event) => showEncryption(event.detail));
  session.addEventListener("chat", (event) => showChat(event.detail));
  session.addEventListener("error", (event) => {
    if (event.detail.code === ERROR.RELAY_UNAVAILABLE) banner.textContent = t("call.relayUnavailable");
    if (event.detail.code === ERROR.STORAGE_UNAVAILABLE) banner.textContent = t("call.storageUnavailable");
  });
  for (const kind of ["ended", "left", "fatal"]) {
    session.addEventListener(kind, (event) => finish(kind, event.detail));
  }

  // --- controls

  micButton.addEventListener("click", () => {
    const track = stream.getAudioTracks()[0];
    if (!track) return;
    track.enabled = !track.enabled;
    micButton.setAttribute("aria-pressed", String(!track.enabled));
    micButton.textContent = t(track.enabled ? "call.micOff" : "call.micOn");
    announce(t(track.enabled ? "call.micIsOn" : "call.micIsOff"));
  });
  camButton.addEventListener("click", () => {
    const track = stream.getVideoTracks()[0];
    if (!track) return;
    track.enabled = !track.enabled;
    camButton.setAttribute("aria-pressed", String(!track.enabled));
    camButton.textContent = t(track.enabled ? "call.camOff" : "call.camOn");
    self.classList.toggle("off", !track.enabled);
    announce(t(track.enabled ? "call.camIsOn" : "call.camIsOff"));
  });
  // --- phones: front/back camera, the on-screen keyboard, a locked screen

  const flipButton = $("btn-flip");
  cameraSwitchUseful().then((useful) => {
    flipButton.hidden = !useful;
  });
  flipButton.addEventListener("click", flipCamera);
  const viewport = window.visualViewport;
  viewport?.addEventListener("resize", fitVisualViewport);
  viewport?.addEventListener("scroll", fitVisualViewport);
  document.addEventListener("visibilitychange", onVisibility);

  devicesButton.addEventListener("click", async () => {
    const open = panel.hidden;
    panel.hidden = !open;
    devicesButton.setAttribute("aria-expanded", String(open));
    if (open) {
      await fillDeviceSelects(selects, stream, deviceLabels()).catch(() => {});
      if (speakerSelectable && remote.sinkId) selects.speaker.value = remote.sinkId;
      selects.camera.focus();
    }
  });
  selects.camera.addEventListener("change", () => switchDevice("video", selects.camera.value));
  selects.microphone.addEventListener("change", () => switchDevice("audio", selects.microphone.value));
  selects.speaker.addEventListener("change", () => setSpeaker(remote, selects.speaker.value).catch(() => {}));
  screenButton.hidden = !screenShareSupported;
  screenButton.addEventListener("click", async () => {
    if (session.screenTrack) {
      await session.stopScreenShare();
      return;
    }
    try {
      await session.startScreenShare();
    } catch {
      announce(t("screen.failed")); // refused in the browser's picker, or none to share
    }
  });
  $("btn-screen-stop").addEventListener("click", async () => {
    if (session.screenTrack) await session.stopScreenShare();
    else if (session.peerControl.screen) {
      // the viewer's "stop": the sharer's page stops it, and both return to the camera
      session.askToStopScreen();
      viewerHidden = true;
      showScreen({ mine: false, peer: true });
    }
  });
  $("btn-audio-only").addEventListener("click", () => {
    linkWatch.policy.switchToAudio();
    session.setAudioOnly(true);
  });
  $("btn-video-back").addEventListener("click", () => {
    linkWatch.policy.reset();
    session.setAudioOnly(false);
  });
  $("btn-leave").addEventListener("click", () => session.leave());
  $("btn-end").addEventListener("click", () => {
    if (confirm(t("call.endConfirm"))) session.end();
  });
  $("btn-play").addEventListener("click", () => play());
  $("btn-e2ee-confirm").addEventListener("click", () => {
    session.confirmSafetyCode();
    announce(t("e2ee.confirmed"));
  });
  $("btn-chat").addEventListener("click", () => {
    const panel = $("chat-panel");
    panel.hidden = !panel.hidden;
    $("btn-chat").setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) $("chat-input").focus();
  });
  $("chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("chat-input");
    const text = input.value.trim();
    if (!text) return;
    if (await session.sendChat(text)) input.value = "";
    else announce(t("chat.notSent"));
  });

  // --- screen sharing: the other's screen large, their camera as a small tile

  function showScreen({ mine, peer: peerShares }) {
    if (!peerShares) viewerHidden = false;
    const large = peerShares && !viewerHidden;
    const call = $("call");
    const before = call.dataset.sharing || "";
    call.dataset.sharing = large ? "peer" : mine ? "me" : "";
    screenVideo.hidden = !large;
    if (large) screenVideo.play().catch(() => {});
    screenButton.setAttribute("aria-pressed", String(mine));
    screenButton.textContent = t(mine ? "screen.stopMine" : "screen.share");
    $("screen-bar").hidden = !(large || mine);
    $("screen-text").textContent = mine ? t("screen.mineShown") : large ? t("screen.peerShown") : "";
    if (before !== call.dataset.sharing) {
      announce(t(call.dataset.sharing === "peer" ? "screen.peerStarted" : call.dataset.sharing === "me" ? "screen.mineStarted" : "screen.ended"));
    }
  }

  // --- weak connection: offered, then switched to audio only; both pages say so

  function showLinkMode(mode) {
    if (mode === "audio-only" && !session.audioOnly) session.setAudioOnly(true);
    else if (mode === "video" && session.audioOnly) session.setAudioOnly(false);
    else showAudioOnly({ mine: session.audioOnly, peer: session.peerControl.audioOnly, offer: mode === "offer" });
  }

  function showAudioOnly({ mine, peer: peerWeak, offer = false }) {
    const call = $("call");
    const audioOnly = mine || peerWeak;
    const before = call.dataset.audioOnly === "true";
    call.dataset.audioOnly = String(audioOnly);
    const notice = $("link-notice");
    notice.hidden = !audioOnly && !offer;
    $("link-notice-text").textContent = audioOnly ? t("link.audioOnly") : offer ? t("link.offer") : "";
    $("btn-audio-only").hidden = audioOnly || !offer;
    $("btn-video-back").hidden = !mine;
    if (audioOnly !== before) announce(t(audioOnly ? "link.audioOnly" : "link.videoBackAnnounce"));
  }

  // --- end-to-end encryption: a lock, the state, and the safety code to compare aloud

  function showEncryption({ state, safetyCode }) {
    const box = $("e2ee");
    box.dataset.state = state;
    $("e2ee-text").textContent = t(`e2ee.${state}`);
    const symbol = state === "encrypted" || state === "verified" ? "lock" : state === "warning" ? "warning" : "";
    const lock = box.querySelector(".lock");
    lock.dataset.icon = symbol;
    lock.replaceChildren(...(symbol ? [icon(symbol)] : []));
    const showCode = Boolean(safetyCode) && (state === "encrypted" || state === "verified");
    $("e2ee-code-line").hidden = !showCode;
    $("e2ee-code").textContent = showCode ? safetyCode : "";
    $("btn-e2ee-confirm").hidden = state !== "encrypted";
    if (state === "warning") banner.textContent = t("e2ee.warning");
  }

  // Chat messages live in the page only, as text; they are gone with it.
  function showChat({ from, text }) {
    const item = document.createElement("li");
    item.className = from;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = `${t(from === "me" ? "chat.me" : "chat.peer")}: `;
    const body = document.createElement("span");
    body.textContent = text;
    item.append(who, body);
    $("chat-log").append(item);
    if (from === "peer" && $("chat-panel").hidden) {
      $("chat-panel").hidden = false;
      $("btn-chat").setAttribute("aria-expanded", "true");
    }
  }

  async function switchDevice(kind, deviceId) {
    try {
      const track = await getTrack(kind, deviceId);
      await session.replaceTrack(track);
      if (kind === "video") {
        self.srcObject = null;
        self.srcObject = stream;
      }
      announce(t("call.deviceSwitched"));
    } catch {
      announce(t("call.deviceFailed"));
      banner.textContent = t("call.deviceFailed");
      setTimeout(() => {
        if (banner.textContent === t("call.deviceFailed")) banner.textContent = "";
      }, 4000);
    }
  }

  /**
   * Turn between the front and the back camera: a new track swapped into the sender
   * (replaceTrack, no renegotiation, so the relay's leg and the E2EE keys stay as they are).
   * The old camera stops first: many phones cannot open both at once.
   */
  async function flipCamera() {
    const from = flipButton.dataset.facing === "environment" ? "environment" : "user";
    const to = from === "user" ? "environment" : "user";
    flipButton.disabled = true;
    for (const track of stream.getVideoTracks()) track.stop();
    try {
      await useFacing(to);
      announce(t("call.deviceSwitched"));
    } catch {
      // back to the camera we had, so the call does not lose its picture
      await useFacing(from).catch(() => {});
      announce(t("call.deviceFailed"));
    } finally {
      flipButton.disabled = false;
    }
  }

  async function useFacing(facing) {
    const track = await getFacingTrack(facing);
    await session.replaceTrack(track);
    flipButton.dataset.facing = facing;
    // The back camera's picture is not mirrored: what it films (a worksheet) reads right.
    self.classList.toggle("environment", facing === "environment");
    self.srcObject = null;
    self.srcObject = stream;
  }

  /**
   * The on-screen keyboard: Safari and Chrome on Android shrink only the visual viewport, so a
   * full-height call would keep the chat input under the keyboard. The call follows the visual
   * viewport's height and offset instead, and the focused input stays in sight.
   */
  function fitVisualViewport() {
    if (finished || !viewport) return;
    const call = $("call");
    const shrunk = viewport.height < window.innerHeight - 1 || viewport.offsetTop > 0;
    call.style.height = shrunk ? `${viewport.height}px` : "";
    call.style.top = shrunk ? `${viewport.offsetTop}px` : "";
    call.style.bottom = shrunk ? "auto" : "";
    call.classList.toggle("keyboard-open", shrunk);
    const focused = document.activeElement;
    if (focused && call.contains(focused) && focused.matches("input, textarea")) {
      focused.scrollIntoView({ block: "nearest" });
    }
  }

  /**
   * Back from a locked screen or another tab: the browser may have paused the remote video
   * (iOS does), and the connection may have died meanwhile. Play again, and let the session
   * check its media at once rather than at its next stall check.
   */
  function onVisibility() {
    if (finished || document.visibilityState !== "visible") return;
    if (remote.srcObject && remote.paused) play();
    if (self.srcObject && self.paused) self.play().catch(() => {});
    Promise.resolve(session.checkStall?.()).catch(() => {});
  }

  // iOS and some desktop browsers refuse to start audible playback without a gesture.
  function play() {
    remote.play().then(
      () => {
        $("btn-play").hidden = true;
      },
      () => {
        $("btn-play").hidden = false;
      },
    );
  }

  // --- what the remote area says

  /**
   * The one thing the call screen shows, from the session's phase and the peer's presence:
   * waiting | connecting | in-call | reconnecting | peer-gone | ended.
   */
  function screenState() {
    if (session.done) return "ended";
    if (session.phase === "reconnecting") return "reconnecting";
    if (peer.state === "gone") return "peer-gone";
    if (peer.state === "absent") return "waiting";
    if (session.phase === "connected" && peer.state === "connected") return "in-call";
    return "connecting";
  }

  function updatePlaceholder() {
    const screen = screenState();
    $("call").dataset.screen = screen;
    if (screen === "in-call") sessionClock.begin();
    // The video element stays rendered (it carries the sound); the placeholder covers it.
    placeholder.hidden = screen === "in-call";
    if (screen === "in-call") return;
    const [main, detail] = placeholderText(screen);
    status.textContent = main;
    sub.textContent = detail;
  }

  function placeholderText(screen) {
    if (screen === "reconnecting") return [t("call.reconnecting"), ""];
    if (role === "client") {
      if (screen === "peer-gone") return [t(goneKey("client.peer")), t("client.keepOpen")];
      if (screen === "waiting") return [t("client.waiting"), t(session.phase === "connected" ? "client.connectionOk" : "client.keepOpen")];
      return [t("client.peerHere"), ""];
    }
    const name = peer.name || t("therapist.clientGeneric");
    if (screen === "waiting") return [t("therapist.clientAbsent"), t("therapist.clientAbsentHint")];
    if (screen === "peer-gone") return [t(goneKey("therapist.client"), { name }), t("therapist.clientGoneHint")];
    return [t("therapist.clientPresent", { name }), ""];
  }

  /** "…Left" (it said leave), "…Lost" (its connection dropped), or "…Gone" (not told). */
  function goneKey(prefix) {
    if (peer.reason === GONE_LEFT) return `${prefix}Left`;
    if (peer.reason === GONE_LOST) return `${prefix}Lost`;
    return `${prefix}Gone`;
  }

  function peerAnnouncement() {
    const [main] = placeholderText(screenState());
    if (peer.state === "connected") {
      return role === "client" ? t("client.peerConnected") : t("therapist.clientConnected", { name: peer.name || t("therapist.clientGeneric") });
    }
    return main;
  }

  // --- quality indicator

  const quality = new QualityMeter(session, $("quality"), $("quality-text"), $("quality-details"), (level) => {
    if (level === "poor") announce(t("quality.poorAnnounce"));
  });
  const linkWatch = new LinkWatch(session, showLinkMode);

  function finish(kind, detail) {
    if (finished) return;
    finished = true;
    quality.stop();
    linkWatch.stop();
    sessionClock.stop();
    screenVideo.srcObject = null;
    if (kind === "ended") forgetSessionStart();
    remote.srcObject = null;
    self.srcObject = null;
    $("chat-log").replaceChildren();
    for (const track of stream.getTracks()) track.stop();
    document.body.classList.remove("in-call");
    viewport?.removeEventListener("resize", fitVisualViewport);
    viewport?.removeEventListener("scroll", fitVisualViewport);
    document.removeEventListener("visibilitychange", onVisibility);
    $("call").dataset.screen = "ended";
    $("call").hidden = true;
    onFinished(kind, detail || {});
  }

  function deviceLabels() {
    return { camera: t("devices.camera"), microphone: t("devices.microphone"), speaker: t("devices.speaker") };
  }
}

/** Samples getStats() every two seconds for link-quality.js while both are in the call. */
class LinkWatch {
  constructor(session, onMode) {
    this.session = session;
    this.onMode = onMode;
    this.policy = new AudioOnlyPolicy();
    this.before = null;
    this.timer = setInterval(() => this.sample().catch(() => {}), STATS_INTERVAL_MS);
  }

  stop() {
    clearInterval(this.timer);
  }

  async sample() {
    const session = this.session;
    const pc = session.pc;
    if (!pc || session.phase !== "connected" || session.peerState !== "connected") {
      this.before = null;
      return;
    }
    const report = await session.getStats();
    if (!report || pc !== session.pc) return;
    const sample = linkSample(report, this.before && this.before.pc === pc ? this.before : null);
    const first = !this.before || this.before.pc !== pc;
    sample.pc = pc;
    this.before = sample;
    if (first) return; // deltas need two samples
    const mode = this.policy.update(judge(sample, { audioOnly: session.audioOnly }));
    this.onMode(mode);
  }
}

/** Round-trip time, loss and bitrate from getStats(), every two seconds. */
class QualityMeter {
  constructor(session, box, text, details, onChange) {
    this.session = session;
    this.box = box;
    this.text = text;
    this.details = details;
    this.onChange = onChange;
    this.previous = null;
    this.level = null;
    this.number = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });
    this.timer = setInterval(() => this.sample().catch(() => {}), STATS_INTERVAL_MS);
  }

  stop() {
    clearInterval(this.timer);
  }

  async sample() {
    const report = await this.session.getStats();
    if (!report) {
      this.previous = null;
      return;
    }
    const now = readStats(report);
    now.pc = this.session.pc;
    const before = this.previous && this.previous.pc === now.pc ? this.previous : null;
    this.previous = now;
    if (!before || now.time <= before.time) return;
    const seconds = (now.time - before.time) / 1000;
    const received = now.received - before.received;
    const lost = Math.max(0, now.lost - before.lost);
    const loss = received + lost > 0 ? lost / (received + lost) : 0;
    const down = ((now.bytesIn - before.bytesIn) * 8) / seconds;
    const up = ((now.bytesOut - before.bytesOut) * 8) / seconds;
    const rtt = now.rtt;
    let level = "good";
    if (loss > 0.08 || (rtt !== null && rtt > 0.6)) level = "poor";
    else if (loss > 0.02 || (rtt !== null && rtt > 0.3)) level = "fair";
    this.box.classList.remove("good", "fair", "poor");
    this.box.classList.add(level);
    this.text.textContent = t(`quality.${level}`);
    const parts = [];
    if (rtt !== null) parts.push(t("quality.rtt", { ms: Math.round(rtt * 1000) }));
    parts.push(t("quality.loss", { percent: this.number.format(loss * 100) }));
    parts.push(t("quality.bitrate", { down: this.mbit(down), up: this.mbit(up) }));
    this.details.textContent = parts.join(" · ");
    this.box.dataset.rttMs = rtt === null ? "" : String(Math.round(rtt * 1000));
    if (level !== this.level) {
      this.level = level;
      this.onChange(level);
    }
  }

  mbit(bitsPerSecond) {
    const bits = Math.max(0, bitsPerSecond);
    return bits >= 1e6
      ? t("quality.mbit", { value: this.number.format(bits / 1e6) })
      : t("quality.kbit", { value: Math.round(bits / 1e3) });
  }
}

function readStats(report) {
  const stats = { time: 0, rtt: null, lost: 0, received: 0, bytesIn: 0, bytesOut: 0 };
  let selectedPair = null;
  report.forEach((entry) => {
    if (entry.type === "transport" && entry.selectedCandidatePairId) selectedPair = entry.selectedCandidatePairId;
  });
  report.forEach((entry) => {
    stats.time = Math.max(stats.time, entry.timestamp || 0);
    if (entry.type === "candidate-pair") {
      const chosen = selectedPair ? entry.id === selectedPair : entry.selected || (entry.nominated && entry.state === "succeeded");
      if (chosen && typeof entry.currentRoundTripTime === "number") stats.rtt = entry.currentRoundTripTime;
    } else if (entry.type === "inbound-rtp") {
      stats.lost += entry.packetsLost || 0;
      stats.received += entry.packetsReceived || 0;
      stats.bytesIn += entry.bytesReceived || 0;
    } else if (entry.type === "outbound-rtp") {
      stats.bytesOut += entry.bytesSent || 0;
    }
  });
  return stats;
}
