import { request, ApiError } from "./api.js";
import { ready, t } from "./i18n.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");
const codeForm = document.getElementById("code-form");
const codeError = document.getElementById("code-error");

// The password step's ticket for the second step (docs/api.md#two-factor-sign-in); it grants
// nothing without a code and lives five minutes.
let ticket = null;

await ready;

// The portal's button, when the operator has set up single sign-on (docs/operating.md). Without
// an answer the password form is still there.
const sso = document.getElementById("sso");
let ssoOffered = false;
request("GET", "/api/therapist/login/methods").then(
  (methods) => {
    ssoOffered = methods.sso === true;
    sso.hidden = !ssoOffered || form.hidden;
  },
  () => {},
);

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
    const answer = await request("POST", "/api/therapist/login", { username, password });
    if (!answer.second_factor) {
      location.assign("/dashboard");
      return;
    }
    ticket = answer.ticket;
    form.hidden = true;
    sso.hidden = true; // the code belongs to this password sign-in
    if (answer.second_factor === "enrol") await showEnrolment();
    codeForm.hidden = false;
    codeForm.code.focus();
  } catch (failure) {
    button.disabled = false;
    error.textContent = loginError(failure);
    form.password.select();
    form.password.focus();
  }
});

async function showEnrolment() {
  const setup = await request("POST", "/api/therapist/login/totp-setup", { ticket });
  document.getElementById("enrol-qr").src = setup.qr_svg;
  document.getElementById("enrol-secret").textContent = setup.secret;
  document.getElementById("enrol").hidden = false;
}

codeForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  codeError.textContent = "";
  const code = codeForm.code.value.trim();
  if (!code) {
    codeError.textContent = t("totp.missing");
    codeForm.code.focus();
    return;
  }
  const button = codeForm.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const answer = await request("POST", "/api/therapist/login/code", { ticket, code });
    if (answer.recovery_codes) {
      showRecoveryCodes(answer.recovery_codes);
      return;
    }
    location.assign("/dashboard");
  } catch (failure) {
    button.disabled = false;
    if (failure instanceof ApiError && failure.code === "ticket_expired") {
      // start over with the password
      codeForm.hidden = true;
      document.getElementById("enrol").hidden = true;
      form.hidden = false;
      sso.hidden = !ssoOffered;
      form.querySelector("button[type=submit]").disabled = false;
      error.textContent = t("totp.expired");
      form.password.value = "";
      form.password.focus();
      return;
    }
    codeError.textContent = codeErrorText(failure);
    codeForm.code.select();
    codeForm.code.focus();
  }
});

function showRecoveryCodes(codes) {
  codeForm.hidden = true;
  document.getElementById("enrol").hidden = true;
  const list = document.getElementById("recovery-codes");
  list.replaceChildren(
    ...codes.map((code) => {
      const item = document.createElement("li");
      item.textContent = code;
      return item;
    }),
  );
  document.getElementById("recovery").hidden = false;
  document.getElementById("btn-continue").focus();
}

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

function codeErrorText(failure) {
  if (!(failure instanceof ApiError)) return t("common.networkError");
  switch (failure.code) {
    case "invalid_code":
      return t("totp.invalid");
    case "code_used":
      return t("totp.used");
    case "rate_limited":
      return t("login.rateLimited");
    default:
      return t("common.unexpectedError");
  }
}
