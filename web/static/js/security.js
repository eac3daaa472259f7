// The security page: turn two-factor sign-in on (QR code, first code, recovery codes shown
// once) or off (with a code). docs/api.md#two-factor-sign-in
import { request, requireSignedIn, ApiError } from "./api.js";
import { ready, t } from "./i18n.js";

const error = document.getElementById("security-error");
const status = document.getElementById("security-status");
const setupButton = document.getElementById("btn-setup");
const codeForm = document.getElementById("code-form");

// "confirm" while enrolling, "disable" while switching off
let mode = null;

await ready;
await requireSignedIn();
await showStatus();

async function showStatus() {
  const state = await request("GET", "/api/therapist/totp");
  if (state.enabled) {
    status.textContent = t("security.on", { left: state.recovery_codes_left });
    setupButton.hidden = true;
    if (!state.required) {
      mode = "disable";
      codeForm.querySelector("button").textContent = t("security.disable");
      codeForm.hidden = false;
    }
  } else {
    status.textContent = state.required ? t("security.offRequired") : t("security.off");
    setupButton.hidden = false;
  }
}

setupButton.addEventListener("click", async () => {
  error.textContent = "";
  try {
    const setup = await request("POST", "/api/therapist/totp/setup");
    document.getElementById("enrol-qr").src = setup.qr_svg;
    document.getElementById("enrol-secret").textContent = setup.secret;
    document.getElementById("enrol").hidden = false;
    setupButton.hidden = true;
    mode = "confirm";
    codeForm.hidden = false;
    codeForm.code.focus();
  } catch (failure) {
    error.textContent = failure instanceof ApiError ? t("common.unexpectedError") : t("common.networkError");
  }
});

codeForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const code = codeForm.code.value.trim();
  if (!code) {
    error.textContent = t("totp.missing");
    return;
  }
  try {
    if (mode === "confirm") {
      const answer = await request("POST", "/api/therapist/totp/confirm", { code });
      document.getElementById("enrol").hidden = true;
      codeForm.hidden = true;
      const list = document.getElementById("recovery-codes");
      list.replaceChildren(
        ...answer.recovery_codes.map((text) => {
          const item = document.createElement("li");
          item.textContent = text;
          return item;
        }),
      );
      document.getElementById("recovery").hidden = false;
      status.textContent = t("security.on", { left: answer.recovery_codes.length });
    } else {
      await request("POST", "/api/therapist/totp/disable", { code });
      codeForm.hidden = true;
      codeForm.code.value = "";
      await showStatus();
    }
  } catch (failure) {
    if (!(failure instanceof ApiError)) error.textContent = t("common.networkError");
    else if (failure.code === "code_used") error.textContent = t("totp.used");
    else if (failure.code === "rate_limited") error.textContent = t("login.rateLimited");
    else error.textContent = t("totp.invalid");
    codeForm.code.select();
  }
});
