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
// - H.264 (RFC 6184) is packetized by its NAL units, which the browser finds by their Annex B
//   start codes, and the receiving browser reads the parameter sets and the first slice's header
//   (NAL type, pps id) before the frame reaches the transform. So everything up to and including
//   the first slice's NAL header and the first bytes of its slice header stays clear (SPS, PPS
//   and SEI carry no picture), the rest is encrypted, and the key id, counter and ciphertext get
//   emulation-prevention bytes (00 00 0x -> 00 00 03 0x, as H.264 itself does) plus a final 0x80
//   so no start code appears inside them and no trailing zero is trimmed.
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

// NAL unit types of coded slices (non-IDR, IDR): where the picture starts.
const H264_SLICES = new Set([1, 5]);
// The slice header's first fields (first_mb_in_slice, slice_type, pic_parameter_set_id) fit in
// these bytes after the NAL header for the pictures browsers send; they reveal nothing of it.
const H264_SLICE_HEADER_CLEAR = 3;

/** True if `data` is an Annex B H.264 frame (starts with a start code; VP8 never does). */
export function isH264(data, mimeType) {
  if (mimeType) return mimeType.toLowerCase() === "video/h264";
  return data.byteLength > 4 && data[0] === 0 && data[1] === 0 && (data[2] === 1 || (data[2] === 0 && data[3] === 1));
}

/** Bytes to keep clear in an H.264 frame: up to the first slice's header, or all of it. */
export function h264ClearLength(data) {
  for (let i = 0; i + 3 < data.byteLength; i++) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      const header = i + 3;
      if (H264_SLICES.has(data[header] & 0x1f)) return Math.min(header + 1 + H264_SLICE_HEADER_CLEAR, data.byteLength);
      i = header - 1;
    }
  }
  return data.byteLength;
}

/** Insert emulation-prevention bytes so `bytes` holds no 00 00 0x (x <= 3), then a final 0x80. */
export function escapeH264(bytes, zerosBefore = 0) {
  const out = [];
  let zeros = zerosBefore;
  for (const byte of bytes) {
    if (zeros >= 2 && byte <= 3) {
      out.push(3);
      zeros = 0;
    }
    out.push(byte);
    zeros = byte === 0 ? zeros + 1 : 0;
  }
  out.push(0x80);
  return Uint8Array.from(out);
}

/** The inverse of escapeH264; null if the final 0x80 is missing. */
export function unescapeH264(bytes, zerosBefore = 0) {
  if (!bytes.byteLength || bytes[bytes.byteLength - 1] !== 0x80) return null;
  const out = [];
  let zeros = zerosBefore;
  for (let i = 0; i < bytes.byteLength - 1; i++) {
    const byte = bytes[i];
    if (zeros >= 2 && byte === 3) {
      zeros = 0;
      continue;
    }
    out.push(byte);
    zeros = byte === 0 ? zeros + 1 : 0;
  }
  return Uint8Array.from(out);
}

function trailingZeros(bytes) {
  let n = 0;
  while (n < bytes.byteLength && n < 2 && bytes[bytes.byteLength - 1 - n] === 0) n++;
  return n;
}

export function clearPrefixLength(kind, data, mimeType) {
  if (kind === "audio") return Math.min(1, data.byteLength);
  if (isH264(data, mimeType)) return h264ClearLength(data);
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
  async encrypt(kind, data, mimeType) {
    const key = this.sendKey;
    if (!key) return null;
    const h264 = kind === "video" && isH264(data, mimeType);
    const prefix = clearPrefixLength(kind, data, mimeType);
    if (h264 && prefix === data.byteLength) return null; // no slice: nothing to show, drop it
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
    if (h264) {
      const tail = new Uint8Array(HEADER_BYTES + sealed.byteLength);
      tail.set(header.subarray(prefix));
      tail.set(new Uint8Array(sealed), HEADER_BYTES);
      const escaped = escapeH264(tail, trailingZeros(data.subarray(0, prefix)));
      const out = new Uint8Array(prefix + escaped.byteLength);
      out.set(data.subarray(0, prefix));
      out.set(escaped, prefix);
      return out;
    }
    const out = new Uint8Array(header.byteLength + sealed.byteLength);
    out.set(header);
    out.set(new Uint8Array(sealed), header.byteLength);
    return out;
  }

  /** The plain frame bytes, or null if this frame cannot be decrypted. */
  async decrypt(kind, received, mimeType) {
    let data = received;
    const prefix = clearPrefixLength(kind, received, mimeType);
    if (kind === "video" && isH264(received, mimeType)) {
      const tail = unescapeH264(received.subarray(prefix), trailingZeros(received.subarray(0, prefix)));
      if (tail === null) return null;
      data = new Uint8Array(prefix + tail.byteLength);
      data.set(received.subarray(0, prefix));
      data.set(tail, prefix);
    }
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
        // Chromium names the codec of each frame; elsewhere isH264 tells by the start code.
        const mimeType = kind === "video" ? frame.getMetadata?.().mimeType : undefined;
        const out = direction === "send" ? await this.encrypt(kind, data, mimeType) : await this.decrypt(kind, data, mimeType);
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
