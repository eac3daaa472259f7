// The signaling protocol's constants (docs/protocol.md), defined once for every page.
// The server defines them in Python: signaling/ws_messages.py, signaling/ws_endpoint.py,
// signaling/consultations.py and sfu/chat_bridge.py. tests/web/test_protocol_constants.py reads
// both and fails if a value differs or either side lacks one, so keep this file to plain
// `export const NAME = value;` lines (a number, a string, or Object.freeze of strings).

export const PROTOCOL_VERSION = 1;

// WebSocket close codes (RFC 6455 §7.4: 4000–4999 are the application's own).
export const CLOSE_GOING_AWAY = 1001; // the server is restarting
export const CLOSE_INTERNAL = 1011;
export const CLOSE_UNAUTHORIZED = 4001;
export const CLOSE_REFUSED = 4003;
export const CLOSE_ENDED = 4004;
export const CLOSE_JOIN_TIMEOUT = 4008;
export const CLOSE_REPLACED = 4009;
export const CLOSE_RATE_LIMITED = 4029;

// The `code` of an `error` message.
export const ERROR = Object.freeze({
  BAD_MESSAGE: "bad_message",
  INVALID_OFFER: "invalid_offer",
  UNAUTHORIZED: "unauthorized",
  USED: "used",
  EXPIRED: "expired",
  CANCELLED: "cancelled",
  REPLACED: "replaced",
  RATE_LIMITED: "rate_limited",
  JOIN_TIMEOUT: "join_timeout",
  RELAY_UNAVAILABLE: "relay_unavailable",
  STORAGE_UNAVAILABLE: "storage_unavailable",
  SHUTTING_DOWN: "shutting_down",
  INTERNAL: "internal",
});

// The `reason` of a `peer` message with state `gone`: the other side said `leave` (the leave
// button, the quick exit), or its socket or connection dropped.
export const GONE_LEFT = "left";
export const GONE_LOST = "lost";

// The `reason` of an `ended` message that means "the server restarts; join again".
export const SHUTDOWN = "shutdown";

// What the server accepts in one message; a larger one is refused as bad_message.
export const MAX_SDP_BYTES = 32768;
export const MAX_CANDIDATE_BYTES = 1024;
export const MAX_E2EE_BYTES = 4096;
export const MAX_TOKEN_CHARS = 128;

// The in-call chat: a pre-negotiated data channel that the relay bridges between the legs
// without reading it; it refuses larger messages and more than a burst, then so many a second.
export const CHAT_CHANNEL_LABEL = "chat";
export const CHAT_CHANNEL_ID = 0;
export const CHAT_MAX_MESSAGE_BYTES = 16384;
export const CHAT_BURST = 20;
export const CHAT_PER_SECOND = 5;
// The page's own cap on a chat message, in UTF-16 units (String.length). Sealed, a message is
// at most 3 UTF-8 bytes a unit plus 29 bytes of key id, IV and tag: 6029 < 16384, with room.
export const CHAT_MAX_CHARS = 2000;
