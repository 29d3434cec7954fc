// The gateway's public HTTP API (docs/api.md), as the signed-in admin.
// The token lives in this tab's sessionStorage only: never in a URL, a
// cookie or localStorage.

const TOKEN_KEY = "adtech.console.token";
let onUnauthenticated = () => {};

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function keepToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// Called with the reason whenever the API answers 401 (expired or bad token).
export function whenUnauthenticated(callback) {
  onUnauthenticated = callback;
}

// The token's claims, for display only: the gateway checks the signature.
// Null when it is not a JWT at all.
export function claimsOf(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// One call: {status, body}. Any 401 signs the tab out (with the reason);
// a network failure is answered as status 0.
export async function call(method, path, { body, query } = {}) {
  const token = storedToken();
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", cache: "no-store",
    });
  } catch (error) {
    return { status: 0, body: { error: { code: "network", message: "The gateway could not be reached" } } };
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.status === 401) {
    const message = data?.error?.message || "the token was refused";
    onUnauthenticated(message);
  }
  return { status: response.status, body: data };
}

// The body of a 2xx answer, or an ApiError for any other.
export async function ok(method, path, options) {
  const { status, body } = await call(method, path, options);
  if (status >= 200 && status < 300) return body;
  throw new ApiError(status, body?.error?.code || "unknown", body?.error?.message || `HTTP ${status}`);
}

export function errorText(status, body) {
  const error = body?.error;
  if (!error) return `HTTP ${status}`;
  return `${error.message} (${status} ${error.code})`;
}
