// Formatting: dates, sizes, status labels and badges.

import { h } from './dom.js';

const STATUS_LABELS = {
  pending_dns: 'Pending DNS',
  issuing: 'Issuing',
  active: 'Active',
  failed: 'Failed',
  moved: 'Moved',
};

export const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

export function parseTime(value) {
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
export function timeEl(value, { mode = 'relative', prefix = '' } = {}) {
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

export function tickTimes() {
  const now = Date.now();
  for (const el of document.querySelectorAll('time[data-rel]')) {
    const date = parseTime(el.getAttribute('datetime'));
    if (date) el.textContent = (el.getAttribute('data-prefix') || '') + relative(date, now);
  }
}

export function humanSize(bytes) {
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

export function statusLabel(status) {
  return STATUS_LABELS[status] || String(status || 'Unknown');
}

export function badge(status) {
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

export function displayName(domain) {
  return domain.hostname_unicode || domain.hostname;
}

export function encodePath(path) {
  return path.split('/').map(encodeURIComponent).join('/');
}
