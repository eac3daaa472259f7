// The therapist's call page /call/{appointment_id}.
import { request, requireSignedIn, ApiError } from "./api.js";
import { CallSession } from "./call.js";
import { showCall } from "./callview.js";
import { loadLinkSecret } from "./e2ee-keys.js";
import { showEndScreen } from "./endscreen.js";
import { ready, t } from "./i18n.js";
import { browserSupported, getMedia, mediaErrorKind } from "./media.js";

const $ = (id) => document.getElementById(id);

await ready;
await requireSignedIn();
main();

async function main() {
  const raw = location.pathname.split("/")[2] || "";
  if (!/^\d{1,18}$/.test(raw)) return prepareError(t("therapistCall.notFound"));
  const id = Number(raw);
  if (!browserSupported()) {
    // the same page as the client's: which browsers work, with versions
    $("prepare").hidden = true;
    $("unsupported").hidden = false;
    return;
  }

  let appointment;
  try {
    appointment = await request("GET", `/api/therapist/appointments/${id}`);
    if (appointment.state === "ended" || appointment.state === "cancelled") {
      return prepareError(t(`therapistCall.${appointment.state}`));
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return prepareError(t("therapistCall.notFound"));
    return prepareError(t("common.networkError"));
  }

  let stream;
  try {
    stream = await getMedia();
  } catch (error) {
    return prepareError(t(`media.${mediaErrorKind(error)}`));
  }

  // The link secret, if this browser minted the link (dashboard.js); else the safety code.
  const linkSecret = await loadLinkSecret(id);
  const session = new CallSession({ appointment: id }, stream, { role: "therapist", linkSecret });
  // For browser tests and support: the live session (its peer connection) of this page.
  window.sprechzimmerCall = session;
  $("prepare").hidden = true;
  const plannedEnd = new Date(Date.parse(appointment.starts_at) + appointment.duration_minutes * 60_000);
  showCall({
    session,
    stream,
    role: "therapist",
    onFinished: finished,
    clock: { appointmentKey: `therapist-${id}`, plannedEnd: Number.isNaN(plannedEnd.getTime()) ? null : plannedEnd },
  });
  // The crisis card comes with the client's presence (`joined` or `peer`), to this page only.
  session.addEventListener("joined", (event) => showCrisisCard(event.detail.peer?.crisis_card));
  session.addEventListener("peer", (event) => showCrisisCard(event.detail.crisis_card));
  session.start();
}

function showCrisisCard(card) {
  if (!card || typeof card.location !== "string" || typeof card.phone !== "string") return;
  $("crisis-location").textContent = card.location;
  $("crisis-phone").textContent = card.phone;
  $("crisis-card").hidden = false;
}

function prepareError(text) {
  $("prepare-status").hidden = true;
  $("prepare-error").textContent = text;
}

function finished(kind, detail) {
  showEndScreen("therapist", kind, detail);
}
