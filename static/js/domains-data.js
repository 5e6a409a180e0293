// Domains: data (loading, live refreshes, add / check / delete).

import { MAX_PAGE, PAGE_SIZE, state } from './state.js';
import { displayName, statusLabel } from './format.js';
import { announce } from './messages.js';
import { api, report } from './api.js';
import { renderDomainList } from './domains-list.js';
import { renderDetail } from './domain-detail.js';
import { confirmDialog } from './dialog.js';
import { live } from './live.js';

let listQueue = Promise.resolve();
// Serialise list operations so "Load more" and refreshes never interleave.
function queueList(task) {
  const epoch = state.listEpoch;
  const run = listQueue.then(() => (epoch === state.listEpoch ? task(epoch) : undefined));
  listQueue = run.catch(() => {});
  return run;
}

export function loadFirstPage() {
  return queueList(async (epoch) => {
    try {
      const data = await api(`/v1/domains?limit=${PAGE_SIZE}`);
      if (epoch !== state.listEpoch) return;
      state.domains = data.domains || [];
      state.nextCursor = data.next_cursor || null;
      state.listLoaded = true;
      state.listError = null;
    } catch (err) {
      if (epoch !== state.listEpoch || err.status === 401) return;
      state.listError = err;
    }
    renderDomainList();
  });
}

export function loadMore() {
  if (!state.nextCursor || state.loadingMore) return;
  state.loadingMore = true;
  renderDomainList();
  return queueList(async (epoch) => {
    try {
      const cursor = encodeURIComponent(state.nextCursor);
      const data = await api(`/v1/domains?limit=${PAGE_SIZE}&cursor=${cursor}`);
      if (epoch !== state.listEpoch) return;
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
export function refreshList() {
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
    if (epoch !== state.listEpoch) return;
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

export function forgetDomain(id) {
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
export async function refreshDomain(id, { timeline = true } = {}) {
  const epoch = state.listEpoch;
  const open = state.detail?.id === id;
  try {
    const [domain, events] = await Promise.all([
      api(`/v1/domains/${encodeURIComponent(id)}`),
      open && timeline ? api(`/v1/domains/${encodeURIComponent(id)}/events`) : null,
    ]);
    if (epoch !== state.listEpoch) return;
    if (events && state.detail?.id === id) {
      state.detail.events = events.events || [];
      state.detail.eventsError = null;
    }
    upsertDomain(domain);
  } catch (err) {
    if (epoch !== state.listEpoch) return;
    if (err.status === 404) forgetDomain(id);
    else if (open) report(err, 'Could not refresh the domain');
  }
}

export const pendingRefresh = new Map();

export function scheduleDomainRefresh(id) {
  if (pendingRefresh.has(id)) return;
  pendingRefresh.set(
    id,
    setTimeout(() => {
      pendingRefresh.delete(id);
      if (state.key) refreshDomain(id);
    }, 150),
  );
}

export async function addDomain(hostname) {
  const domain = await api('/v1/domains', { method: 'POST', json: { hostname } });
  state.domains = state.domains.filter((d) => d.id !== domain.id);
  if (!state.nextCursor) state.domains.push(domain);
  renderDomainList();
  return domain;
}

export async function checkNow(domain) {
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

export async function deleteDomain(domain) {
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
