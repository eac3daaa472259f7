// Typed messages between the two call pages, sent inside the end-to-end encrypted chat channel
// (call.js seals them with the chat keys like a chat line), so the relay and the server learn
// nothing of them and no signaling message is needed
// (docs/protocol.md#between-the-two-pages-screen-and-audio-only-state).
//
// A control message is its JSON after a NUL character, which no chat line can start with
// (call.js strips NUL from what is typed). Kinds:
//   {type: "state", screen: bool, audioOnly: bool}  what this page now does: sharing its screen;
//       sending no camera because the link is weak. Sent on every change and whenever the
//       channel (re)opens with keys, so a reconnect or a reload of the other page catches up.
//   {type: "stop-screen"}  the viewer asks the sharer's page to stop sharing (it does).

export const CONTROL_MARK = "\u0000";
export const CONTROL = Object.freeze({ STATE: "state", STOP_SCREEN: "stop-screen" });
const MAX_CONTROL_CHARS = 200;

/** The chat-channel text for a control message. */
export function encodeControl(message) {
  return CONTROL_MARK + JSON.stringify(message);
}

/** Strip NUL from typed text, so a chat line is never taken for a control message. */
export function chatText(text) {
  return text.replaceAll(CONTROL_MARK, "");
}

/**
 * What a received chat-channel text is: {chat: text}, {control: message} for a known and
 * well-formed control message, or {} for anything else (a newer page's kind: ignored).
 */
export function decodeChannelText(text) {
  if (!text.startsWith(CONTROL_MARK)) return { chat: text };
  if (text.length > MAX_CONTROL_CHARS) return {};
  let message;
  try {
    message = JSON.parse(text.slice(1));
  } catch {
    return {};
  }
  if (!message || typeof message !== "object") return {};
  if (message.type === CONTROL.STATE) {
    return { control: { type: CONTROL.STATE, screen: message.screen === true, audioOnly: message.audioOnly === true } };
  }
  if (message.type === CONTROL.STOP_SCREEN) return { control: { type: CONTROL.STOP_SCREEN } };
  return {};
}
