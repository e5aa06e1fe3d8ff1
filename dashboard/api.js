// The REST API as the dashboard uses it: the key, JSON and blob requests, errors with the
// server's detail, the server's clock.

const KEY_ITEM = "camcount-key";
const SENT_IN = new Set(["body", "query", "path"]);
const unauthorizedListeners = new Set();
let serverOffsetMs = 0;

// The key arrives in the link's fragment (#key=..., never sent to any server) and is kept in
// this tab's session storage only; the fragment is wiped so it does not linger in history.
export function takeKeyFromLink() {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromLink = params.get("key");
  if (fromLink) {
    sessionStorage.setItem(KEY_ITEM, fromLink.trim());
    history.replaceState(null, "", location.pathname + location.search);
  }
}

export function storedKey() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

export function setKey(key) {
  sessionStorage.setItem(KEY_ITEM, key.trim());
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_ITEM);
}

export function onUnauthorized(listener) {
  unauthorizedListeners.add(listener);
}

/** Now on the server's clock: ages ("5 min ago") stay right on a viewer whose clock is off. */
export function serverNowMs() {
  return Date.now() + serverOffsetMs;
}

export class ApiError extends Error {
  constructor(status, detail, path) {
    super(typeof detail === "string" ? detail : `${path}: HTTP ${status}`);
    this.status = status;
    this.detail = detail;
    this.path = path;
  }

  /** FastAPI's 422 detail: [{loc: ["body", "url"], msg}], as field -> messages. */
  fieldErrors() {
    const fields = new Map();
    if (!Array.isArray(this.detail)) return fields;
    for (const error of this.detail) {
      // ["body", "url"], ["query", "from"]: the field is what follows where it was sent.
      const loc = error.loc || [];
      const [field = "", ...where] = SENT_IN.has(loc[0]) ? loc.slice(1) : loc;
      // pydantic prefixes a validator's own message with its error type: noise on a form.
      const text = String(error.msg).replace(/^(Value|Assertion) error, /, "");
      const message = where.length ? `${where.join(".")}: ${text}` : text;
      fields.set(String(field), [...(fields.get(String(field)) || []), message]);
    }
    return fields;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A 429 is waited out (Retry-After) a few times: a burst of chart loads must not break the page.
export async function request(method, path, { body, accept = "application/json" } = {}) {
  const headers = { Accept: accept, Authorization: `Bearer ${storedKey()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    // The Date header counts whole seconds: a difference under two is no skew worth fixing.
    const skew = Date.parse(response.headers.get("Date") || "") - Date.now();
    if (!Number.isNaN(skew)) serverOffsetMs = Math.abs(skew) < 2000 ? 0 : skew;
    if (response.status === 429 && attempt < 3) {
      await sleep(1000 * Number(response.headers.get("Retry-After") || 1));
      continue;
    }
    if (response.ok) return response;
    let detail = null;
    try {
      detail = (await response.json()).detail;
    } catch {
      detail = null;
    }
    if (response.status === 401) unauthorizedListeners.forEach((listener) => listener(detail));
    throw new ApiError(response.status, detail, path);
  }
}

export async function getJSON(path) {
  return (await request("GET", path)).json();
}

export async function sendJSON(method, path, body) {
  const response = await request(method, path, { body });
  return response.status === 204 ? null : response.json();
}

export async function getBlob(path, accept) {
  return (await request("GET", path, { accept })).blob();
}
