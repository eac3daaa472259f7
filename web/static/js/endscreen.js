// The end of a call (web/pages/_end-screen.html), the same component on the client's and the
// therapist's page: why it ended, and a rejoin button where joining again can help.
import { t, tOr } from "./i18n.js";
import { ERROR } from "./protocol.js";

const $ = (id) => document.getElementById(id);

// Another tab took the seat, or the relay was full: this browser may take it back later.
const REJOINABLE = new Set([ERROR.REPLACED, ERROR.RELAY_UNAVAILABLE]);
// The same events read differently for the two: the client is told what to expect next.
const TEXTS = {
  therapist: { reasons: "ended.reason", left: "therapistCall.leftText" },
  client: { reasons: "ended.clientReason", left: "ended.clientLeftText" },
};

/** Show the end screen for `role` after the call finished as `kind` ("ended" | "left" | "fatal"). */
export function showEndScreen(role, kind, detail = {}) {
  const texts = TEXTS[role];
  const heading = $("ended-heading");
  const text = $("ended-text");
  const rejoin = $("btn-rejoin");
  $("ended").hidden = false;
  document.title = t("ended.title");
  if (kind === "ended") {
    heading.textContent = t("ended.heading");
    text.textContent = tOr(`${texts.reasons}.${detail.reason}`, `${texts.reasons}.therapist_ended`);
    rejoin.hidden = true;
  } else if (kind === "left") {
    heading.textContent = t("ended.leftHeading");
    text.textContent = t(texts.left);
    rejoin.hidden = false;
  } else {
    heading.textContent = t("ended.problemHeading");
    text.textContent = tOr(`refused.${detail.code}`, "refused.other");
    rejoin.hidden = !REJOINABLE.has(detail.code);
  }
  rejoin.addEventListener("click", () => location.reload(), { once: true });
  document.body.dataset.callEnded = kind;
  heading.focus();
}
