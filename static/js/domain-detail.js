// Domain detail view.

import { state, ui } from './state.js';
import { h, swap } from './dom.js';
import { badge, dateTimeFmt, displayName, parseTime, statusLabel, timeEl } from './format.js';
import { api } from './api.js';
import { checkNow, deleteDomain } from './domains-data.js';
import {
  certificateSection,
  delegationSection,
  dnsSection,
  fact,
  foundSection,
  timelineSection,
} from './detail-sections.js';

export function renderDetailView(id) {
  const body = h(
    'div',
    { class: 'detail-body' },
    h('h1', { tabindex: '-1', 'data-focus-key': 'heading' }, 'Domain'),
    h('p', { class: 'muted loading' }, 'Loading domain…'),
  );
  const known = state.domains.find((d) => d.id === id) || (state.detail?.id === id ? state.detail.domain : null);
  state.detail = { id, domain: known || null, events: null, error: null, eventsError: null };
  ui.view = { name: 'detail', id, title: known ? displayName(known) : 'Domain', body, sig: null };
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
  const epoch = state.listEpoch;
  const enc = encodeURIComponent(id);
  const [domain, events] = await Promise.allSettled([api(`/v1/domains/${enc}`), api(`/v1/domains/${enc}/events`)]);
  if (epoch !== state.listEpoch || state.detail?.id !== id) return;
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

export function renderDetail() {
  if (!ui.view || ui.view.name !== 'detail' || !state.detail || state.detail.id !== ui.view.id) return;
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
    swap(ui.view.body, content);
    ui.view.body = content;
    return;
  }
  const sig = JSON.stringify([
    domain,
    events,
    eventsError?.detail || null,
    state.busy.has(`check:${domain.id}`),
    state.busy.has(`delete:${domain.id}`),
  ]);
  if (sig === ui.view.sig) return;
  ui.view.sig = sig;
  const content = detailBody(domain, events, eventsError);
  swap(ui.view.body, content);
  ui.view.body = content;
}

function detailBody(domain, events, eventsError) {
  const name = displayName(domain);
  const checking = state.busy.has(`check:${domain.id}`);
  const deleting = state.busy.has(`delete:${domain.id}`);
  const check = domain.check || {};
  // A wildcard names no host to open, and waits for its delegated-DCV record.
  const wildcard = domain.hostname.startsWith('*.');
  const delegation = delegationSection(domain);
  const delegationFirst = wildcard && domain.dcv_delegation && !domain.dcv_delegation.verified;

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
      wildcard
        ? null
        : h(
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
    delegationFirst ? delegation : null,
    h('section', { class: 'card' }, h('h2', { class: 'card-title' }, 'Overview'), facts),
    dnsSection(domain),
    delegationFirst ? null : delegation,
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
