// One side of a call: the signaling WebSocket and the peer connection to the relay
// (docs/protocol.md). It knows nothing of the page; the page listens to its events:
//   phase {from, to}, joined {seat, peer}, peer {state, name?}, track MediaStream,
//   connection <pc state>, media {state}, reconnecting, ended {reason}, left, fatal {code},
//   error {code, message}, e2ee {state, code, safetyCode}, chat {from: "me" | "peer", text},
//   screen-track MediaStream (the other's screen m-line), screen {mine, peer} (who shares now),
//   audio-only {mine, peer} (who sends no camera because the link is weak)
//
// End-to-end encryption (media.e2ee, announced in `joined`): a fresh key agreement per join
// (e2ee-keys.js) whose keys go to the frame transforms (e2ee-media.js) and the chat.
import { KeyAgreement, openChat, sealChat } from "./e2ee-keys.js";
import { MediaEncryption, e2eeSupported } from "./e2ee-media.js";
import { CONTROL, chatText, decodeChannelText, encodeControl } from "./peer-control.js";
import { CHAT_CHANNEL_ID, CHAT_CHANNEL_LABEL, CHAT_MAX_CHARS, CLOSE_ENDED, ERROR, SHUTDOWN } from "./protocol.js";
import { ReconnectingSocket } from "./socket.js";

// Errors after which the server will not seat us however often we try.
const FATAL_ERRORS = new Set([
  ERROR.UNAUTHORIZED, ERROR.USED, ERROR.EXPIRED, ERROR.CANCELLED, ERROR.REPLACED, ERROR.RATE_LIMITED,
]);
// ICE "disconnected" often heals by itself within a few seconds (a Wi-Fi hiccup); after this
// long we build a fresh peer connection instead.
const DISCONNECTED_GRACE_MS = 4000;
// A peer connection that has not connected within this long will not: start again.
const CONNECT_TIMEOUT_MS = 20000;
// While both sides are connected, packets arrive all the time (a muted microphone still sends
// silence, a camera turned off sends black frames). Nothing for this long means the media path
// is stuck although ICE looks fine: build a fresh peer connection, as after a drop.
const STALL_TIMEOUT_MS = 6000;
const STALL_CHECK_MS = 2000;
const FIRST_RESTART_DELAY_MS = 1000;
const MAX_RESTART_DELAY_MS = 10000;
// A shared screen is text and lines: sharp pictures at a few frames a second beat smooth
// motion. Capped at 1920×1080 (a worksheet stays legible, the upload stays bounded) and 5 fps,
// at most 1.5 Mbit/s; under pressure the encoder keeps the resolution and drops frames.
export const SCREEN_CAPTURE = Object.freeze({
  video: { width: { max: 1920 }, height: { max: 1080 }, frameRate: { ideal: 5, max: 5 } },
  audio: false,
});
const SCREEN_MAX_BITRATE = 1_500_000;
const SCREEN_MAX_FRAMERATE = 5;

/**
 * The session's phases and the moves allowed from each. Anything else is a bug or a late event
 * from an old connection: it is logged and ignored, so the page never shows two phases at once.
 *   idle → joining (socket open, join sent) → connecting (seated, offer out) → connected
 *   reconnecting: the socket dropped or the peer connection is being replaced
 *   ended | left | failed: final
 */
export const PHASES = Object.freeze({
  idle: ["joining", "ended", "left", "failed"],
  joining: ["connecting", "reconnecting", "ended", "left", "failed"],
  connecting: ["connected", "reconnecting", "ended", "left", "failed"],
  connected: ["reconnecting", "ended", "left", "failed"],
  reconnecting: ["joining", "connecting", "ended", "left", "failed"],
  ended: [],
  left: [],
  failed: [],
});

export class CallSession extends EventTarget {
  /**
   * `join` is {appointment: id} (therapist) or {invite: token} (client); `role` "therapist" |
   * "client"; `linkSecret` the invite link's secret (Uint8Array) or null.
   */
  constructor(join, stream, { role, linkSecret = null } = {}) {
    super();
    this.join = join;
    this.stream = stream;
    this.role = role || (join.appointment !== undefined ? "therapist" : "client");
    this.linkSecret = linkSecret;
    this.phase = "idle"; // a key of PHASES; change it only through moveTo()
    this.ignoredMoves = 0; // moves PHASES refused, for support and tests
    // signaling
    this.socket = new ReconnectingSocket();
    this.seat = null;
    this.iceServers = [];
    this.lastError = null;
    this.peerState = "absent"; // absent | present | connected | gone (docs/protocol.md `peer`)
    // the peer connection; `generation` silences the events of replaced ones
    this.pc = null;
    this.generation = 0;
    this.hasLeg = false; // the relay has a leg for our seat: later offers are `reconnect`
    this.answered = false;
    this.pendingCandidates = []; // trickled before the answer came
    this.restartPending = false;
    this.restartDelay = FIRST_RESTART_DELAY_MS;
    this.restarts = 0; // fresh peer connections after the first, for support and tests
    this.connectTimer = 0;
    this.disconnectTimer = 0;
    this.lastInbound = { packets: -1, since: Date.now() };
    this.timers = new Set();
    this.stallWatch = setInterval(() => this.checkStall(), STALL_CHECK_MS);
    // end-to-end encryption and the chat
    this.e2eeMode = null; // "required" | "preferred", from `joined`
    this.encryption = null; // MediaEncryption, while frames are encrypted
    this.agreement = null; // KeyAgreement of the current join
    this.chatKeys = null;
    this.chat = null;
    this.e2eeState = { state: "waiting", code: null, safetyCode: null };
    // the screen and the audio-only switch (peer-control.js tells the other page)
    this.screenTrack = null; // our shared screen, while we share
    this.screenStream = new MediaStream(); // its own msid, apart from camera and microphone
    this.screenTransceiver = null; // of the current peer connection (mid "2")
    this.audioOnly = false; // we send no camera: the link is weak
    this.peerControl = { screen: false, audioOnly: false }; // what the other page last said

    this.socket.addEventListener("open", () => {
      if (this.moveTo("joining")) this.send({ type: "join", ...this.join });
    });
    this.socket.addEventListener("message", (event) => this.onMessage(event.detail));
    this.socket.addEventListener("dropped", () => this.onSocketDropped());
    this.socket.addEventListener("closed", (event) => this.onSocketClosed(event.detail.code));
  }

  start() {
    this.socket.open();
  }

  /** Leave for now; the seat stays ours and the same person may come back. */
  leave() {
    if (this.done) return;
    this.send({ type: "leave" });
    this.stop("left");
    this.emit("left");
  }

  /** End the session for both (therapist only). The server answers `ended`. */
  end() {
    if (this.done) return;
    this.send({ type: "end" });
    this.later(() => this.finish("therapist_ended"), 3000);
  }

  /** Swap the outgoing track of `track.kind`; the old track is stopped. No renegotiation. */
  async replaceTrack(track) {
    const old = this.stream.getTracks().find((t) => t.kind === track.kind);
    if (old) {
      track.enabled = old.enabled;
      this.stream.removeTrack(old);
    }
    this.stream.addTrack(track);
    const transceiver = this.pc && this.transceiverFor(track.kind);
    if (transceiver) await transceiver.sender.replaceTrack(this.outgoing(track.kind));
    if (old && old !== track) old.stop();
  }

  /** What the sender of `kind` sends now: the camera pauses while the call is audio only. */
  outgoing(kind) {
    const track = this.stream.getTracks().find((t) => t.kind === kind) || null;
    return kind === "video" && this.videoPaused ? null : track;
  }

  /** Audio only while either page says the link is weak: the link between them is shared. */
  get videoPaused() {
    return this.audioOnly || this.peerControl.audioOnly;
  }

  // --- screen sharing: a pre-negotiated second video m-line, so starting and stopping is a
  // replaceTrack on the relay's existing leg, never a renegotiation or a reconnect

  /** Ask the browser for a screen and share it; throws the getDisplayMedia DOMException. */
  async startScreenShare() {
    if (this.screenTrack) return;
    const captured = await navigator.mediaDevices.getDisplayMedia(SCREEN_CAPTURE);
    const track = captured.getVideoTracks()[0];
    if (this.done) {
      track.stop();
      return;
    }
    track.contentHint = "detail";
    // the browser's own "stop sharing" bar ends the track
    track.addEventListener("ended", () => this.stopScreenShare());
    this.screenTrack = track;
    this.screenStream.addTrack(track);
    await this.sendScreen();
    this.screenChanged();
  }

  /** Stop sharing (our button, the browser's bar, or the other page asked). */
  async stopScreenShare() {
    const track = this.screenTrack;
    if (!track) return;
    this.screenTrack = null;
    this.screenStream.removeTrack(track);
    track.stop();
    await this.sendScreen();
    this.screenChanged();
  }

  /** Ask the sharing page to stop sharing its screen. */
  askToStopScreen() {
    return this.sendControl({ type: CONTROL.STOP_SCREEN });
  }

  async sendScreen() {
    const transceiver = this.screenTransceiver;
    if (!transceiver || !this.pc) return;
    await transceiver.sender.replaceTrack(this.screenTrack).catch(() => {});
    if (this.screenTrack) await tuneScreenSender(transceiver.sender);
  }

  screenChanged() {
    this.sendState();
    this.emit("screen", { mine: Boolean(this.screenTrack), peer: this.peerControl.screen });
  }

  // --- weak connection: audio only

  /** Send no camera (true) or send it again (false); the other page is told and follows. */
  async setAudioOnly(on) {
    if (this.audioOnly === on) return;
    this.audioOnly = on;
    await this.applyVideoPause();
    this.sendState();
  }

  async applyVideoPause() {
    const transceiver = this.pc && this.transceiverFor("video");
    if (transceiver) await transceiver.sender.replaceTrack(this.outgoing("video")).catch(() => {});
    this.emit("audio-only", { mine: this.audioOnly, peer: this.peerControl.audioOnly });
  }

  // --- control messages to the other page, inside the encrypted chat channel

  sendState() {
    return this.sendControl({ type: CONTROL.STATE, screen: Boolean(this.screenTrack), audioOnly: this.audioOnly });
  }

  async sendControl(message) {
    const channel = this.chat;
    const keys = this.chatKeys;
    if (!channel || channel.readyState !== "open" || !keys) return false;
    channel.send(await sealChat(keys, encodeControl(message)));
    return true;
  }

  async onControl(message) {
    if (message.type === CONTROL.STOP_SCREEN) {
      await this.stopScreenShare();
      return;
    }
    const before = this.peerControl;
    this.peerControl = { screen: message.screen, audioOnly: message.audioOnly };
    if (before.screen !== message.screen) this.screenChanged();
    if (before.audioOnly !== message.audioOnly) await this.applyVideoPause();
  }

  /** The other page is gone or new: what it said no longer holds. */
  forgetPeerControl() {
    const before = this.peerControl;
    this.peerControl = { screen: false, audioOnly: false };
    if (before.screen) this.screenChanged();
    if (before.audioOnly) this.applyVideoPause();
  }

  async getStats() {
    return this.pc ? this.pc.getStats() : null;
  }

  get done() {
    return PHASES[this.phase].length === 0;
  }

  /** Move to `phase` if PHASES allows it from here; false (and nothing changes) if not. */
  moveTo(phase) {
    if (phase === this.phase) return true;
    if (!PHASES[this.phase].includes(phase)) {
      this.ignoredMoves++;
      console.warn(`call: ignored a move from ${this.phase} to ${phase}`);
      return false;
    }
    const from = this.phase;
    this.phase = phase;
    this.emit("phase", { from, to: phase });
    if (phase === "reconnecting") this.emit("reconnecting");
    return true;
  }

  send(message) {
    return this.socket.send(message);
  }

  // --- the WebSocket (socket.js opens it again after a drop; the "open" listener joins)

  onMessage(message) {
    switch (message.type) {
      case "joined":
        if (!this.moveTo("connecting")) return;
        this.seat = message.seat;
        this.iceServers = Array.isArray(message.ice_servers) ? message.ice_servers : [];
        if (!this.setUpEncryption(message.e2ee === "preferred" ? "preferred" : "required")) return;
        this.emit("joined", message);
        if (message.peer) {
          this.peerState = message.peer.state;
          this.emit("peer", message.peer);
        }
        // The first peer connection is an offer; every later one (after a dropped socket)
        // replaces the relay's leg for our seat.
        this.startPeer(this.hasLeg ? "reconnect" : "offer");
        break;
      case "answer":
        this.applyAnswer(message.sdp);
        break;
      case "peer":
        this.peerState = message.state;
        if (message.state !== "connected") this.forgetPeerControl();
        this.emit("peer", message);
        if (message.state === "connected") this.sendState(); // a new page of the other learns ours
        break;
      case "media":
        this.emit("media", message);
        if (message.state === "failed") this.restartPeer();
        break;
      case "renegotiate":
        this.renegotiate(message.codec);
        break;
      case "ended":
        if (message.reason === SHUTDOWN) {
          // The server restarts; the appointment stays open. The socket closes with 1001 and
          // socket.js opens it again; we join once the server is back.
          this.dropPeer();
        } else {
          this.finish(message.reason);
        }
        break;
      case "error":
        this.lastError = message.code;
        if (FATAL_ERRORS.has(message.code)) {
          this.fail(message.code);
        } else {
          this.emit("error", message);
          // No room or port left on the relay: offer again later on the same connection.
          if (message.code === ERROR.RELAY_UNAVAILABLE) this.restartPeer();
        }
        break;
      case "e2ee":
        this.onE2ee(message.payload);
        break;
      default:
        break; // anything newer: not used by this page yet
    }
  }

  /** The network dropped or the server restarted: socket.js tries again, we join again. */
  onSocketDropped() {
    if (this.done) return;
    this.dropPeer();
  }

  /** A final close: the session ended, or the server refused us for good. */
  onSocketClosed(code) {
    if (this.done) return;
    if (code === CLOSE_ENDED) this.finish("therapist_ended");
    else this.fail(this.lastError || `close_${code}`);
  }

  // --- the peer connection

  async startPeer(kind, { renegotiation = false } = {}) {
    const generation = ++this.generation;
    if (kind === "reconnect" && !renegotiation) this.restarts++; // a codec change is no restart
    this.lastInbound = { packets: -1, since: Date.now() };
    this.closePeer();
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers,
      bundlePolicy: "max-bundle",
      rtcpMuxPolicy: "require",
      ...(this.encryption ? this.encryption.peerConnectionOptions : {}),
    });
    this.pc = pc;
    this.answered = false;
    this.pendingCandidates = [];
    const current = () => generation === this.generation && !this.done;

    // Audio, camera, screen: the relay expects mids "0", "1" and "2"; then the chat channel,
    // so the offer has an application m-line. Transforms go on before the offer, on the screen
    // too: it is encrypted like the camera, with the same keys and frame counter.
    for (const mediaKind of ["audio", "video"]) {
      const track = this.stream.getTracks().find((t) => t.kind === mediaKind);
      let transceiver;
      if (track) {
        const sender = pc.addTrack(track, this.stream);
        transceiver = pc.getTransceivers().find((t) => t.sender === sender);
        if (mediaKind === "video" && this.videoPaused) sender.replaceTrack(null);
      } else {
        transceiver = pc.addTransceiver(mediaKind, { direction: "sendrecv" });
      }
      if (this.encryption) this.encryption.attach(transceiver, mediaKind);
    }
    const screen = pc.addTransceiver(this.screenTrack || "video", { direction: "sendrecv", streams: [this.screenStream] });
    this.screenTransceiver = screen;
    if (this.encryption) this.encryption.attach(screen, "video");
    if (this.screenTrack) tuneScreenSender(screen.sender);
    this.openChat(pc.createDataChannel(CHAT_CHANNEL_LABEL, { negotiated: true, id: CHAT_CHANNEL_ID }), current);
    pc.addEventListener("icecandidate", (event) => {
      if (!current()) return;
      const candidate = event.candidate;
      const message = candidate && candidate.candidate
        ? { type: "candidate", candidate: candidate.candidate, sdpMid: candidate.sdpMid, sdpMLineIndex: candidate.sdpMLineIndex }
        : { type: "candidate", candidate: null, sdpMid: null, sdpMLineIndex: null };
      if (this.answered) this.send(message);
      else this.pendingCandidates.push(message);
    });
    pc.addEventListener("track", (event) => {
      if (!current()) return;
      if (event.transceiver === screen) this.emit("screen-track", new MediaStream([event.track]));
      else this.emit("track", event.streams[0] || new MediaStream([event.track]));
    });
    const onState = () => {
      if (current()) this.onConnectionState(pc, generation);
    };
    pc.addEventListener("connectionstatechange", onState);
    pc.addEventListener("iceconnectionstatechange", onState);

    try {
      await pc.setLocalDescription(await pc.createOffer());
    } catch {
      if (current()) this.restartPeer();
      return;
    }
    if (!current()) return;
    this.send({ type: kind, sdp: pc.localDescription.sdp });
    this.connectTimer = this.later(() => {
      if (current() && connectionState(pc) !== "connected") this.restartPeer();
    }, CONNECT_TIMEOUT_MS);
  }

  async applyAnswer(sdp) {
    const pc = this.pc;
    if (!pc || pc.signalingState !== "have-local-offer") return;
    try {
      await pc.setRemoteDescription({ type: "answer", sdp });
    } catch {
      this.restartPeer();
      return;
    }
    this.answered = true;
    this.hasLeg = true;
    // encodings exist only now: a share that outlived a reconnect gets its limits again
    if (this.screenTrack && this.screenTransceiver) tuneScreenSender(this.screenTransceiver.sender);
    for (const message of this.pendingCandidates) this.send(message);
    this.pendingCandidates = [];
  }

  onConnectionState(pc, generation) {
    const state = connectionState(pc);
    this.emit("connection", state);
    clearTimeout(this.disconnectTimer);
    if (state === "connected") {
      if (this.moveTo("connected")) this.restartDelay = FIRST_RESTART_DELAY_MS;
    } else if (state === "failed") {
      this.restartPeer();
    } else if (state === "disconnected") {
      this.disconnectTimer = this.later(() => {
        if (generation === this.generation && connectionState(pc) !== "connected") this.restartPeer();
      }, DISCONNECTED_GRACE_MS);
    }
  }

  /** A fresh peer connection for the same seat (`reconnect`), after a short back-off. */
  /**
   * The relay answered the other browser with a codec our leg was not answered with (H.264
   * once both are known to have it, sfu/codec_choice.py): offer again on a fresh peer
   * connection, which the relay answers with that codec. Not restartPeer: nothing failed, so no
   * "reconnecting" and no back-off. The E2EE worker and its keys stay, and are attached to the
   * new transceivers as on any reconnect; the relay's answer names the one codec to send, so no
   * setCodecPreferences is needed.
   */
  renegotiate(codec) {
    // Not waiting for hasLeg: the relay sent our answer before this message, and its handler
    // may still be applying it; the fresh offer replaces that leg either way.
    if (this.done || this.restartPending || !this.socket.isOpen) return;
    if (this.phase !== "connecting" && this.phase !== "connected") return;
    this.videoCodec = typeof codec === "string" ? codec : null; // for support and tests
    this.renegotiations = (this.renegotiations || 0) + 1;
    this.startPeer("reconnect", { renegotiation: true });
  }

  restartPeer() {
    if (this.done || this.restartPending) return;
    if (!this.socket.isOpen || (this.phase !== "connecting" && this.phase !== "connected")) return;
    this.restartPending = true;
    const generation = ++this.generation; // silence the old connection's events
    this.moveTo("reconnecting");
    this.later(() => {
      // A dropped socket in the meantime means a new join, which makes its own offer.
      if (generation !== this.generation || this.done) return;
      this.restartPending = false;
      if (this.moveTo("connecting")) this.startPeer(this.hasLeg ? "reconnect" : "offer");
    }, this.restartDelay);
    this.restartDelay = Math.min(this.restartDelay * 2, MAX_RESTART_DELAY_MS);
  }

  /** Give up the peer connection until we are seated again (socket dropped, server restart). */
  dropPeer() {
    this.generation++; // silence the old connection's events and pending restarts
    this.restartPending = false;
    this.closePeer();
    this.moveTo("reconnecting");
  }

  async checkStall() {
    const pc = this.pc;
    if (this.done || !pc || this.restartPending || this.peerState !== "connected" || connectionState(pc) !== "connected") {
      this.lastInbound = { packets: -1, since: Date.now() };
      return;
    }
    let packets = 0;
    (await pc.getStats()).forEach((entry) => {
      if (entry.type === "inbound-rtp") packets += entry.packetsReceived || 0;
    });
    if (pc !== this.pc) return;
    if (packets !== this.lastInbound.packets) {
      this.lastInbound = { packets, since: Date.now() };
    } else if (Date.now() - this.lastInbound.since > STALL_TIMEOUT_MS) {
      this.lastInbound = { packets: -1, since: Date.now() };
      this.restartPeer();
    }
  }

  // --- end-to-end encryption

  /** False when the call cannot go on: e2ee required and this browser cannot do it. */
  setUpEncryption(mode) {
    this.e2eeMode = mode;
    if (!e2eeSupported) {
      if (mode === "required") {
        this.fail("e2ee_unsupported");
        return false;
      }
      this.send({ type: "e2ee", payload: { kind: "unsupported", version: 1 } });
      this.setE2eeState({ state: "unencrypted", code: "this_browser", safetyCode: null });
      return true;
    }
    if (!this.encryption) this.encryption = new MediaEncryption();
    const agreement = new KeyAgreement({
      role: this.role,
      secret: this.linkSecret,
      send: (payload) => this.send({ type: "e2ee", payload }),
    });
    this.agreement = agreement;
    agreement.addEventListener("keys", (event) => {
      if (agreement !== this.agreement || this.done) return;
      this.encryption.setKeys(event.detail);
      this.chatKeys = event.detail.chat;
      this.sendState(); // the first moment the other page can read it
    });
    agreement.addEventListener("state", (event) => {
      if (agreement === this.agreement) this.setE2eeState(event.detail);
    });
    this.setE2eeState({ state: "waiting", code: null, safetyCode: null });
    agreement.start().catch(() => this.setE2eeState({ state: "warning", code: "no_key", safetyCode: null }));
    return true;
  }

  onE2ee(payload) {
    if (!payload || typeof payload !== "object") return;
    if (payload.kind === "unsupported") {
      // The other browser cannot encrypt. Only "preferred" allows a call in the clear.
      if (this.e2eeMode === "preferred" && this.encryption) {
        this.encryption.passThrough();
        this.setE2eeState({ state: "unencrypted", code: "peer_browser", safetyCode: null });
      }
      return;
    }
    if (this.agreement) {
      this.agreement.receive(payload);
    } else if (this.e2eeMode === "preferred" && !e2eeSupported && payload.kind === "hello") {
      // Our first `unsupported` may have gone out while the other seat was empty.
      this.send({ type: "e2ee", payload: { kind: "unsupported", version: 1 } });
    }
  }

  /** The two compared the safety code aloud and it matched. */
  confirmSafetyCode() {
    if (this.agreement) this.agreement.confirm();
  }

  setE2eeState(detail) {
    this.e2eeState = detail;
    this.emit("e2ee", detail);
  }

  // --- the chat: encrypted with the e2ee chat keys, never stored

  openChat(channel, current) {
    channel.binaryType = "arraybuffer";
    if (current()) this.chat = channel;
    // a new channel (reconnect) or new keys (the other rejoined): say what we do now
    channel.addEventListener("open", () => {
      if (current()) this.sendState();
    });
    channel.addEventListener("message", async (event) => {
      if (!current() || !this.chatKeys || !(event.data instanceof ArrayBuffer)) return;
      const text = await openChat(this.chatKeys, new Uint8Array(event.data));
      if (text === null) return;
      const { chat, control } = decodeChannelText(text);
      if (control) this.onControl(control);
      else if (chat !== undefined) this.emit("chat", { from: "peer", text: chat.slice(0, CHAT_MAX_CHARS) });
    });
  }

  /** Send a chat message; false when it cannot be sent encrypted right now. */
  async sendChat(typed) {
    const channel = this.chat;
    const keys = this.chatKeys;
    const text = typed ? chatText(typed) : "";
    if (!channel || channel.readyState !== "open" || !keys || !text) return false;
    channel.send(await sealChat(keys, text.slice(0, CHAT_MAX_CHARS)));
    this.emit("chat", { from: "me", text });
    return true;
  }

  transceiverFor(kind) {
    const index = kind === "audio" ? 0 : 1;
    return this.pc.getTransceivers()[index];
  }

  closePeer() {
    clearTimeout(this.disconnectTimer);
    clearTimeout(this.connectTimer);
    this.chat = null;
    this.screenTransceiver = null;
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
  }

  // --- the end

  finish(reason) {
    if (this.done) return;
    this.stop("ended");
    this.emit("ended", { reason: reason || "therapist_ended" });
  }

  fail(code) {
    if (this.done) return;
    this.stop("failed");
    this.emit("fatal", { code });
  }

  stop(phase) {
    this.moveTo(phase);
    clearInterval(this.stallWatch);
    this.generation++;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.closePeer();
    if (this.screenTrack) this.screenTrack.stop();
    this.screenTrack = null;
    this.chatKeys = null;
    this.agreement = null;
    if (this.encryption) this.encryption.close();
    this.encryption = null;
    this.socket.close(1000);
  }

  later(callback, delay) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      callback();
    }, delay);
    this.timers.add(timer);
    return timer;
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** Few frames, bounded bitrate, sharp text (SCREEN_CAPTURE); not every browser takes all. */
async function tuneScreenSender(sender) {
  const parameters = sender.getParameters();
  if (!parameters.encodings || parameters.encodings.length === 0) return; // before negotiation
  parameters.encodings[0].maxBitrate = SCREEN_MAX_BITRATE;
  parameters.encodings[0].maxFramerate = SCREEN_MAX_FRAMERATE;
  parameters.degradationPreference = "maintain-resolution";
  await sender.setParameters(parameters).catch(() => {});
}

/** connectionState where the browser has it (Firefox only recently), else ICE's. */
function connectionState(pc) {
  if (pc.connectionState) return pc.connectionState;
  const ice = pc.iceConnectionState;
  return ice === "completed" ? "connected" : ice === "checking" ? "connecting" : ice;
}
