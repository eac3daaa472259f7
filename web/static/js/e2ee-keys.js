// Key agreement for the end-to-end encryption: ephemeral ECDH (P-256) between the two browsers
// over the signaling channel (`e2ee` messages, which the server passes on unread).
//
// Each side makes a fresh key pair whenever it joins and sends it in a `hello`; a side that
// receives a hello answers with its own (`reply: true`, which is not answered again). A new
// public key from the other side means new keys at once; e2ee-worker.js keeps the old receive
// key for a short overlap.
//
// Authentication: the invite link's fragment (`#k=…`) carries a 32-byte secret that the
// therapist's browser made; the server never sees a fragment. Each side sends
// HMAC-SHA256(HKDF(secret, "… auth"), role || 0x00 || public key) with its hello. A wrong MAC is
// a warning and no keys; a missing one (the therapist on another device, a link copied without
// its fragment) leaves the call "encrypted, not confirmed" until the two compare the safety code
// aloud. Both sides derive the same safety code from the shared secret.
//
// From the ECDH secret, HKDF-SHA-256 with salt = therapist's public key || client's public key:
//   "sprechzimmer e2ee v1 therapist to client key" / "… salt"   (AES-GCM-256, 12-byte IV salt)
//   "sprechzimmer e2ee v1 client to therapist key" / "… salt"
//   "sprechzimmer e2ee v1 chat therapist to client" / "… chat client to therapist"
//   "sprechzimmer e2ee v1 key id" (1 byte), "sprechzimmer e2ee v1 safety code" (4 bytes)

const INFO = "sprechzimmer e2ee v1 ";
const encoder = new TextEncoder();

export const SECRET_PARAMETER = "k";

/** The 32-byte link secret from a fragment like "#k=…", or null. */
export function secretFromFragment(hash) {
  const value = new URLSearchParams(hash.replace(/^#/, "")).get(SECRET_PARAMETER);
  if (!value) return null;
  try {
    const bytes = fromBase64url(value);
    return bytes.byteLength === 32 ? bytes : null;
  } catch {
    return null;
  }
}

export function newLinkSecret() {
  return toBase64url(crypto.getRandomValues(new Uint8Array(32)));
}

/**
 * The key agreement of one side of a call. Events: "keys" {send, receive, chat}, "state"
 * {state: "waiting" | "encrypted" | "verified" | "warning", code}.
 */
export class KeyAgreement extends EventTarget {
  /** `role` "therapist" | "client"; `secret` the link secret (Uint8Array) or null; `send(payload)`. */
  constructor({ role, secret, send }) {
    super();
    this.role = role;
    this.peerRole = role === "therapist" ? "client" : "therapist";
    this.secret = secret;
    this.send = send;
    this.keyPair = null;
    this.publicKey = null; // raw bytes
    this.peerKey = null; // raw bytes of the peer's current public key
    this.state = "waiting";
    this.safetyCode = null;
    this.confirmed = false;
    this.busy = Promise.resolve();
  }

  /** A fresh key pair (on every join), announced to the other side. */
  start() {
    this.busy = this.busy.then(() => this.makeKeyPair());
    return this.busy;
  }

  async makeKeyPair() {
    this.keyPair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, false, ["deriveBits"]);
    this.publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", this.keyPair.publicKey));
    this.peerKey = null;
    await this.sendHello(false);
  }

  /** An `e2ee` payload from the other side. Handled one at a time, in order. */
  receive(payload) {
    this.busy = this.busy.then(() => this.onPayload(payload)).catch(() => this.setState("warning", "bad_message"));
    return this.busy;
  }

  /** The people compared the safety code aloud and it matched. */
  confirm() {
    if (this.state !== "encrypted") return;
    this.confirmed = true;
    this.setState("verified", "compared");
  }

  async onPayload(payload) {
    if (!payload || payload.kind !== "hello" || payload.version !== 1 || payload.role !== this.peerRole) return;
    if (!this.keyPair) return;
    const peerKey = fromBase64url(String(payload.public_key));
    if (this.peerKey && equal(peerKey, this.peerKey)) {
      if (!payload.reply) await this.sendHello(true);
      return;
    }
    // Answer a new side's hello even if its key turns out bad: it judges ours on its own.
    if (!payload.reply) await this.sendHello(true);
    let authenticated = false;
    if (this.secret && payload.mac) {
      const expected = await this.mac(this.peerRole, peerKey);
      if (!equal(expected, fromBase64url(String(payload.mac)))) {
        this.peerKey = null;
        this.setState("warning", "bad_mac");
        return;
      }
      authenticated = true;
    }
    let peerPublic;
    try {
      peerPublic = await crypto.subtle.importKey("raw", peerKey, { name: "ECDH", namedCurve: "P-256" }, false, []);
    } catch {
      this.setState("warning", "bad_key");
      return;
    }
    const shared = new Uint8Array(await crypto.subtle.deriveBits({ name: "ECDH", public: peerPublic }, this.keyPair.privateKey, 256));
    if (globalThis.__szE2eeTestCorruptKey) shared[0] ^= 0xff; // test-only: a wrong key on this page
    this.peerKey = peerKey;
    await this.derive(shared);
    // A new peer key after a confirmed code needs a new comparison, unless the link secret
    // authenticates it.
    if (authenticated) this.setState("verified", "link");
    else this.setState("encrypted", this.secret ? "peer_without_secret" : "no_secret");
  }

  async derive(shared) {
    const [therapistKey, clientKey] = this.role === "therapist" ? [this.publicKey, this.peerKey] : [this.peerKey, this.publicKey];
    const salt = concat(therapistKey, clientKey);
    const base = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveBits"]);
    const bits = async (info, bytes) =>
      new Uint8Array(await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info: encoder.encode(INFO + info) }, base, bytes * 8));
    const aes = async (info) => crypto.subtle.importKey("raw", await bits(info, 32), "AES-GCM", false, ["encrypt", "decrypt"]);
    const id = (await bits("key id", 1))[0];
    const directions = {};
    for (const [from, to] of [["therapist", "client"], ["client", "therapist"]]) {
      directions[from] = {
        id,
        key: await aes(`${from} to ${to} key`),
        salt: await bits(`${from} to ${to} salt`, 12),
        chat: await aes(`chat ${from} to ${to}`),
      };
    }
    const code = new DataView((await bits("safety code", 4)).buffer).getUint32(0) % 1_000_000;
    this.safetyCode = String(code).padStart(6, "0").replace(/^(\d{3})/, "$1 ");
    const mine = directions[this.role];
    const theirs = directions[this.peerRole];
    this.emit("keys", {
      send: { id, key: mine.key, salt: mine.salt },
      receive: { id, key: theirs.key, salt: theirs.salt },
      chat: { id, send: mine.chat, receive: theirs.chat },
    });
  }

  async sendHello(reply) {
    const mac = this.secret ? toBase64url(await this.mac(this.role, this.publicKey)) : null;
    this.send({ kind: "hello", version: 1, role: this.role, public_key: toBase64url(this.publicKey), mac, reply });
  }

  async mac(role, publicKey) {
    const base = await crypto.subtle.importKey("raw", this.secret, "HKDF", false, ["deriveKey"]);
    const key = await crypto.subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: encoder.encode(INFO + "auth") },
      base,
      { name: "HMAC", hash: "SHA-256", length: 256 },
      false,
      ["sign"],
    );
    return new Uint8Array(await crypto.subtle.sign("HMAC", key, concat(encoder.encode(role), new Uint8Array([0]), publicKey)));
  }

  setState(state, code) {
    if (state === "encrypted" && this.confirmed && this.state === "verified") return;
    if (state !== "verified" && state !== "encrypted") this.confirmed = false;
    this.state = state;
    this.emit("state", { state, code, safetyCode: this.safetyCode });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

// --- chat messages: [key id][12-byte random IV][AES-GCM ciphertext + tag] of UTF-8 text

export async function sealChat(chatKeys, text) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, chatKeys.send, encoder.encode(text)));
  return concat(new Uint8Array([chatKeys.id]), iv, sealed);
}

export async function openChat(chatKeys, bytes) {
  if (bytes.byteLength < 29 || bytes[0] !== chatKeys.id) return null;
  try {
    const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: bytes.subarray(1, 13) }, chatKeys.receive, bytes.subarray(13));
    return new TextDecoder().decode(plain);
  } catch {
    return null;
  }
}

// --- bytes

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

function equal(a, b) {
  if (a.byteLength !== b.byteLength) return false;
  let difference = 0;
  for (let i = 0; i < a.byteLength; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

export function toBase64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function fromBase64url(text) {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

// --- the therapist's link secrets, in this browser only (IndexedDB), by appointment id

const DATABASE = "sprechzimmer-e2ee";
const STORE = "link-secrets";

function openSecrets() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore(mode, action) {
  const database = await openSecrets();
  try {
    return await new Promise((resolve, reject) => {
      const request = action(database.transaction(STORE, mode).objectStore(STORE));
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  } finally {
    database.close();
  }
}

/** Remember the secret (base64url) of the link just minted for `appointmentId`. */
export function storeLinkSecret(appointmentId, secret) {
  return withStore("readwrite", (store) => store.put(secret, String(appointmentId)));
}

/** The secret (Uint8Array) of this appointment's link if this browser made it, else null. */
export async function loadLinkSecret(appointmentId) {
  try {
    const value = await withStore("readonly", (store) => store.get(String(appointmentId)));
    return value ? secretFromFragment(`#${SECRET_PARAMETER}=${value}`) : null;
  } catch {
    return null;
  }
}

export function forgetLinkSecret(appointmentId) {
  return withStore("readwrite", (store) => store.delete(String(appointmentId))).catch(() => {});
}
