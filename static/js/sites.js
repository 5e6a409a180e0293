// Sites: the list, and creating one.

import { state, ui } from './state.js';
import { fieldError, h } from './dom.js';
import { humanSize, timeEl } from './format.js';
import { announce } from './messages.js';
import { api, ApiError, report } from './api.js';

export function renderSitesView() {
  const input = h('input', {
    id: 'new-site',
    name: 'name',
    type: 'text',
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    placeholder: 'docs',
    'data-testid': 'new-site',
    'aria-describedby': 'new-site-hint site-error',
  });
  const error = h('p', { id: 'site-error', class: 'field-error', 'data-testid': 'site-error', hidden: true });
  const button = h('button', { type: 'submit', class: 'button button-primary', 'data-testid': 'create-site' }, 'Create site');
  const setError = fieldError(input, error);

  const form = h(
    'form',
    {
      class: 'card add-domain',
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const name = input.value.trim();
        if (!name) {
          setError('Enter a name: lower-case letters, digits and "-".');
          input.focus();
          return;
        }
        button.disabled = true;
        try {
          const site = await api('/v1/sites', { method: 'POST', json: { name } });
          input.value = '';
          announce(`Created site ${site.name}.`);
          location.hash = `#/sites/${site.id}`;
        } catch (err) {
          if (err instanceof ApiError && err.status !== 401) {
            setError(err.detail);
            input.focus();
          } else {
            report(err, 'Could not create the site');
          }
        } finally {
          button.disabled = false;
        }
      },
    },
    h('h2', { class: 'card-title' }, 'Create a site'),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'new-site' }, 'Name'),
      h('div', { class: 'input-row' }, input, button),
      h('p', { id: 'new-site-hint', class: 'hint' }, 'Lower-case letters, digits and "-". Each domain serves one site.'),
      error,
    ),
  );
  const list = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted loading' }, 'Loading sites…'));
  ui.view = { name: 'sites', title: 'Sites', list };
  loadSites();
  return h(
    'section',
    { class: 'page', 'aria-labelledby': 'sites-title' },
    h(
      'div',
      { class: 'page-head' },
      h('h1', { id: 'sites-title', tabindex: '-1' }, 'Sites'),
      h(
        'p',
        { class: 'muted' },
        'Each site has its own files, published as deploys: a deploy goes live on every domain of the site at once, and any earlier one can be made live again.',
      ),
    ),
    form,
    list,
  );
}

async function loadSites() {
  const epoch = state.listEpoch;
  let content;
  try {
    const { sites } = await api('/v1/sites');
    if (epoch !== state.listEpoch) return;
    content = sitesTable(sites);
  } catch (err) {
    if (epoch !== state.listEpoch || err.status === 401) return;
    content = h('p', { class: 'card notice notice-error' }, `Could not load your sites: ${err.detail}`);
  }
  if (ui.view?.name !== 'sites') return;
  ui.view.list.setAttribute('aria-busy', 'false');
  ui.view.list.replaceChildren(content);
}

function sitesTable(sites) {
  return h(
    'div',
    { class: 'card' },
    h('h2', { class: 'card-title' }, `${sites.length} site${sites.length === 1 ? '' : 's'}`),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'files', 'data-testid': 'sites' },
        h('caption', { class: 'visually-hidden' }, 'Your sites'),
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            h('th', { scope: 'col' }, 'Name'),
            h('th', { scope: 'col', class: 'num' }, 'Domains'),
            h('th', { scope: 'col' }, 'Live deploy'),
            h('th', { scope: 'col' }, 'Created'),
          ),
        ),
        h(
          'tbody',
          null,
          sites.map((s) =>
            h(
              'tr',
              { 'data-testid': 'site-row', 'data-name': s.name, 'data-id': s.id },
              h(
                'td',
                { 'data-label': 'Name' },
                h('a', { href: `#/sites/${s.id}`, 'data-testid': 'site-link' }, s.name),
                s.default ? h('span', { class: 'muted' }, ' (default: /v1/files)') : null,
              ),
              h('td', { 'data-label': 'Domains', class: 'num' }, String(s.domains)),
              h('td', { 'data-label': 'Live deploy' }, s.live_deployment_id ? h('span', { class: 'mono' }, s.live_deployment_id.slice(-8)) : h('span', { class: 'muted' }, 'none yet')),
              h('td', { 'data-label': 'Created' }, timeEl(s.created_at)),
            ),
          ),
        ),
      ),
    ),
  );
}

// "1.2 MB in 14 files"
export function deploySize(d) {
  return `${humanSize(d.bytes)} in ${d.file_count} file${d.file_count === 1 ? '' : 's'}`;
}
