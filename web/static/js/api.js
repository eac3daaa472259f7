// fetch() wrappers for the therapist API (docs/api.md): JSON in and out, the CSRF token on
// every state change, and a redirect to /login when the session is gone.

let csrfToken = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "http_" + response.status, error.message);
  }
  return data;
}

/** The signed-in therapist, or a redirect to /login. Also fetches the CSRF token. */
export async function requireSignedIn() {
  try {
    const me = await request("GET", "/api/therapist/me");
    csrfToken = me.csrf_token;
    return me;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      location.replace("/login");
      return new Promise(() => {});
    }
    throw error;
  }
}

export function setCsrfToken(token) {
  csrfToken = token;
}

/** On 401 from any later call: the session ended meanwhile. */
export function redirectIfSignedOut(error) {
  if (error instanceof ApiError && error.status === 401) {
    location.replace("/login");
    return true;
  }
  return false;
}
