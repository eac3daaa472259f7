// The therapist's own sessions per quarter (date and length: what a KV billing needs) and
// their CSV; nothing about clients is kept past the appointment.
import { request, requireSignedIn, redirectIfSignedOut } from "./api.js";
import { ready, t, locale } from "./i18n.js";

const $ = (id) => document.getElementById(id);

await ready;
const me = await requireSignedIn();
$("user-name").textContent = me.username;
$("quarter").addEventListener("change", () => show($("quarter").value));
await show(null);

async function show(quarter) {
  const query = quarter ? `?quarter=${encodeURIComponent(quarter)}` : "";
  let data;
  try {
    data = await request("GET", `/api/therapist/statistics${query}`);
  } catch (error) {
    if (!redirectIfSignedOut(error)) $("stats-error").textContent = t("common.unexpectedError");
    return;
  }
  $("stats-error").textContent = "";
  const select = $("quarter");
  if (!select.options.length) {
    for (const q of data.quarters) select.append(new Option(q, q));
  }
  select.value = data.quarter;
  $("stats-retention").textContent = t("stats.retention", { days: data.retention_days });
  $("stats-summary").textContent = t("stats.summaryText", {
    count: data.count,
    minutes: data.minutes,
    from: new Date(data.first_day).toLocaleDateString(locale),
    to: new Date(data.last_day).toLocaleDateString(locale),
  });
  const body = document.querySelector("#stats-table tbody");
  body.replaceChildren();
  for (const session of data.sessions) {
    const row = document.createElement("tr");
    const date = document.createElement("td");
    date.textContent = new Date(session.date).toLocaleDateString(locale);
    const minutes = document.createElement("td");
    minutes.className = "num";
    minutes.textContent = session.minutes;
    row.append(date, minutes);
    body.append(row);
  }
  $("stats-empty").hidden = data.sessions.length > 0;
  $("stats-csv").href = `/api/therapist/statistics.csv?quarter=${encodeURIComponent(data.quarter)}`;
}
