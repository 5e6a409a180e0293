// Landlord tenant dashboard: plain ES module, no build step, no dependencies.
//
// The API key lives in sessionStorage only (never in a URL, never in localStorage) and is
// sent as `Authorization: Bearer …` on every request, including the live-update stream,
// which is read with fetch() because EventSource cannot send headers.

const KEY_STORAGE = 'landlord.apiKey';
const PAGE_SIZE = 50;
const MAX_PAGE = 1000;
const POLL_MS = 5000;
const STREAM_RETRY_MIN_MS = 1000;
const STREAM_RETRY_MAX_MS = 30000;
const UPLOAD_CONCURRENCY = 3;
const IGNORED_FILES = new Set(['.DS_Store', 'Thumbs.db', 'desktop.ini']);

const STATUS_LABELS = {
  pending_dns: 'Pending DNS',
  issuing: 'Issuing',
  active: 'Active',
  failed: 'Failed',
  moved: 'Moved',
};

// ---------------------------------------------------------------------------------------
// State

const state = {
  key: null,
  domains: [],
  nextCursor: null,
  listLoaded: false,
  listError: null,
  loadingMore: false,
  busy: new Set(), // "check:<id>" / "delete:<id>" while a request is in flight
  detail: null, // { id, domain, events, error, eventsError }
  files: null,
  usage: null,
  limits: null,
  filesError: null,
  uploads: [],
  signOutMessage: null,
};

let view = null; // the current view: { name, ...elements }
let firstRender = true;

// ---------------------------------------------------------------------------------------
// Small DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith('on') && typeof value === 'function') {
        el.addEventListener(name.slice(2).toLowerCase(), value);
      } else if (name === 'class') {
        el.className = value;
      } else if (['value', 'checked', 'disabled', 'hidden', 'multiple'].includes(name)) {
        el[name] = value;
      } else {
        el.setAttribute(name, value === true ? '' : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

// replaceChildren() would turn null into the text "null"; this skips empty slots.
function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

const $ = (sel, root = document) => root.querySelector(sel);

// Replace `oldEl` by `newEl`, keeping keyboard focus on the equivalent control
// (matched by its data-focus-key) so live updates never yank focus away.
function swap(oldEl, newEl) {
  const active = document.activeElement;
  const key = active && oldEl.contains(active) ? active.getAttribute('data-focus-key') : null;
  oldEl.replaceWith(newEl);
  if (key) {
    const target = newEl.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (target) target.focus({ preventScroll: true });
  }
}

function focusHeading() {
  const heading = $('#main h1');
  if (heading) heading.focus({ preventScroll: false });
}

// ---------------------------------------------------------------------------------------
// Formatting

const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

function parseTime(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

function relative(date, now = Date.now()) {
  const diff = date.getTime() - now;
  const abs = Math.abs(diff);
  const future = diff > 0;
  if (abs < 45_000) return future ? 'in a few seconds' : 'just now';
  const units = [
    [60_000, 'min', 60],
    [3_600_000, 'h', 24],
    [86_400_000, 'd', 365],
  ];
  for (const [ms, unit, limit] of units) {
    const n = Math.round(abs / ms);
    if (n < limit) return future ? `in ${n} ${unit}` : `${n} ${unit} ago`;
  }
  const years = Math.round(abs / (365 * 86_400_000));
  return future ? `in ${years} y` : `${years} y ago`;
}

// A <time> element whose text is kept current by the ticker below.
function timeEl(value, { mode = 'relative', prefix = '' } = {}) {
  const date = parseTime(value);
  if (!date) return h('span', { class: 'muted' }, '—');
  const abs = mode === 'date' ? dateFmt.format(date) : dateTimeFmt.format(date);
  if (mode !== 'relative') {
    return h('time', { datetime: date.toISOString(), title: dateTimeFmt.format(date) }, prefix + abs);
  }
  return h(
    'time',
    { datetime: date.toISOString(), title: abs, 'data-rel': '', 'data-prefix': prefix },
    prefix + relative(date),
  );
}

function tickTimes() {
  const now = Date.now();
  for (const el of document.querySelectorAll('time[data-rel]')) {
    const date = parseTime(el.getAttribute('datetime'));
    if (date) el.textContent = (el.getAttribute('data-prefix') || '') + relative(date, now);
  }
}

function humanSize(bytes) {
  if (!Number.isFinite(bytes)) return '—';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i += 1;
  }
  const digits = value >= 100 || Number.isInteger(value) ? 0 : 1;
  return `${value.toFixed(digits)} ${units[i]}`;
}

function statusLabel(status) {
  return STATUS_LABELS[status] || String(status || 'Unknown');
}

function badge(status) {
  const known = Object.hasOwn(STATUS_LABELS, status);
  return h(
    'span',
    {
      class: `badge badge-${known ? status : 'unknown'}`,
      'data-testid': 'status',
      'data-status': status,
    },
    statusLabel(status),
  );
}

function displayName(domain) {
  return domain.hostname_unicode || domain.hostname;
}

function encodePath(path) {
  return path.split('/').map(encodeURIComponent).join('/');
}

// ---------------------------------------------------------------------------------------
// Messages (live regions are in index.html so they exist before anything is announced)

let statusTimer = null;

function announce(message) {
  const region = $('#flash-status');
  clearTimeout(statusTimer);
  region.textContent = '';
  // A fresh text node in the next frame makes screen readers announce repeated messages.
  requestAnimationFrame(() => {
    region.textContent = message;
    statusTimer = setTimeout(() => {
      region.textContent = '';
    }, 6000);
  });
}

function showError(message) {
  const region = $('#flash-error');
  region.replaceChildren(
    h('span', { class: 'flash-text' }, message),
    h(
      'button',
      {
        type: 'button',
        class: 'button button-quiet button-small',
        'aria-label': 'Dismiss error',
        onclick: clearError,
      },
      'Dismiss',
    ),
  );
}

function clearError() {
  $('#flash-error').replaceChildren();
}

// ---------------------------------------------------------------------------------------
// API client

class ApiError extends Error {
  constructor(status, detail, title = '', type = '') {
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.detail = detail;
    this.title = title;
    this.type = type;
  }
}

function problemFrom(status, body, statusText) {
  const detail =
    (body && typeof body === 'object' && (body.detail || body.title)) ||
    (status === 413 ? 'The file is too large.' : '') ||
    `The server answered ${status}${statusText ? ` ${statusText}` : ''}.`;
  return new ApiError(status, detail, body?.title || '', body?.type || '');
}

function parseJson(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

async function api(path, { method = 'GET', json, key = state.key, signal, handle401 = true } = {}) {
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body, signal, cache: 'no-store', credentials: 'omit' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'Cannot reach the Landlord API. Check your connection and try again.');
  }
  const text = res.status === 204 ? '' : await res.text();
  const data = parseJson(text);
  if (!res.ok) {
    const err = problemFrom(res.status, data, res.statusText);
    if (res.status === 401 && handle401) unauthorized(err);
    if (res.status === 403 && err.type === '/problems/tenant-suspended') showSuspended(err);
    throw err;
  }
  return data;
}

// A suspended account: say so once, plainly, where errors go (it stays until dismissed).
function showSuspended(err) {
  const region = $('#flash-error');
  if (region.querySelector('[data-testid="suspended-banner"]')) return;
  region.replaceChildren(
    h('span', { class: 'flash-text', 'data-testid': 'suspended-banner' }, `Account suspended. ${err.detail}`),
  );
}

// Any 401 while signed in ends the session and returns to the sign-in form.
function unauthorized(err) {
  if (!state.key) return;
  signOut(`Your API key was not accepted: ${err.detail} Please sign in again.`);
}

// Errors a caller did not handle itself: 401s were handled already, aborts are silent.
function report(err, context) {
  if (!err || err.name === 'AbortError') return;
  if (err instanceof ApiError) {
    if (err.status === 401) return;
    showError(context ? `${context}: ${err.detail}` : err.detail);
  } else {
    showError(context ? `${context}: ${err.message}` : String(err.message || err));
  }
}

// ---------------------------------------------------------------------------------------
// Session

function signIn(key) {
  state.key = key;
  sessionStorage.setItem(KEY_STORAGE, key);
  state.signOutMessage = null;
  $('#nav').hidden = false;
  $('#session').hidden = false;
  live.start();
  render();
}

function resetData() {
  state.domains = [];
  state.nextCursor = null;
  state.listLoaded = false;
  state.listError = null;
  state.loadingMore = false;
  state.busy.clear();
  state.detail = null;
  state.files = null;
  state.usage = null;
  state.limits = null;
  state.filesError = null;
  for (const upload of state.uploads) upload.xhr?.abort();
  state.uploads = [];
}

function signOut(message = null) {
  state.key = null;
  sessionStorage.removeItem(KEY_STORAGE);
  live.stop();
  resetData();
  listEpoch += 1;
  state.signOutMessage = message;
  $('#nav').hidden = true;
  $('#session').hidden = true;
  clearError();
  render();
  if (!message) announce('Signed out.');
}

// ---------------------------------------------------------------------------------------
// Routing

function route() {
  const path = location.hash.replace(/^#/, '') || '/domains';
  const m = path.match(/^\/domains\/([^/?#]+)$/);
  if (m) return { name: 'detail', id: decodeURIComponent(m[1]) };
  if (path === '/files') return { name: 'files' };
  return { name: 'domains' };
}

function render() {
  const main = $('#main');
  const r = state.key ? route() : { name: 'signin' };
  for (const link of document.querySelectorAll('#nav a')) {
    const current =
      link.dataset.route === r.name || (link.dataset.route === 'domains' && r.name === 'detail');
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (r.name !== 'detail') state.detail = null;
  let content;
  if (r.name === 'signin') content = renderSignIn();
  else if (r.name === 'detail') content = renderDetailView(r.id);
  else if (r.name === 'files') content = renderFilesView();
  else content = renderDomainsView();
  main.replaceChildren(content);
  document.title = `${view.title} · Landlord`;
  if (r.name === 'signin') {
    $('#api-key').focus();
  } else if (!firstRender) {
    focusHeading();
    window.scrollTo(0, 0);
  }
  firstRender = false;
}

window.addEventListener('hashchange', () => {
  clearError();
  render();
});

// ---------------------------------------------------------------------------------------
// Sign-in view

function renderSignIn() {
  view = { name: 'signin', title: 'Sign in' };
  const input = h('input', {
    id: 'api-key',
    name: 'api-key',
    type: 'password',
    required: true,
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    'data-testid': 'api-key',
    'aria-describedby': 'api-key-hint api-key-error',
  });
  const error = h('p', {
    id: 'api-key-error',
    class: 'field-error',
    'data-testid': 'sign-in-error',
    hidden: !state.signOutMessage,
  });
  if (state.signOutMessage) {
    error.textContent = state.signOutMessage;
    input.setAttribute('aria-invalid', 'true');
  }
  const button = h('button', { type: 'submit', class: 'button button-primary', 'data-testid': 'sign-in' }, 'Sign in');
  const toggle = h(
    'button',
    {
      type: 'button',
      class: 'button button-quiet button-small',
      'aria-pressed': 'false',
      'aria-controls': 'api-key',
      onclick: () => {
        const show = input.type === 'password';
        input.type = show ? 'text' : 'password';
        toggle.setAttribute('aria-pressed', String(show));
        toggle.textContent = show ? 'Hide key' : 'Show key';
      },
    },
    'Show key',
  );

  input.addEventListener('input', () => {
    if (error.hidden) return;
    error.hidden = true;
    input.removeAttribute('aria-invalid');
  });

  function fail(message) {
    error.textContent = message;
    error.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }

  // method=post: even if this script failed to load, the key would never land in a URL.
  const form = h(
    'form',
    {
      class: 'card signin-card',
      method: 'post',
      action: '/',
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const key = input.value.trim();
        if (!key) {
          fail('Enter your API key.');
          return;
        }
        button.disabled = true;
        button.textContent = 'Signing in…';
        try {
          await api(`/v1/domains?limit=1`, { key, handle401: false });
          input.value = '';
          signIn(key);
          announce('Signed in.');
        } catch (err) {
          button.disabled = false;
          button.textContent = 'Sign in';
          fail(err instanceof ApiError ? err.detail : String(err.message || err));
        }
      },
    },
    h('h1', { tabindex: '-1' }, 'Sign in'),
    h(
      'p',
      { class: 'muted' },
      'Manage your custom domains, certificates and site files with your tenant API key.',
    ),
    h(
      'div',
      { class: 'field' },
      h('div', { class: 'label-row' }, h('label', { for: 'api-key' }, 'API key'), toggle),
      input,
      h(
        'p',
        { id: 'api-key-hint', class: 'hint' },
        'The key is kept in this browser tab only and is forgotten when you close it.',
      ),
      error,
    ),
    button,
  );
  return h('section', { class: 'signin' }, form);
}

// ---------------------------------------------------------------------------------------
// Domains: data

let listQueue = Promise.resolve();
let listEpoch = 0; // bumped on sign-out so stale responses are dropped

// Serialise list operations so "Load more" and refreshes never interleave.
function queueList(task) {
  const epoch = listEpoch;
  const run = listQueue.then(() => (epoch === listEpoch ? task(epoch) : undefined));
  listQueue = run.catch(() => {});
  return run;
}

function loadFirstPage() {
  return queueList(async (epoch) => {
    try {
      const data = await api(`/v1/domains?limit=${PAGE_SIZE}`);
      if (epoch !== listEpoch) return;
      state.domains = data.domains || [];
      state.nextCursor = data.next_cursor || null;
      state.listLoaded = true;
      state.listError = null;
    } catch (err) {
      if (epoch !== listEpoch || err.status === 401) return;
      state.listError = err;
    }
    renderDomainList();
  });
}

function loadMore() {
  if (!state.nextCursor || state.loadingMore) return;
  state.loadingMore = true;
  renderDomainList();
  return queueList(async (epoch) => {
    try {
      const cursor = encodeURIComponent(state.nextCursor);
      const data = await api(`/v1/domains?limit=${PAGE_SIZE}&cursor=${cursor}`);
      if (epoch !== listEpoch) return;
      const known = new Set(state.domains.map((d) => d.id));
      const added = (data.domains || []).filter((d) => !known.has(d.id));
      state.domains.push(...added);
      state.nextCursor = data.next_cursor || null;
      announce(`Loaded ${added.length} more domain${added.length === 1 ? '' : 's'}.`);
    } catch (err) {
      report(err, 'Could not load more domains');
    } finally {
      state.loadingMore = false;
    }
    renderDomainList();
  });
}

// Re-read everything loaded so far (polling fallback, stream reconnects).
function refreshList() {
  if (!state.listLoaded) return loadFirstPage();
  return queueList(async (epoch) => {
    const limit = Math.min(MAX_PAGE, Math.max(PAGE_SIZE, state.domains.length));
    let data;
    try {
      data = await api(`/v1/domains?limit=${limit}`);
    } catch (err) {
      if (err.status !== 401 && err.name !== 'AbortError') state.listError = err;
      renderDomainList();
      return;
    }
    if (epoch !== listEpoch) return;
    const fresh = data.domains || [];
    for (const d of fresh) noteChange(d);
    let merged = fresh;
    let cursor = data.next_cursor || null;
    if (state.domains.length > limit && fresh.length) {
      // More than one request's worth is loaded: keep the tail beyond what we re-read.
      const last = fresh[fresh.length - 1].id;
      const tail = state.domains.filter((d) => d.id > last);
      merged = fresh.concat(tail);
      if (tail.length) cursor = state.nextCursor;
    }
    state.domains = merged;
    state.nextCursor = cursor;
    state.listError = null;
    renderDomainList();
  });
}

// Announce status transitions seen through live updates or polling.
function noteChange(fresh) {
  const old =
    state.domains.find((d) => d.id === fresh.id) ||
    (state.detail?.domain?.id === fresh.id ? state.detail.domain : null);
  if (old && old.status !== fresh.status) {
    announce(`${displayName(fresh)} is now ${statusLabel(fresh.status)}.`);
  }
}

function upsertDomain(domain) {
  noteChange(domain);
  const i = state.domains.findIndex((d) => d.id === domain.id);
  if (i >= 0) {
    state.domains[i] = domain;
  } else if (state.listLoaded && !state.nextCursor) {
    // Everything is loaded, so this one belongs in the list (ids sort by creation time).
    const at = state.domains.findIndex((d) => d.id > domain.id);
    if (at < 0) state.domains.push(domain);
    else state.domains.splice(at, 0, domain);
  }
  if (state.detail?.id === domain.id) state.detail.domain = domain;
  renderDomainList();
  renderDetail();
}

function forgetDomain(id) {
  const gone = state.domains.find((d) => d.id === id) || state.detail?.domain;
  state.domains = state.domains.filter((d) => d.id !== id);
  renderDomainList();
  if (state.detail?.id === id) {
    const name = gone && gone.id === id ? displayName(gone) : 'This domain';
    announce(`${name} was deleted.`);
    location.hash = '#/domains';
  }
}

// Fetch one domain again (after a live event), and its timeline when its page is open.
async function refreshDomain(id, { timeline = true } = {}) {
  const epoch = listEpoch;
  const open = state.detail?.id === id;
  try {
    const [domain, events] = await Promise.all([
      api(`/v1/domains/${encodeURIComponent(id)}`),
      open && timeline ? api(`/v1/domains/${encodeURIComponent(id)}/events`) : null,
    ]);
    if (epoch !== listEpoch) return;
    if (events && state.detail?.id === id) {
      state.detail.events = events.events || [];
      state.detail.eventsError = null;
    }
    upsertDomain(domain);
  } catch (err) {
    if (epoch !== listEpoch) return;
    if (err.status === 404) forgetDomain(id);
    else if (open) report(err, 'Could not refresh the domain');
  }
}

const pendingRefresh = new Map();

function scheduleDomainRefresh(id) {
  if (pendingRefresh.has(id)) return;
  pendingRefresh.set(
    id,
    setTimeout(() => {
      pendingRefresh.delete(id);
      if (state.key) refreshDomain(id);
    }, 150),
  );
}

async function addDomain(hostname) {
  const domain = await api('/v1/domains', { method: 'POST', json: { hostname } });
  state.domains = state.domains.filter((d) => d.id !== domain.id);
  if (!state.nextCursor) state.domains.push(domain);
  renderDomainList();
  return domain;
}

async function checkNow(domain) {
  const busyKey = `check:${domain.id}`;
  if (state.busy.has(busyKey)) return;
  state.busy.add(busyKey);
  renderDomainList();
  renderDetail();
  announce(`Checking DNS for ${displayName(domain)}…`);
  try {
    const fresh = await api(`/v1/domains/${encodeURIComponent(domain.id)}/check`, { method: 'POST' });
    state.busy.delete(busyKey);
    if (fresh && fresh.id) upsertDomain(fresh);
    await refreshDomain(domain.id);
    announce(`DNS check requested for ${displayName(domain)}. Results appear here when it finishes.`);
    // The worker answers asynchronously; without the live stream, look again shortly.
    if (live.status !== 'live') setTimeout(() => state.key && refreshDomain(domain.id), 2500);
  } catch (err) {
    if (err.status === 404) forgetDomain(domain.id);
    else report(err, `Could not check ${displayName(domain)}`);
  } finally {
    state.busy.delete(busyKey);
    renderDomainList();
    renderDetail();
  }
}

async function deleteDomain(domain) {
  const name = displayName(domain);
  const ok = await confirmDialog({
    title: `Delete ${name}?`,
    message:
      'The domain stops being served within seconds and its certificate is removed. ' +
      'You can add it again later, but it will need a new certificate.',
    confirmLabel: 'Delete domain',
  });
  if (!ok) return false;
  const busyKey = `delete:${domain.id}`;
  state.busy.add(busyKey);
  renderDomainList();
  renderDetail();
  try {
    await api(`/v1/domains/${encodeURIComponent(domain.id)}`, { method: 'DELETE' });
    state.domains = state.domains.filter((d) => d.id !== domain.id);
    announce(`Deleted ${name}.`);
    return true;
  } catch (err) {
    if (err.status === 404) {
      state.domains = state.domains.filter((d) => d.id !== domain.id);
      announce(`${name} was already deleted.`);
      return true;
    }
    report(err, `Could not delete ${name}`);
    return false;
  } finally {
    state.busy.delete(busyKey);
    renderDomainList();
    renderDetail();
  }
}

// ---------------------------------------------------------------------------------------
// Domains: list view

function renderDomainsView() {
  const input = h('input', {
    id: 'new-hostname',
    name: 'hostname',
    type: 'text',
    inputmode: 'url',
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    placeholder: 'shop.example.com',
    'data-testid': 'new-hostname',
    'aria-describedby': 'new-hostname-hint hostname-error',
  });
  const error = h('p', {
    id: 'hostname-error',
    class: 'field-error',
    'data-testid': 'hostname-error',
    hidden: true,
  });
  const button = h('button', { type: 'submit', class: 'button button-primary', 'data-testid': 'add-domain' }, 'Add domain');

  function setError(message) {
    error.textContent = message || '';
    error.hidden = !message;
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
  input.addEventListener('input', () => {
    if (!error.hidden) setError(null);
  });

  const form = h(
    'form',
    {
      class: 'card add-domain',
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const hostname = input.value.trim();
        if (!hostname) {
          setError('Enter a hostname, for example shop.example.com.');
          input.focus();
          return;
        }
        setError(null);
        button.disabled = true;
        button.textContent = 'Adding…';
        try {
          const domain = await addDomain(hostname);
          input.value = '';
          announce(`Added ${displayName(domain)}. Create the DNS record shown on its page.`);
          input.focus();
        } catch (err) {
          if (err instanceof ApiError && err.status !== 401) {
            setError(err.detail);
            input.focus();
          } else {
            report(err, 'Could not add the domain');
          }
        } finally {
          button.disabled = false;
          button.textContent = 'Add domain';
        }
      },
    },
    h('h2', { class: 'card-title' }, 'Add a domain'),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'new-hostname' }, 'Hostname'),
      h('div', { class: 'input-row' }, input, button),
      h(
        'p',
        { id: 'new-hostname-hint', class: 'hint' },
        'A hostname under a domain you control. You will get the DNS record to create next.',
      ),
      error,
    ),
  );

  const list = h('div', { id: 'domain-list-region', 'aria-busy': 'true' });
  view = { name: 'domains', title: 'Domains', list };
  const section = h(
    'section',
    { class: 'page', 'aria-labelledby': 'domains-title' },
    h(
      'div',
      { class: 'page-head' },
      h('h1', { id: 'domains-title', tabindex: '-1' }, 'Domains'),
      h('p', { class: 'muted' }, 'Custom hostnames that serve your site over HTTPS.'),
    ),
    form,
    list,
  );
  if (state.listLoaded) renderDomainList();
  else {
    list.append(h('p', { class: 'muted loading' }, 'Loading domains…'));
    loadFirstPage();
  }
  return section;
}

function renderDomainList() {
  if (!view || view.name !== 'domains') return;
  const region = view.list;
  region.setAttribute('aria-busy', String(!state.listLoaded && !state.listError));
  if (!state.listLoaded) {
    if (state.listError) {
      view.listParts = null;
      region.replaceChildren(
        h(
          'div',
          { class: 'card notice notice-error' },
          h('p', null, `Could not load your domains: ${state.listError.detail || state.listError.message}`),
          h('button', { type: 'button', class: 'button', onclick: () => loadFirstPage() }, 'Try again'),
        ),
      );
    }
    return;
  }

  // Stable slots: the list and the "Load more" button are never detached, so keyboard
  // focus inside them survives every update.
  let parts = view.listParts;
  if (!parts) {
    parts = {
      head: h('h2', { class: 'list-title' }),
      problem: h('div'),
      empty: h(
        'p',
        { class: 'card empty', 'data-testid': 'domains-empty', hidden: true },
        'No domains yet. Add a hostname above to get its DNS instructions.',
      ),
      ul: h('ul', { class: 'domain-list', 'aria-label': 'Your domains', 'data-testid': 'domain-list' }),
      more: h(
        'button',
        { type: 'button', class: 'button load-more', 'data-testid': 'load-more', hidden: true, onclick: () => loadMore() },
        'Load more',
      ),
    };
    view.listParts = parts;
    region.replaceChildren(parts.head, parts.problem, parts.empty, parts.ul, parts.more);
  }
  const { ul, more } = parts;

  const existing = new Map([...ul.children].map((li) => [li.dataset.id, li]));
  const wanted = state.domains.map((domain) => {
    const sig = rowSignature(domain);
    const old = existing.get(domain.id);
    existing.delete(domain.id);
    if (old && old.dataset.sig === sig) return old;
    const row = domainRow(domain);
    row.dataset.sig = sig;
    if (old) swap(old, row);
    return row;
  });
  for (const [, stale] of existing) {
    if (stale.contains(document.activeElement)) focusHeading();
    stale.remove();
  }
  wanted.forEach((row, i) => {
    if (ul.children[i] !== row) ul.insertBefore(row, ul.children[i] || null);
  });

  fill(
    parts.head,
    'Your domains ',
    h('span', { class: 'count' }, state.nextCursor ? `${state.domains.length}+` : String(state.domains.length)),
  );
  fill(
    parts.problem,
    state.listError
      ? h('p', { class: 'notice notice-error' }, `Updating the list failed: ${state.listError.detail || state.listError.message}`)
      : null,
  );
  parts.empty.hidden = state.domains.length > 0;
  const hadFocus = document.activeElement === more;
  more.textContent = state.loadingMore ? 'Loading…' : 'Load more';
  if (state.loadingMore) more.setAttribute('aria-disabled', 'true');
  else more.removeAttribute('aria-disabled');
  more.hidden = !state.nextCursor;
  if (hadFocus && more.hidden) ul.lastElementChild?.querySelector('a')?.focus({ preventScroll: true });
}

function rowSignature(domain) {
  return JSON.stringify([
    domain,
    state.busy.has(`check:${domain.id}`),
    state.busy.has(`delete:${domain.id}`),
  ]);
}

function certificateSummary(cert) {
  if (!cert) return h('span', { class: 'muted' }, 'No certificate yet');
  const expiry = parseTime(cert.not_after);
  const soon = expiry && expiry.getTime() - Date.now() < 14 * 86_400_000;
  const expired = expiry && expiry.getTime() < Date.now();
  return h(
    'span',
    { class: soon ? 'cert-warning' : null },
    expired ? 'Certificate expired ' : 'Certificate expires ',
    timeEl(cert.not_after, { mode: 'date' }),
    cert.issuer ? h('span', { class: 'issuer', title: cert.issuer }, ` · ${cert.issuer}`) : null,
  );
}

function domainRow(domain) {
  const name = displayName(domain);
  const checking = state.busy.has(`check:${domain.id}`);
  const deleting = state.busy.has(`delete:${domain.id}`);
  const problemText =
    domain.status === 'active'
      ? null
      : domain.check?.problem || domain.queued?.reason || (domain.status === 'failed' ? domain.last_error : null);
  return h(
    'li',
    {
      class: 'domain-row card',
      'data-testid': 'domain-row',
      'data-hostname': domain.hostname,
      'data-id': domain.id,
    },
    h(
      'div',
      { class: 'domain-main' },
      h(
        'div',
        { class: 'domain-title' },
        h(
          'a',
          {
            class: 'domain-name',
            href: `#/domains/${encodeURIComponent(domain.id)}`,
            'data-testid': 'domain-link',
            'data-focus-key': `link:${domain.id}`,
          },
          name,
        ),
        badge(domain.status),
      ),
      name !== domain.hostname ? h('p', { class: 'ascii mono' }, domain.hostname) : null,
      h(
        'p',
        { class: 'domain-meta' },
        certificateSummary(domain.certificate),
        h('span', { class: 'sep', 'aria-hidden': 'true' }, ' · '),
        domain.check?.checked_at
          ? h('span', null, 'Checked ', timeEl(domain.check.checked_at))
          : h('span', { class: 'muted' }, 'Not checked yet'),
      ),
      problemText ? h('p', { class: 'row-problem' }, problemText) : null,
    ),
    h(
      'div',
      { class: 'row-actions' },
      h(
        'button',
        {
          type: 'button',
          class: 'button button-small',
          'data-testid': 'check-now',
          'data-focus-key': `check:${domain.id}`,
          'aria-label': `Check DNS now for ${name}`,
          'aria-disabled': checking ? 'true' : null,
          onclick: () => checkNow(domain),
        },
        checking ? 'Checking…' : 'Check DNS now',
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'button button-small button-danger',
          'data-testid': 'delete-domain',
          'data-focus-key': `delete:${domain.id}`,
          'aria-label': `Delete ${name}`,
          'aria-disabled': deleting ? 'true' : null,
          onclick: async () => {
            if (deleting) return;
            if (await deleteDomain(domain)) focusHeading();
          },
        },
        deleting ? 'Deleting…' : 'Delete',
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------
// Domain detail view

function renderDetailView(id) {
  const body = h(
    'div',
    { class: 'detail-body' },
    h('h1', { tabindex: '-1', 'data-focus-key': 'heading' }, 'Domain'),
    h('p', { class: 'muted loading' }, 'Loading domain…'),
  );
  const known = state.domains.find((d) => d.id === id) || (state.detail?.id === id ? state.detail.domain : null);
  state.detail = { id, domain: known || null, events: null, error: null, eventsError: null };
  view = { name: 'detail', id, title: known ? displayName(known) : 'Domain', body, sig: null };
  const section = h(
    'section',
    { class: 'page' },
    h('p', { class: 'back' }, h('a', { href: '#/domains', 'data-testid': 'back' }, '← All domains')),
    body,
  );
  if (known) renderDetail();
  loadDetail(id);
  return section;
}

async function loadDetail(id) {
  const epoch = listEpoch;
  const enc = encodeURIComponent(id);
  const [domain, events] = await Promise.allSettled([api(`/v1/domains/${enc}`), api(`/v1/domains/${enc}/events`)]);
  if (epoch !== listEpoch || state.detail?.id !== id) return;
  if (domain.status === 'fulfilled') {
    state.detail.domain = domain.value;
    state.detail.error = null;
    const i = state.domains.findIndex((d) => d.id === id);
    if (i >= 0) state.domains[i] = domain.value;
    document.title = `${displayName(domain.value)} · Landlord`;
  } else {
    state.detail.error = domain.reason;
  }
  if (events.status === 'fulfilled') {
    state.detail.events = events.value.events || [];
    state.detail.eventsError = null;
  } else {
    state.detail.eventsError = events.reason;
  }
  renderDetail();
}

function renderDetail() {
  if (!view || view.name !== 'detail' || !state.detail || state.detail.id !== view.id) return;
  const { domain, events, error, eventsError } = state.detail;
  if (!domain) {
    if (!error || error.status === 401) return;
    const content = h(
      'div',
      { class: 'detail-body' },
      h('h1', { tabindex: '-1', 'data-focus-key': 'heading' }, error.status === 404 ? 'Domain not found' : 'Could not load the domain'),
      h('p', { class: 'notice notice-error' }, error.detail || error.message),
      h('p', null, h('a', { href: '#/domains' }, 'Back to your domains')),
    );
    swap(view.body, content);
    view.body = content;
    return;
  }
  const sig = JSON.stringify([
    domain,
    events,
    eventsError?.detail || null,
    state.busy.has(`check:${domain.id}`),
    state.busy.has(`delete:${domain.id}`),
  ]);
  if (sig === view.sig) return;
  view.sig = sig;
  const content = detailBody(domain, events, eventsError);
  swap(view.body, content);
  view.body = content;
}

function detailBody(domain, events, eventsError) {
  const name = displayName(domain);
  const checking = state.busy.has(`check:${domain.id}`);
  const deleting = state.busy.has(`delete:${domain.id}`);
  const check = domain.check || {};

  const header = h(
    'div',
    { class: 'detail-head' },
    h(
      'div',
      { class: 'detail-title' },
      h('h1', { tabindex: '-1', 'data-testid': 'detail-hostname', 'data-focus-key': 'heading' }, name),
      badge(domain.status),
    ),
    name !== domain.hostname ? h('p', { class: 'ascii mono' }, `ASCII form: ${domain.hostname}`) : null,
    h(
      'div',
      { class: 'detail-actions' },
      h(
        'a',
        {
          class: 'button',
          href: `https://${domain.hostname}/`,
          target: '_blank',
          rel: 'noopener noreferrer',
          'data-testid': 'open-site',
          'data-focus-key': 'open',
        },
        `Open https://${name}/`,
        h('span', { class: 'visually-hidden' }, ' (opens in a new tab)'),
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'button',
          'data-testid': 'check-now',
          'data-focus-key': 'check',
          'aria-disabled': checking ? 'true' : null,
          onclick: () => checkNow(domain),
        },
        checking ? 'Checking…' : 'Check DNS now',
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'button button-danger',
          'data-testid': 'delete-domain',
          'data-focus-key': 'delete',
          'aria-disabled': deleting ? 'true' : null,
          onclick: async () => {
            if (deleting) return;
            if (await deleteDomain(domain)) location.hash = '#/domains';
          },
        },
        deleting ? 'Deleting…' : 'Delete domain',
      ),
    ),
  );

  const alerts = [];
  if (check.problem) {
    alerts.push(
      h(
        'div',
        { class: 'callout callout-warning', 'data-testid': 'dns-problem-box' },
        h('h2', { class: 'callout-title' }, 'DNS problem'),
        h('p', { 'data-testid': 'dns-problem' }, check.problem),
      ),
    );
  }
  if (domain.queued) {
    alerts.push(
      h(
        'div',
        { class: 'callout callout-warning', 'data-testid': 'queued-box' },
        h('h2', { class: 'callout-title' }, 'Queued'),
        h('p', { 'data-testid': 'queued-reason' }, domain.queued.reason),
      ),
    );
  }
  if (domain.last_error) {
    alerts.push(
      h(
        'div',
        { class: 'callout callout-error' },
        h('h2', { class: 'callout-title' }, 'Last error'),
        h('p', { 'data-testid': 'last-error' }, domain.last_error),
      ),
    );
  }

  const nextLabel = domain.status === 'active' ? 'Next check' : 'Next attempt';
  const next = parseTime(domain.next_attempt_at);
  const facts = h(
    'dl',
    { class: 'facts' },
    fact('Status', h('span', null, statusDescription(domain.status))),
    fact(
      'Last check',
      check.checked_at ? timeEl(check.checked_at) : h('span', { class: 'muted' }, 'Not checked yet'),
    ),
    fact(
      nextLabel,
      next
        ? h(
            'span',
            { 'data-testid': 'next-attempt' },
            next.getTime() <= Date.now() ? 'Due now' : timeEl(domain.next_attempt_at),
            h('span', { class: 'muted' }, ` (${dateTimeFmt.format(next)})`),
          )
        : h('span', { class: 'muted' }, '—'),
    ),
    fact('Added', timeEl(domain.created_at, { mode: 'absolute' })),
  );

  return h(
    'div',
    { class: 'detail-body' },
    header,
    alerts,
    h('section', { class: 'card' }, h('h2', { class: 'card-title' }, 'Overview'), facts),
    dnsSection(domain),
    foundSection(check),
    certificateSection(domain.certificate),
    timelineSection(events, eventsError),
  );
}

function statusDescription(status) {
  switch (status) {
    case 'pending_dns':
      return 'Waiting for DNS to point at us. We re-check automatically.';
    case 'issuing':
      return 'DNS is verified; a certificate is being obtained.';
    case 'active':
      return 'Served over HTTPS with a valid certificate. Renewals happen automatically.';
    case 'failed':
      return 'Certificate issuance failed. We retry with a longer delay.';
    case 'moved':
      return 'DNS no longer points at us, so the certificate is not renewed.';
    default:
      return statusLabel(status);
  }
}

function fact(label, value) {
  return h('div', { class: 'fact' }, h('dt', null, label), h('dd', null, value));
}

function copyButton(value, label) {
  const button = h(
    'button',
    {
      type: 'button',
      class: 'button button-small copy',
      'data-testid': 'copy-value',
      'data-focus-key': `copy:${label}:${value}`,
      'aria-label': `Copy ${label}`,
      onclick: async () => {
        const ok = await copyText(value);
        button.focus({ preventScroll: true });
        if (ok) {
          button.textContent = 'Copied';
          announce(`Copied ${value} to the clipboard.`);
          setTimeout(() => {
            button.textContent = 'Copy';
          }, 2000);
        } else {
          const cell = button.closest('td')?.querySelector('code');
          if (cell) {
            const range = document.createRange();
            range.selectNodeContents(cell);
            const selection = getSelection();
            selection.removeAllRanges();
            selection.addRange(range);
          }
          showError('Copying is not allowed here. The value is selected: press Ctrl+C (⌘C) to copy it.');
        }
      },
    },
    'Copy',
  );
  return button;
}

async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the legacy path
  }
  const area = h('textarea', { readonly: true, 'aria-hidden': 'true', class: 'clipboard-helper' });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

function recordsTable(records, { caption, testid }) {
  return h(
    'table',
    { class: 'records', 'data-testid': testid },
    h('caption', { class: 'visually-hidden' }, caption),
    h(
      'thead',
      null,
      h('tr', null, h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Value')),
    ),
    h(
      'tbody',
      null,
      records.map((r) =>
        h(
          'tr',
          { 'data-type': r.type },
          h('td', { 'data-label': 'Type' }, h('span', { class: 'rr-type' }, r.type)),
          h('td', { 'data-label': 'Name' }, h('code', null, r.name)),
          h(
            'td',
            { 'data-label': 'Value' },
            h('div', { class: 'value-cell' }, h('code', null, r.value), copyButton(r.value, `${r.type} value ${r.value}`)),
          ),
        ),
      ),
    ),
  );
}

function dnsSection(domain) {
  const dns = domain.dns || {};
  const alternatives = Array.isArray(dns.alternatives) ? dns.alternatives : [];
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'dns-title' },
    h('h2', { id: 'dns-title', class: 'card-title' }, 'DNS record to create'),
    h('p', { class: 'muted' }, 'At your DNS provider, create this record for the hostname:'),
    recordsTable([{ type: dns.type || 'CNAME', name: dns.name || domain.hostname, value: dns.value || '' }], {
      caption: 'DNS record to create',
      testid: 'dns-records',
    }),
    dns.shared_target_accepted
      ? h(
          'p',
          { class: 'hint', 'data-testid': 'shared-target-note' },
          'This domain was registered before each domain had a target of its own: a CNAME to the shared target keeps working. Move it to the value above when convenient; a stale record then cannot be used by anyone else.',
        )
      : null,
    alternatives.length
      ? [
          h('h3', { class: 'subhead' }, 'Alternative: address records'),
          h(
            'p',
            { class: 'muted' },
            'If your provider cannot create a CNAME here (for example at the zone apex), create these A/AAAA records instead — and no other address records for this name.',
          ),
          recordsTable(alternatives, { caption: 'Alternative address records', testid: 'dns-alternatives' }),
          domain.ownership && !domain.ownership.verified
            ? [
                h(
                  'p',
                  { class: 'muted' },
                  'Address records can point anyone’s name at us, so with them, also prove the hostname is yours with this TXT record (it can go once the domain is active):',
                ),
                recordsTable([domain.ownership], { caption: 'Ownership record', testid: 'ownership-record' }),
              ]
            : null,
        ]
      : null,
  );
}

function foundSection(check) {
  const found = check.found;
  let content;
  if (!check.checked_at && !found) {
    content = h('p', { class: 'muted' }, 'DNS has not been checked yet.');
  } else if (!found || typeof found !== 'object') {
    content = h('p', { class: 'muted' }, 'No answer was recorded.');
  } else {
    const rows = [];
    const labels = { cname: 'CNAME', a: 'A', aaaa: 'AAAA' };
    for (const key of ['cname', 'a', 'aaaa']) {
      if (!(key in found)) continue;
      const values = Array.isArray(found[key]) ? found[key] : [found[key]];
      rows.push(
        fact(
          labels[key],
          values.length
            ? h('ul', { class: 'plain-list' }, values.map((v) => h('li', null, h('code', null, String(v)))))
            : h('span', { class: 'muted' }, 'none'),
        ),
      );
    }
    for (const [key, value] of Object.entries(found)) {
      if (key in labels) continue;
      rows.push(fact(key, h('span', null, typeof value === 'string' ? value : JSON.stringify(value))));
    }
    content = h('dl', { class: 'facts', 'data-testid': 'dns-found' }, rows);
  }
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'found-title' },
    h('h2', { id: 'found-title', class: 'card-title' }, 'What DNS answered'),
    check.checked_at ? h('p', { class: 'muted' }, 'At the last check, ', timeEl(check.checked_at), ':') : null,
    content,
  );
}

function certificateSection(cert) {
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'cert-title', 'data-testid': 'certificate' },
    h('h2', { id: 'cert-title', class: 'card-title' }, 'Certificate'),
    cert
      ? h(
          'dl',
          { class: 'facts' },
          fact('Issuer', h('span', { class: 'break' }, cert.issuer || '—')),
          fact('Serial', h('code', { class: 'break' }, cert.serial || '—')),
          fact('Valid from', timeEl(cert.not_before, { mode: 'absolute' })),
          fact(
            'Expires',
            h('span', null, timeEl(cert.not_after, { mode: 'absolute' }), ' (', timeEl(cert.not_after), ')'),
          ),
          fact('Renews', h('span', null, timeEl(cert.renew_at, { mode: 'absolute' }), ' (', timeEl(cert.renew_at), ')')),
          cert.renewal_window
            ? fact(
                'CA renewal window',
                h(
                  'span',
                  { 'data-testid': 'renewal-window' },
                  timeEl(cert.renewal_window.start, { mode: 'absolute' }),
                  ' – ',
                  timeEl(cert.renewal_window.end, { mode: 'absolute' }),
                  cert.renewal_window.explanation_url
                    ? h(
                        'span',
                        null,
                        ' (',
                        h('a', { href: cert.renewal_window.explanation_url, rel: 'noopener noreferrer' }, 'why'),
                        ')',
                      )
                    : null,
                ),
              )
            : null,
        )
      : h('p', { class: 'muted' }, 'No certificate yet. One is requested as soon as DNS points at us.'),
  );
}

function timelineSection(events, eventsError) {
  let content;
  if (eventsError && eventsError.status !== 401) {
    content = h('p', { class: 'notice notice-error' }, `Could not load the timeline: ${eventsError.detail}`);
  } else if (!events) {
    content = h('p', { class: 'muted' }, 'Loading timeline…');
  } else if (!events.length) {
    content = h('p', { class: 'muted' }, 'No events yet.');
  }
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'timeline-title' },
    h('h2', { id: 'timeline-title', class: 'card-title' }, 'Timeline'),
    content,
    h(
      'ol',
      { class: 'timeline', 'data-testid': 'timeline', 'aria-label': 'Events, newest first', hidden: !events?.length },
      (events || []).map((e) =>
        h(
          'li',
          { class: 'timeline-item', 'data-kind': e.kind },
          h('div', { class: 'timeline-meta' }, timeEl(e.at, { mode: 'absolute' }), h('span', { class: 'kind' }, e.kind)),
          h('p', { class: 'timeline-message' }, e.message),
        ),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------
// Files

function renderFilesView() {
  const fileInput = h('input', {
    id: 'file-input',
    type: 'file',
    multiple: true,
    class: 'visually-hidden',
    'data-testid': 'file-input',
  });
  const folderInput = h('input', {
    id: 'folder-input',
    type: 'file',
    class: 'visually-hidden',
    'data-testid': 'folder-input',
  });
  folderInput.webkitdirectory = true;
  folderInput.setAttribute('webkitdirectory', '');
  const strip = h('input', { id: 'strip-top', type: 'checkbox', checked: true, 'data-testid': 'strip-top' });

  fileInput.addEventListener('change', () => {
    const picked = [...fileInput.files].map((file) => ({ file, path: file.name }));
    fileInput.value = '';
    startUploads(picked, false);
  });
  folderInput.addEventListener('change', () => {
    const picked = [...folderInput.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
    folderInput.value = '';
    startUploads(picked, true);
  });

  const drop = h(
    'div',
    { class: 'dropzone', 'data-testid': 'drop-zone' },
    h('p', { class: 'dropzone-title' }, 'Drag files or a folder here'),
    h('p', { class: 'muted' }, 'or'),
    h(
      'div',
      { class: 'picker-row' },
      fileInput,
      h('label', { for: 'file-input', class: 'button button-primary' }, 'Choose files'),
      folderInput,
      h('label', { for: 'folder-input', class: 'button' }, 'Choose folder'),
    ),
  );
  let depth = 0;
  drop.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth += 1;
    drop.classList.add('dragging');
  });
  drop.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  drop.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) drop.classList.remove('dragging');
  });
  drop.addEventListener('drop', async (e) => {
    e.preventDefault();
    depth = 0;
    drop.classList.remove('dragging');
    try {
      const { items, fromFolder } = await droppedFiles(e.dataTransfer);
      startUploads(items, fromFolder);
    } catch (err) {
      report(err, 'Could not read the dropped files');
    }
  });

  const usage = h('div', { class: 'card usage', 'data-testid': 'usage' }, h('p', { class: 'muted' }, 'Loading usage…'));
  const uploads = h('div', { class: 'uploads' });
  const files = h('div', { class: 'files-region', 'aria-busy': 'true' }, h('p', { class: 'muted loading' }, 'Loading files…'));
  view = { name: 'files', title: 'Files', usage, uploads, files, strip };

  const section = h(
    'section',
    { class: 'page', 'aria-labelledby': 'files-title' },
    h(
      'div',
      { class: 'page-head' },
      h('h1', { id: 'files-title', tabindex: '-1' }, 'Files'),
      h(
        'p',
        { class: 'muted' },
        'Your static site, served on every active domain. ',
        h('code', null, '/'),
        ' serves ',
        h('code', null, 'index.html'),
        '.',
      ),
    ),
    usage,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'upload-title' },
      h('h2', { id: 'upload-title', class: 'card-title' }, 'Upload'),
      drop,
      h(
        'div',
        { class: 'checkbox' },
        strip,
        h(
          'label',
          { for: 'strip-top' },
          'Drop the common top folder (',
          h('code', null, 'site/index.html'),
          ' becomes ',
          h('code', null, 'index.html'),
          ')',
        ),
      ),
      uploads,
    ),
    h('section', { class: 'card', 'aria-labelledby': 'files-list-title' }, h('h2', { id: 'files-list-title', class: 'card-title', tabindex: '-1' }, 'Your files'), files),
  );
  renderUploads();
  if (state.files) renderFiles();
  loadFiles();
  return section;
}

function hasFiles(event) {
  return [...(event.dataTransfer?.types || [])].includes('Files');
}

// Read a drop, walking directories. Entries must be taken synchronously, before any await.
async function droppedFiles(dataTransfer) {
  const entries = [];
  const plain = [];
  for (const item of dataTransfer.items || []) {
    if (item.kind !== 'file') continue;
    const entry = typeof item.webkitGetAsEntry === 'function' ? item.webkitGetAsEntry() : null;
    if (entry) entries.push(entry);
    else {
      const file = item.getAsFile();
      if (file) plain.push({ file, path: file.name });
    }
  }
  if (!entries.length && !plain.length) {
    for (const file of dataTransfer.files || []) plain.push({ file, path: file.name });
  }
  const items = [...plain];
  let fromFolder = false;
  for (const entry of entries) {
    if (entry.isDirectory) fromFolder = true;
    await walkEntry(entry, items);
  }
  return { items, fromFolder };
}

async function walkEntry(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, path: entry.fullPath.replace(/^\/+/, '') || file.name });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      // readEntries returns at most ~100 entries per call; keep reading until empty.
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walkEntry(child, out);
    }
  }
}

function stripCommonTop(items) {
  if (!items.length) return items;
  const tops = new Set(items.map((i) => (i.path.includes('/') ? i.path.split('/')[0] : null)));
  if (tops.size !== 1 || tops.has(null)) return items;
  const [top] = tops;
  return items.map((i) => ({ ...i, path: i.path.slice(top.length + 1) }));
}

function startUploads(picked, fromFolder) {
  let items = picked.filter((i) => !IGNORED_FILES.has(i.path.split('/').pop()));
  if (!items.length) {
    if (picked.length) announce('Nothing to upload: only system files were selected.');
    return;
  }
  if (fromFolder && view?.strip?.checked) items = stripCommonTop(items);
  // A new batch replaces finished rows; rows still in flight stay.
  state.uploads = state.uploads.filter((u) => u.state === 'queued' || u.state === 'uploading');
  const max = state.usage?.max_file_bytes;
  const batch = items.map((i) => ({
    id: crypto.randomUUID(),
    file: i.file,
    path: i.path,
    size: i.file.size,
    state: 'queued',
    progress: 0,
    error: null,
    xhr: null,
  }));
  for (const u of batch) {
    if (max && u.size > max) {
      u.state = 'failed';
      u.error = `The file is ${humanSize(u.size)}; the limit is ${humanSize(max)} per file.`;
    }
  }
  state.uploads.push(...batch);
  renderUploads();
  announce(`Uploading ${batch.length} file${batch.length === 1 ? '' : 's'}…`);
  runUploads(batch);
}

async function runUploads(batch) {
  const queue = batch.filter((u) => u.state === 'queued');
  const epoch = listEpoch;
  async function worker() {
    while (queue.length) {
      if (epoch !== listEpoch) return;
      const upload = queue.shift();
      upload.state = 'uploading';
      updateUploadRow(upload);
      try {
        await putFile(upload, () => updateUploadRow(upload));
        upload.state = 'done';
        upload.progress = 1;
      } catch (err) {
        if (err.name === 'AbortError' || epoch !== listEpoch) return;
        upload.state = 'failed';
        upload.error = err.detail || err.message;
      }
      updateUploadRow(upload);
    }
  }
  await Promise.all(Array.from({ length: Math.min(UPLOAD_CONCURRENCY, queue.length) }, worker));
  if (epoch !== listEpoch) return;
  const done = batch.filter((u) => u.state === 'done').length;
  const failed = batch.filter((u) => u.state === 'failed').length;
  renderUploads();
  const files = `file${batch.length === 1 ? '' : 's'}`;
  if (failed) {
    showError(`Uploaded ${done} of ${batch.length} ${files}; ${failed} failed. The upload list says why.`);
  } else {
    announce(`Uploaded ${done} of ${batch.length} ${files}.`);
  }
  await loadFiles();
}

// XMLHttpRequest rather than fetch: it reports upload progress.
function putFile(upload, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    upload.xhr = xhr;
    xhr.open('PUT', `/v1/files/${encodePath(upload.path)}`);
    xhr.setRequestHeader('Authorization', `Bearer ${state.key}`);
    xhr.setRequestHeader('Accept', 'application/json');
    if (upload.file.type) xhr.setRequestHeader('Content-Type', upload.file.type);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable && e.total) {
        upload.progress = e.loaded / e.total;
        onProgress();
      }
    });
    xhr.addEventListener('load', () => {
      upload.xhr = null;
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve();
        return;
      }
      const err = problemFrom(xhr.status, parseJson(xhr.responseText), xhr.statusText);
      if (xhr.status === 401) unauthorized(err);
      reject(err);
    });
    xhr.addEventListener('error', () => {
      upload.xhr = null;
      reject(new ApiError(0, 'The upload was interrupted (network error or the server closed the connection).'));
    });
    xhr.addEventListener('abort', () => {
      upload.xhr = null;
      reject(new DOMException('Upload aborted', 'AbortError'));
    });
    xhr.send(upload.file);
  });
}

function uploadStateText(u) {
  switch (u.state) {
    case 'queued':
      return 'Waiting';
    case 'uploading':
      return `Uploading ${Math.round(u.progress * 100)}%`;
    case 'done':
      return 'Uploaded';
    default:
      return `Failed: ${u.error}`;
  }
}

function uploadRow(u) {
  return h(
    'li',
    { class: `upload upload-${u.state}`, 'data-testid': 'upload-row', 'data-path': u.path, 'data-state': u.state, 'data-upload': u.id },
    h('span', { class: 'upload-path mono' }, u.path),
    h('span', { class: 'upload-size muted' }, humanSize(u.size)),
    h('progress', { max: '100', value: String(Math.round(u.progress * 100)), 'aria-label': `Progress of ${u.path}` }),
    h('span', { class: 'upload-state', 'data-testid': 'upload-state' }, uploadStateText(u)),
  );
}

function renderUploads() {
  if (!view || view.name !== 'files') return;
  if (!state.uploads.length) {
    view.uploads.replaceChildren();
    return;
  }
  const clear = state.uploads.every((u) => u.state === 'done' || u.state === 'failed')
    ? h(
        'button',
        {
          type: 'button',
          class: 'button button-quiet button-small',
          onclick: () => {
            state.uploads = [];
            renderUploads();
          },
        },
        'Clear list',
      )
    : null;
  view.uploads.replaceChildren(
    h('div', { class: 'uploads-head' }, h('h3', { class: 'subhead' }, 'Uploads'), clear),
    h('ul', { class: 'upload-list', 'data-testid': 'upload-list' }, state.uploads.map(uploadRow)),
  );
}

function updateUploadRow(u) {
  if (!view || view.name !== 'files') return;
  const old = view.uploads.querySelector(`[data-upload="${u.id}"]`);
  if (old) old.replaceWith(uploadRow(u));
  else renderUploads();
}

async function loadFiles() {
  const epoch = listEpoch;
  try {
    // Every page (the listing is paginated; the tenant's file limit bounds the pages).
    let data = await api('/v1/files?limit=1000');
    const files = [...(data.files || [])];
    while (data.next_cursor && epoch === listEpoch) {
      data = await api(`/v1/files?limit=1000&cursor=${encodeURIComponent(data.next_cursor)}`);
      files.push(...(data.files || []));
    }
    const limits = await api('/v1/limits').catch(() => null);
    if (epoch !== listEpoch) return;
    state.files = files.sort((a, b) => a.path.localeCompare(b.path));
    state.usage = data.usage || null;
    state.limits = limits;
    state.filesError = null;
  } catch (err) {
    if (epoch !== listEpoch || err.status === 401) return;
    state.filesError = err;
  }
  renderFiles();
}

function renderFiles() {
  if (!view || view.name !== 'files') return;
  renderUsage();
  const region = view.files;
  region.setAttribute('aria-busy', 'false');
  if (!state.files) {
    if (state.filesError) {
      region.replaceChildren(
        h('p', { class: 'notice notice-error' }, `Could not load your files: ${state.filesError.detail}`),
        h('button', { type: 'button', class: 'button', onclick: () => loadFiles() }, 'Try again'),
      );
    }
    return;
  }
  if (!state.files.length) {
    region.replaceChildren(h('p', { class: 'muted', 'data-testid': 'files-empty' }, 'No files yet. Upload an index.html to get started.'));
    return;
  }
  const active = document.activeElement;
  const focusKey = active && region.contains(active) ? active.getAttribute('data-focus-key') : null;
  const table = h(
    'table',
    { class: 'files', 'data-testid': 'files' },
    h('caption', { class: 'visually-hidden' }, 'Your files'),
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        h('th', { scope: 'col' }, 'Path'),
        h('th', { scope: 'col', class: 'num' }, 'Size'),
        h('th', { scope: 'col' }, 'Type'),
        h('th', { scope: 'col' }, 'Updated'),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')),
      ),
    ),
    h(
      'tbody',
      null,
      state.files.map((f) =>
        h(
          'tr',
          { 'data-testid': 'file-row', 'data-path': f.path },
          h('td', { 'data-label': 'Path' }, h('span', { class: 'mono break' }, `/${f.path}`)),
          h('td', { 'data-label': 'Size', class: 'num', title: `${f.size} bytes` }, humanSize(f.size)),
          h('td', { 'data-label': 'Type' }, h('span', { class: 'mono muted break' }, f.content_type)),
          h('td', { 'data-label': 'Updated' }, timeEl(f.updated_at)),
          h(
            'td',
            { class: 'actions' },
            h(
              'button',
              {
                type: 'button',
                class: 'button button-small button-danger',
                'data-testid': 'delete-file',
                'data-focus-key': `delete-file:${f.path}`,
                'aria-label': `Delete /${f.path}`,
                onclick: () => deleteFile(f),
              },
              'Delete',
            ),
          ),
        ),
      ),
    ),
  );
  region.replaceChildren(
    h('p', { class: 'muted' }, `${state.files.length} file${state.files.length === 1 ? '' : 's'}`),
    h('div', { class: 'table-wrap' }, table),
  );
  if (focusKey) region.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus({ preventScroll: true });
}

function renderUsage() {
  const el = view.usage;
  const u = state.usage;
  if (!u) {
    if (state.filesError) el.replaceChildren(h('p', { class: 'muted' }, 'Usage unavailable.'));
    return;
  }
  const ratio = u.quota_bytes > 0 ? Math.min(1, u.used_bytes / u.quota_bytes) : 0;
  const pct = Math.round(ratio * 1000) / 10;
  const level = ratio >= 0.95 ? 'full' : ratio >= 0.8 ? 'high' : 'ok';
  fill(
    el,
    h(
      'div',
      { class: 'usage-head' },
      h('h2', { class: 'card-title' }, 'Storage and limits'),
      h(
        'p',
        { class: 'usage-text', 'data-testid': 'usage-text' },
        h('strong', null, humanSize(u.used_bytes)),
        ` of ${humanSize(u.quota_bytes)} used`,
      ),
    ),
    h(
      'div',
      {
        class: `usage-bar usage-${level}`,
        role: 'progressbar',
        'aria-label': 'Storage used',
        'aria-valuemin': '0',
        'aria-valuemax': '100',
        'aria-valuenow': String(pct),
        'aria-valuetext': `${humanSize(u.used_bytes)} of ${humanSize(u.quota_bytes)} used (${pct}%)`,
      },
      usageFill(ratio),
    ),
    u.max_file_bytes ? h('p', { class: 'hint' }, `Each file can be up to ${humanSize(u.max_file_bytes)}.`) : null,
    limitsList(state.limits),
  );
}

// The account's limits beside what it uses (GET /v1/limits).
function limitsList(l) {
  if (!l) return null;
  const count = (a, noun) => `${a.used.toLocaleString()} of ${a.limit.toLocaleString()} ${noun}`;
  const rows = [
    ['Domains', count(l.domains, 'domains')],
    ['Files', count(l.files, 'files')],
    ['Live update streams', count(l.event_streams, 'open')],
    ['API requests', l.api_requests ? `${l.api_requests.limit.toLocaleString()} per ${l.api_requests.window_seconds} s` : 'unlimited'],
    ['"Check now"', `once per ${l.check_interval_seconds} s per domain`],
  ];
  return h(
    'dl',
    { class: 'limits', 'data-testid': 'limits' },
    rows.flatMap(([term, value]) => [h('dt', null, term), h('dd', null, value)]),
  );
}

// Width through CSSOM rather than a style attribute, which a strict CSP would block.
function usageFill(ratio) {
  const fill = h('span', { class: 'usage-fill' });
  fill.style.width = `${ratio * 100}%`;
  return fill;
}

async function deleteFile(file) {
  const ok = await confirmDialog({
    title: `Delete /${file.path}?`,
    message: 'The file disappears from every domain within seconds.',
    confirmLabel: 'Delete file',
  });
  if (!ok) return;
  try {
    await api(`/v1/files/${encodePath(file.path)}`, { method: 'DELETE' });
    announce(`Deleted /${file.path}.`);
  } catch (err) {
    if (err.status === 404) announce(`/${file.path} was already deleted.`);
    else report(err, `Could not delete /${file.path}`);
  }
  state.files = state.files?.filter((f) => f.path !== file.path) || null;
  const heading = $('#files-list-title');
  if (heading && view?.files?.contains(document.activeElement)) heading.focus();
  renderFiles();
  await loadFiles();
}

// ---------------------------------------------------------------------------------------
// Confirmation dialog (a <dialog> so it is testable and styled; Esc cancels)

function confirmDialog({ title, message, confirmLabel = 'Delete' }) {
  const opener = document.activeElement;
  if (typeof HTMLDialogElement !== 'function') {
    return Promise.resolve(window.confirm(`${title}\n\n${message}`));
  }
  return new Promise((resolve) => {
    const cancel = h('button', { type: 'submit', value: 'cancel', class: 'button', 'data-testid': 'confirm-cancel', autofocus: true }, 'Cancel');
    const confirm = h('button', { type: 'submit', value: 'confirm', class: 'button button-danger-solid', 'data-testid': 'confirm-ok' }, confirmLabel);
    const dialog = h(
      'dialog',
      { class: 'dialog', 'aria-labelledby': 'dialog-title', 'aria-describedby': 'dialog-message', 'data-testid': 'confirm-dialog' },
      h(
        'form',
        { method: 'dialog' },
        h('h2', { id: 'dialog-title' }, title),
        h('p', { id: 'dialog-message' }, message),
        h('div', { class: 'dialog-actions' }, cancel, confirm),
      ),
    );
    const openerKey = opener?.getAttribute?.('data-focus-key');
    dialog.addEventListener('close', () => {
      const ok = dialog.returnValue === 'confirm';
      dialog.remove();
      // The opener may have been re-rendered by a live update meanwhile: find its twin.
      const target =
        opener && opener.isConnected
          ? opener
          : openerKey && document.querySelector(`[data-focus-key="${CSS.escape(openerKey)}"]`);
      if (target) target.focus({ preventScroll: true });
      resolve(ok);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

// ---------------------------------------------------------------------------------------
// Live updates: an SSE stream read with fetch(), falling back to polling.

const live = {
  status: 'off',
  ctrl: null,
  retryMs: STREAM_RETRY_MIN_MS,
  retryTimer: null,
  pollTimer: null,
  openedAt: 0,

  start() {
    this.stop();
    this.retryMs = STREAM_RETRY_MIN_MS;
    this.connect();
  },

  stop() {
    this.ctrl?.abort();
    this.ctrl = null;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.stopPolling();
    for (const timer of pendingRefresh.values()) clearTimeout(timer);
    pendingRefresh.clear();
    this.setStatus('off');
  },

  setStatus(status) {
    this.status = status;
    const el = $('#live-indicator');
    if (!el) return;
    el.dataset.state = status;
    el.textContent = { live: 'Live', connecting: 'Connecting…', polling: 'Refreshing every 5 s', off: 'Offline' }[status];
    el.title =
      status === 'live'
        ? 'Changes appear as they happen.'
        : status === 'polling'
          ? 'The live connection is unavailable; the page refreshes every 5 seconds and keeps trying to reconnect.'
          : '';
  },

  async connect() {
    const key = state.key;
    if (!key) return;
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    if (this.status !== 'polling') this.setStatus('connecting');
    try {
      const res = await fetch('/v1/events', {
        headers: { Authorization: `Bearer ${key}`, Accept: 'text/event-stream' },
        signal: ctrl.signal,
        cache: 'no-store',
        credentials: 'omit',
      });
      if (res.status === 401) {
        unauthorized(problemFrom(401, parseJson(await res.text()), res.statusText));
        return;
      }
      const type = res.headers.get('content-type') || '';
      if (!res.ok || !res.body || !type.includes('text/event-stream')) {
        res.body?.cancel().catch(() => {});
        throw new Error(`event stream unavailable (${res.status})`);
      }
      this.opened();
      await readEventStream(res.body, (event, data) => this.dispatch(event, data));
    } catch {
      // Fall through: network errors, aborts and odd responses all end up below.
    }
    if (ctrl.signal.aborted || this.ctrl !== ctrl || !state.key) return;
    this.failed();
  },

  opened() {
    this.openedAt = Date.now();
    this.stopPolling();
    this.setStatus('live');
    // Catch up on anything missed while disconnected.
    refreshVisible();
  },

  failed() {
    this.ctrl = null;
    if (this.openedAt && Date.now() - this.openedAt > 30_000) this.retryMs = STREAM_RETRY_MIN_MS;
    this.openedAt = 0;
    this.setStatus('polling');
    this.startPolling();
    const delay = this.retryMs * (0.8 + Math.random() * 0.4);
    this.retryMs = Math.min(this.retryMs * 2, STREAM_RETRY_MAX_MS);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  },

  startPolling() {
    if (this.pollTimer) return;
    this.pollTimer = setInterval(() => {
      if (!document.hidden && state.key) refreshVisible();
    }, POLL_MS);
  },

  stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  },

  dispatch(event, data) {
    let payload;
    try {
      payload = JSON.parse(data);
    } catch {
      return;
    }
    if (!payload || typeof payload !== 'object') return;
    if (event === 'domain' && typeof payload.id === 'string') {
      if (payload.kind === 'deleted') forgetDomain(payload.id);
      else scheduleDomainRefresh(payload.id);
    } else if (event === 'timeline' && typeof payload.domain_id === 'string') {
      scheduleDomainRefresh(payload.domain_id);
    } else if (event === 'resync') {
      // Changes may have been missed: re-read what is on screen.
      refreshVisible();
    }
    // Anything else ("ready", future event types) is ignored.
  },
};

// Parse text/event-stream frames: "field: value" lines, events end at a blank line.
async function readEventStream(body, onEvent) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let event = '';
  let data = [];
  const line = (text) => {
    if (text === '') {
      if (data.length) onEvent(event || 'message', data.join('\n'));
      event = '';
      data = [];
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      // A trailing "\r" may be half of "\r\n": keep it for the next chunk.
      const carry = buffer.endsWith('\r') ? '\r' : '';
      const lines = (carry ? buffer.slice(0, -1) : buffer).split(/\r\n|\r|\n/);
      buffer = lines.pop() + carry;
      for (const l of lines) line(l);
    }
  } finally {
    reader.releaseLock();
  }
}

// Refresh whatever the current page shows (polling and reconnects).
function refreshVisible() {
  if (!state.key) return;
  if (state.listLoaded) refreshList();
  else if (view?.name === 'domains' && state.listError) loadFirstPage();
  if (view?.name === 'detail' && state.detail) refreshDomain(state.detail.id);
}

// A file dropped outside the drop zone must not make the browser navigate away.
for (const type of ['dragover', 'drop']) {
  window.addEventListener(type, (e) => {
    if (hasFiles(e) && !e.defaultPrevented) {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = 'none';
    }
  });
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && state.key && live.status === 'polling') refreshVisible();
});

// ---------------------------------------------------------------------------------------
// Start

$('#sign-out').addEventListener('click', () => signOut());
setInterval(tickTimes, 30_000);

const saved = sessionStorage.getItem(KEY_STORAGE);
if (saved) {
  signIn(saved);
} else {
  render();
}
