// The one-time set-password link (/set-password#<token>): the token is in the fragment, which
// the browser never sends with the page request; it is posted once with the new password and
// then removed from the address bar.
import { ready, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const token = location.hash.slice(1);
history.replaceState(null, "", location.pathname + location.search);

await ready;
if (!token) {
  $("set-error").textContent = t("setPassword.invalid");
  $("set-form").hidden = true;
}
$("set-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const password = $("new-password").value;
  if (password.length < 8) {
    $("set-error").textContent = t("setPassword.tooShort");
    return;
  }
  if (password !== $("repeat-password").value) {
    $("set-error").textContent = t("setPassword.mismatch");
    return;
  }
  let response;
  try {
    response = await fetch("/api/set-password", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ token, password }),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    $("set-error").textContent = t("common.networkError");
    return;
  }
  if (response.status === 404) {
    $("set-error").textContent = t("setPassword.invalid");
    return;
  }
  if (!response.ok) {
    $("set-error").textContent = t("common.unexpectedError");
    return;
  }
  const answer = await response.json();
  $("set-error").textContent = "";
  $("set-form").hidden = true;
  $("set-done").textContent = t("setPassword.done", { username: answer.username });
  const link = document.createElement("a");
  link.href = "/login";
  link.textContent = t("setPassword.toLogin");
  $("set-done").append(" ", link);
});
