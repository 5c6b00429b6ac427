// The admin API client: the token from POST /api/v1/login lives in sessionStorage (gone with
// the tab); a 401 on any call sends the user back to the login page.
const KEY = 'ringmq.token';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(f) {
  onUnauthorized = f;
}

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

async function call(method, path, body) {
  const headers = {};
  const t = token.get();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (r.status === 204) return null;
  let data = null;
  const text = await r.text();
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!r.ok) {
    const msg = (data && data.error) || `${r.status} ${r.statusText}`;
    if (r.status === 401 && path !== '/login') {
      token.clear();
      onUnauthorized(msg);
    }
    throw new ApiError(r.status, msg);
  }
  return data;
}

export const api = {
  login: (username, password) => call('POST', '/login', { username, password }),
  stats: () => call('GET', '/stats'),
  topics: () => call('GET', '/stats/topics'),
  listeners: () => call('GET', '/listeners'),
  clients: (q) => call('GET', `/clients?${new URLSearchParams(q)}`),
  kick: (id) => call('DELETE', `/clients/${encodeURIComponent(id)}`),
  sessions: (q) => call('GET', `/sessions?${new URLSearchParams(q)}`),
  subscriptions: (q) => call('GET', `/subscriptions?${new URLSearchParams(q)}`),
  retained: (q) => call('GET', `/retained?${new URLSearchParams(q)}`),
  deleteRetained: (topic) => call('DELETE', `/retained/${encodeURIComponent(topic)}`),
  users: () => call('GET', '/users'),
  addUser: (username, password) => call('POST', '/users', { username, password }),
  setPassword: (name, password) => call('PUT', `/users/${encodeURIComponent(name)}`, { password }),
  deleteUser: (name) => call('DELETE', `/users/${encodeURIComponent(name)}`),
  acl: () => call('GET', '/acl'),
  reloadAcl: () => call('POST', '/acl/reload'),
};
