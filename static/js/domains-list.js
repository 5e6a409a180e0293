// Domains: list view.

import { state, ui } from './state.js';
import { fieldError, fill, focusHeading, h, swap } from './dom.js';
import { badge, displayName, parseTime, timeEl } from './format.js';
import { announce } from './messages.js';
import { ApiError, report } from './api.js';
import { addDomain, checkNow, deleteDomain, loadFirstPage, loadMore } from './domains-data.js';

export function renderDomainsView() {
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

  const setError = fieldError(input, error);

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
        'A hostname under a domain you control, or a wildcard such as *.example.com. You will get the DNS record to create next.',
      ),
      error,
    ),
  );

  const list = h('div', { id: 'domain-list-region', 'aria-busy': 'true' });
  ui.view = { name: 'domains', title: 'Domains', list };
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

export function renderDomainList() {
  if (!ui.view || ui.view.name !== 'domains') return;
  const region = ui.view.list;
  region.setAttribute('aria-busy', String(!state.listLoaded && !state.listError));
  if (!state.listLoaded) {
    if (state.listError) {
      ui.view.listParts = null;
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
  let parts = ui.view.listParts;
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
    ui.view.listParts = parts;
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
