import { request, ApiError } from "./api.js";
import { ready, t } from "./i18n.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

await ready;

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const username = form.username.value.trim();
  const password = form.password.value;
  if (!username || !password) {
    error.textContent = t("login.missing");
    (username ? form.password : form.username).focus();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await request("POST", "/api/therapist/login", { username, password });
    location.assign("/dashboard");
  } catch (failure) {
    button.disabled = false;
    error.textContent = loginError(failure);
    form.password.select();
    form.password.focus();
  }
});

// The button stays disabled until the listener above exists: a native submit would send the
// password in the request.
document.getElementById("btn-login").disabled = false;

function loginError(failure) {
  if (!(failure instanceof ApiError)) return t("common.networkError");
  switch (failure.code) {
    case "invalid_credentials":
      return t("login.invalid");
    case "account_disabled":
      return t("login.disabled");
    case "rate_limited":
      return t("login.rateLimited");
    default:
      return t("common.unexpectedError");
  }
}
