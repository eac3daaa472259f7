// The admin pages (/admin): usage and health reports (charts are server-drawn SVG images; the
// tables say the same in numbers), accounts, API keys and the audit log. Every call is checked
// on the server (docs/api.md#admin-api-apiadmin); this page only shows what the API returns.
import { request, requireSignedIn, redirectIfSignedOut, ApiError } from "./api.js";
import { ready, t, locale } from "./i18n.js";

const $ = (id) => document.getElementById(id);

await ready;
const me = await requireSignedIn();
$("user-name").textContent = me.username;
$("add-form").addEventListener("submit", addAccount);
$("key-form").addEventListener("submit", createKey);
await refresh();

async function refresh() {
  try {
    const [usage, health, accounts, keys, audit] = await Promise.all([
      request("GET", "/api/admin/usage"),
      request("GET", "/api/admin/health"),
      request("GET", "/api/admin/therapists"),
      request("GET", "/api/admin/api-keys"),
      request("GET", "/api/admin/audit?limit=100"),
    ]);
    showUsage(usage);
    showHealth(health);
    showAccounts(accounts.therapists);
    showKeys(keys.api_keys);
    showAudit(audit.entries);
    $("admin-error").textContent = "";
  } catch (error) {
    fail(error);
  }
}

function fail(error) {
  if (redirectIfSignedOut(error)) return;
  const key = error instanceof ApiError ? `admin.error.${error.code}` : "common.networkError";
  const text = t(key);
  $("admin-error").textContent = text === key ? t("common.unexpectedError") : text;
}

function rows(tableId, data, cells) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren();
  for (const item of data) {
    const row = document.createElement("tr");
    for (const cell of cells(item)) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.append(cell);
      else td.textContent = cell ?? "";
      if (typeof cell === "number") td.className = "num";
      row.append(td);
    }
    body.append(row);
  }
}

function showUsage(usage) {
  const all = t("admin.allTherapists");
  const lines = usage.months.map((m) => [all, m.month, m.sessions, m.minutes]);
  for (const therapist of usage.therapists) {
    for (const m of therapist.months) lines.push([therapist.username, m.month, m.sessions, m.minutes]);
  }
  rows("usage-table", lines, (line) => line);
  // the charts are images: reload them so they match the table
  const stamp = Date.now();
  for (const id of ["chart-sessions", "chart-minutes", "chart-health"]) {
    const image = $(id);
    image.src = image.src.split("?")[0] + `?at=${stamp}`;
  }
}

function percent(share) {
  return share === null ? "–" : `${(share * 100).toLocaleString(locale, { maximumFractionDigits: 1 })} %`;
}

function showHealth(health) {
  rows("health-table", health.weeks, (w) => [
    w.week,
    w.joins,
    percent(w.media_share),
    w.ice_failures,
    w.reconnects,
    w.median_join_to_media_seconds === null ? "–" : w.median_join_to_media_seconds,
  ]);
}

function button(label, handler, danger = false) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  if (danger) element.classList.add("danger");
  element.addEventListener("click", handler);
  return element;
}

function actions(...buttons) {
  const span = document.createElement("span");
  span.className = "button-row";
  span.append(...buttons);
  return span;
}

function showAccounts(therapists) {
  rows("accounts-table", therapists, (account) => {
    const name = account.username;
    const own = name === me.username;
    const list = [];
    if (!own) {
      list.push(
        account.disabled
          ? button(t("admin.enable"), () => act(`/api/admin/therapists/${name}/enable`, "POST"))
          : button(t("admin.disable"), () => act(`/api/admin/therapists/${name}/disable`, "POST"), true),
      );
    }
    list.push(button(t("admin.resetPassword"), () => resetPassword(name)));
    if (!own) {
      list.push(
        button(account.admin ? t("admin.revokeAdmin") : t("admin.makeAdmin"), () =>
          act(`/api/admin/therapists/${name}/admin`, "PUT", { admin: !account.admin }),
        ),
      );
    }
    return [
      account.display_name ? `${name} (${account.display_name})` : name,
      account.disabled ? t("admin.disabled") : t("admin.active"),
      account.admin ? t("admin.roleAdmin") : t("admin.roleTherapist"),
      actions(...list),
    ];
  });
}

function showKeys(keys) {
  rows("keys-table", keys, (key) => [
    key.name,
    new Date(key.created_at).toLocaleDateString(locale),
    key.revoked_at ? t("admin.revoked") : t("admin.active"),
    key.revoked_at
      ? ""
      : actions(button(t("admin.revoke"), () => act(`/api/admin/api-keys/${key.name}`, "DELETE"), true)),
  ]);
}

function showAudit(entries) {
  rows("audit-table", entries, (entry) => [
    new Date(entry.at).toLocaleString(locale),
    entry.actor,
    t(`admin.action.${entry.action}`),
    entry.target,
  ]);
}

async function act(path, method, body) {
  try {
    await request(method, path, body);
    $("announcer").textContent = t("admin.done");
  } catch (error) {
    fail(error);
  }
  await refresh();
}

function showLink(label, url) {
  $("link-label").textContent = label;
  $("link-output").value = url;
  $("link-box").hidden = false;
  $("link-output").focus();
  $("link-output").select();
}

async function resetPassword(name) {
  try {
    const answer = await request("POST", `/api/admin/therapists/${name}/reset-password`);
    showLink(t("admin.linkFor", { name }), answer.set_password_url);
  } catch (error) {
    fail(error);
  }
  await refresh();
}

async function addAccount(event) {
  event.preventDefault();
  const username = $("new-username").value.trim();
  try {
    const answer = await request("POST", "/api/admin/therapists", { username });
    $("new-username").value = "";
    showLink(t("admin.linkFor", { name: username }), answer.set_password_url);
  } catch (error) {
    fail(error);
  }
  await refresh();
}

async function createKey(event) {
  event.preventDefault();
  const name = $("key-name").value.trim();
  try {
    const answer = await request("POST", "/api/admin/api-keys", { name });
    $("key-name").value = "";
    $("key-output").value = answer.key;
    $("key-box").hidden = false;
    $("key-output").focus();
    $("key-output").select();
  } catch (error) {
    fail(error);
  }
  await refresh();
}
