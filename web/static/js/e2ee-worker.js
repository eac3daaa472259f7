// End-to-end encryption of encoded media frames, in the spirit of SFrame (RFC 9605).
//
// Runs as a module worker behind RTCRtpScriptTransform, and the same FrameCrypto class is
// imported by the page for the createEncodedStreams fallback. Keys come from e2ee-keys.js.
//
// An encrypted frame is
//   [clear prefix][key id: 1 byte][counter: 8 bytes, big-endian][AES-GCM ciphertext + 16-byte tag]
// - The clear prefix is what the packetizer on the sending side and the depacketizer on the
//   receiving side read from the frame itself: the VP8 payload header (10 bytes on a keyframe,
//   with its start code and size, 3 bytes otherwise; RFC 6386 9.1) and the Opus TOC byte
//   (RFC 6716 3.1). The relay reads nothing of the payload.
// - IV = the direction's 12-byte salt XOR the counter (in its last 8 bytes). The counter is one
//   per sending key, shared by audio and video, so no IV repeats under a key.
// - AAD = the clear prefix and the key id and counter, so none of them can be changed unseen.
// Without a key the sender drops the frame, never sends it in the clear; a frame the receiver
// cannot decrypt is dropped.

const HEADER_BYTES = 9;
const TAG_BYTES = 16;
// After new keys, frames under the old receive key may still be in flight (jitter buffer,
// retransmissions): accept them this long.
export const OLD_KEY_OVERLAP_MS = 2000;

export function clearPrefixLength(kind, data) {
  if (kind === "audio") return Math.min(1, data.byteLength);
  if (data.byteLength < 3) return data.byteLength;
  const keyframe = (data[0] & 0x01) === 0; // VP8 "P" bit: 0 on a keyframe
  return Math.min(keyframe ? 10 : 3, data.byteLength);
}

export class FrameCrypto {
  constructor() {
    this.sendKey = null; // {id, key, salt}
    this.receiveKeys = new Map(); // id -> {key, salt}
    this.counter = 0n;
    this.passthrough = false; // media.e2ee "preferred" with a peer that cannot encrypt
    this.stats = { encrypted: 0, decrypted: 0, dropped: 0, failed: 0 };
  }

  /** New keys for both directions: send with the new one at once, keep old receive keys briefly. */
  setKeys({ send, receive }) {
    if (!this.sendKey || this.sendKey.key !== send.key) this.counter = 0n;
    this.sendKey = send;
    const old = [...this.receiveKeys.keys()].filter((id) => id !== receive.id);
    this.receiveKeys.set(receive.id, receive);
    setTimeout(() => {
      for (const id of old) {
        if (this.receiveKeys.get(id) !== receive) this.receiveKeys.delete(id);
      }
    }, OLD_KEY_OVERLAP_MS);
    this.passthrough = false;
  }

  clearKeys() {
    this.sendKey = null;
    this.receiveKeys.clear();
  }

  /** The encrypted frame bytes, or null to drop the frame. */
  async encrypt(kind, data) {
    const key = this.sendKey;
    if (!key) return null;
    const prefix = clearPrefixLength(kind, data);
    const counter = this.counter++;
    const header = new Uint8Array(prefix + HEADER_BYTES);
    header.set(data.subarray(0, prefix));
    header[prefix] = key.id;
    new DataView(header.buffer).setBigUint64(prefix + 1, counter);
    const sealed = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: ivFor(key.salt, counter), additionalData: header },
      key.key,
      data.subarray(prefix),
    );
    const out = new Uint8Array(header.byteLength + sealed.byteLength);
    out.set(header);
    out.set(new Uint8Array(sealed), header.byteLength);
    return out;
  }

  /** The plain frame bytes, or null if this frame cannot be decrypted. */
  async decrypt(kind, data) {
    const prefix = clearPrefixLength(kind, data);
    if (data.byteLength < prefix + HEADER_BYTES + TAG_BYTES) return null;
    const key = this.receiveKeys.get(data[prefix]);
    if (!key) return null;
    const header = data.subarray(0, prefix + HEADER_BYTES);
    const counter = new DataView(data.buffer, data.byteOffset).getBigUint64(prefix + 1);
    let plain;
    try {
      plain = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: ivFor(key.salt, counter), additionalData: header },
        key.key,
        data.subarray(prefix + HEADER_BYTES),
      );
    } catch {
      return null;
    }
    const out = new Uint8Array(prefix + plain.byteLength);
    out.set(data.subarray(0, prefix));
    out.set(new Uint8Array(plain), prefix);
    return out;
  }

  /** Pipe encoded frames from `readable` to `writable`, encrypting ("send") or decrypting. */
  pipe(readable, writable, direction, kind) {
    const transform = new TransformStream({
      transform: async (frame, controller) => {
        if (this.passthrough) {
          controller.enqueue(frame);
          return;
        }
        const data = new Uint8Array(frame.data);
        const out = direction === "send" ? await this.encrypt(kind, data) : await this.decrypt(kind, data);
        if (out === null) {
          this.stats[direction === "send" ? "dropped" : "failed"]++;
          return;
        }
        this.stats[direction === "send" ? "encrypted" : "decrypted"]++;
        frame.data = out.buffer;
        controller.enqueue(frame);
      },
    });
    readable.pipeThrough(transform).pipeTo(writable).catch(() => {});
  }
}

function ivFor(salt, counter) {
  const iv = new Uint8Array(salt);
  const view = new DataView(iv.buffer);
  view.setBigUint64(4, view.getBigUint64(4) ^ counter);
  return iv;
}

// --- as a worker behind RTCRtpScriptTransform

if (typeof WorkerGlobalScope !== "undefined" && self instanceof WorkerGlobalScope) {
  const frames = new FrameCrypto();
  self.onrtctransform = (event) => {
    const { readable, writable, options } = event.transformer;
    frames.pipe(readable, writable, options.direction, options.kind);
  };
  self.onmessage = (event) => {
    const message = event.data;
    if (message.type === "keys") frames.setKeys(message);
    else if (message.type === "clear") frames.clearKeys();
    else if (message.type === "passthrough") frames.passthrough = true;
    else if (message.type === "stats") self.postMessage({ type: "stats", stats: frames.stats });
  };
}
