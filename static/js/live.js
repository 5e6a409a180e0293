// Live updates: an SSE stream read with fetch(), falling back to polling.

import { POLL_MS, state, STREAM_RETRY_MAX_MS, STREAM_RETRY_MIN_MS, ui } from './state.js';
import { $ } from './dom.js';
import { parseJson, problemFrom, unauthorized } from './api.js';
import {
  forgetDomain,
  loadFirstPage,
  pendingRefresh,
  refreshDomain,
  refreshList,
  scheduleDomainRefresh,
} from './domains-data.js';

export const live = {
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
export function refreshVisible() {
  if (!state.key) return;
  if (state.listLoaded) refreshList();
  else if (ui.view?.name === 'domains' && state.listError) loadFirstPage();
  if (ui.view?.name === 'detail' && state.detail) refreshDomain(state.detail.id);
}
