// Sites: the list, and creating one.

import { state, ui } from './state.js';
import { fieldError, fill, h } from './dom.js';
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
  const slugInput = h('input', {
    id: 'new-site-slug',
    name: 'slug',
    type: 'text',
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    placeholder: 'the name, if free',
    'data-testid': 'new-site-slug',
    'aria-describedby': 'new-site-slug-hint site-slug-error',
  });
  const slugError = h('p', { id: 'site-slug-error', class: 'field-error', 'data-testid': 'site-slug-error', hidden: true });
  const slugHint = h('p', { id: 'new-site-slug-hint', class: 'hint' }, slugHintText(null));
  const button = h('button', { type: 'submit', class: 'button button-primary', 'data-testid': 'create-site' }, 'Create site');
  const setError = fieldError(input, error);
  const setSlugError = fieldError(slugInput, slugError);

  const form = h(
    'form',
    {
      class: 'card add-domain',
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const name = input.value.trim();
        const slug = slugInput.value.trim();
        setSlugError(null);
        if (!name) {
          setError('Enter a name: lower-case letters, digits and "-".');
          input.focus();
          return;
        }
        setError(null);
        button.disabled = true;
        try {
          const site = await api('/v1/sites', { method: 'POST', json: slug ? { name, slug } : { name } });
          input.value = '';
          slugInput.value = '';
          announce(`Created site ${site.name}.`);
          location.hash = `#/sites/${site.id}`;
        } catch (err) {
          if (err instanceof ApiError && err.status !== 401) {
            // A slug's problems go under the slug, everything else under the name.
            const [set, field] = isSlugProblem(err) ? [setSlugError, slugInput] : [setError, input];
            set(err.detail);
            field.focus();
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
      input,
      h('p', { id: 'new-site-hint', class: 'hint' }, 'Lower-case letters, digits and "-". Each domain serves one site.'),
      error,
    ),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'new-site-slug' }, 'Slug (optional)'),
      slugInput,
      slugHint,
      slugError,
    ),
    h('div', { class: 'form-actions' }, button),
  );
  const list = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted loading' }, 'Loading sites…'));
  ui.view = { name: 'sites', title: 'Sites', list, slugHint };
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

// The API's problems with a slug (PATCH and POST /v1/sites), shown under the slug field.
export function isSlugProblem(err) {
  return err.type === '/problems/invalid-slug' || err.type === '/problems/slug-taken';
}

export function slugHintText(platformDomain) {
  return [
    'The site’s name on the platform',
    platformDomain ? [': it is served at ', h('code', null, `<slug>.${platformDomain}`)] : '',
    '. One lower-case label (letters, digits and inner "-"), unique across the platform.',
  ];
}

// The platform domain, as the API shows it in any site's platform_hostname (null without one).
function platformDomain(sites) {
  const site = sites.find((s) => s.platform_hostname && s.platform_hostname.startsWith(`${s.slug}.`));
  return site ? site.platform_hostname.slice(site.slug.length + 1) : null;
}

// The site's slug, and its platform address as a link when the platform has a platform domain.
export function siteAddress(site) {
  return h(
    'span',
    { class: 'site-address' },
    h('span', { class: 'muted' }, 'Slug '),
    h('code', { 'data-testid': 'site-slug' }, site.slug),
    site.platform_hostname
      ? [
          h('span', { class: 'sep', 'aria-hidden': 'true' }, ' · '),
          h(
            'a',
            {
              href: `https://${site.platform_hostname}/`,
              target: '_blank',
              rel: 'noopener noreferrer',
              'data-testid': 'platform-hostname',
            },
            `https://${site.platform_hostname}/`,
            h('span', { class: 'visually-hidden' }, ' (opens in a new tab)'),
          ),
        ]
      : null,
  );
}

async function loadSites() {
  const epoch = state.listEpoch;
  let content;
  try {
    const { sites } = await api('/v1/sites');
    if (epoch !== state.listEpoch) return;
    content = sitesTable(sites);
    if (ui.view?.name === 'sites') fill(ui.view.slugHint, slugHintText(platformDomain(sites)));
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
              { 'data-testid': 'site-row', 'data-name': s.name, 'data-id': s.id, 'data-slug': s.slug },
              h(
                'td',
                { 'data-label': 'Name' },
                h('a', { href: `#/sites/${s.id}`, 'data-testid': 'site-link' }, s.name),
                s.default ? h('span', { class: 'muted' }, ' (default: /v1/files)') : null,
                h('div', { class: 'hint' }, siteAddress(s)),
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
