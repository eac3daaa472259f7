// Attaches the frame encryption of e2ee-worker.js to a peer connection's senders and receivers:
// RTCRtpScriptTransform in a worker where the browser has it, else createEncodedStreams
// (Chromium's older API, which needs `encodedInsertableStreams: true` in the configuration) with
// the same code on the page's thread.
import { FrameCrypto } from "./e2ee-worker.js";

const WORKER_URL = "/static/js/e2ee-worker.js";

export const scriptTransformSupported = typeof RTCRtpScriptTransform !== "undefined";
export const encodedStreamsSupported =
  typeof RTCRtpSender !== "undefined" && "createEncodedStreams" in RTCRtpSender.prototype;
export const e2eeSupported = scriptTransformSupported || encodedStreamsSupported;

export class MediaEncryption {
  constructor() {
    this.worker = scriptTransformSupported ? new Worker(WORKER_URL, { type: "module", name: "sprechzimmer-e2ee" }) : null;
    this.frames = this.worker ? null : new FrameCrypto();
  }

  /** Options for `new RTCPeerConnection` that the fallback needs. */
  get peerConnectionOptions() {
    return this.worker ? {} : { encodedInsertableStreams: true };
  }

  /**
   * Attach to a transceiver right after addTrack/addTransceiver, before the offer: a transform
   * set later (in ontrack) lets frames through unencrypted in Chromium.
   */
  attach(transceiver, kind) {
    const { sender, receiver } = transceiver;
    if (this.worker) {
      sender.transform = new RTCRtpScriptTransform(this.worker, { direction: "send", kind });
      receiver.transform = new RTCRtpScriptTransform(this.worker, { direction: "receive", kind });
      return;
    }
    const outgoing = sender.createEncodedStreams();
    this.frames.pipe(outgoing.readable, outgoing.writable, "send", kind);
    const incoming = receiver.createEncodedStreams();
    this.frames.pipe(incoming.readable, incoming.writable, "receive", kind);
  }

  setKeys(keys) {
    const message = { type: "keys", send: keys.send, receive: keys.receive };
    if (this.worker) this.worker.postMessage(message);
    else this.frames.setKeys(message);
  }

  /** media.e2ee "preferred" and the other browser cannot encrypt: frames pass unchanged. */
  passThrough() {
    if (this.worker) this.worker.postMessage({ type: "passthrough" });
    else this.frames.passthrough = true;
  }

  close() {
    if (this.worker) this.worker.terminate();
    else this.frames.clearKeys();
  }
}
