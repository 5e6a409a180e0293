// One site: its domains and canonical hostname, deploying a folder or an archive, and its
// deploys (activate any of them: a rollback is one click).

import { IGNORED_FILES, state, ui } from './state.js';
import { fieldError, fill, h } from './dom.js';
import { badge, displayName, humanSize, timeEl } from './format.js';
import { announce, showError } from './messages.js';
import { api, ApiError, report, send } from './api.js';
import { dropZone } from './dropzone.js';
import { confirmDialog } from './dialog.js';
import { stripCommonTop } from './uploads.js';
import { ARCHIVE_NAME, packTar } from './tar.js';
import { deploySize, isSlugProblem, siteAddress } from './sites.js';

const ACTIVATING_POLL_MS = 1000;

export function renderSiteView(id) {
  const parts = {
    head: h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'Site'), h('p', { class: 'muted loading' }, 'Loading site…')),
    address: addressCard(),
    domains: h('section', { class: 'card', 'data-testid': 'site-domains' }),
    deploy: h('section', { class: 'card', 'aria-labelledby': 'deploy-title' }),
    progress: h('div', { class: 'uploads', 'data-testid': 'deploy-progress' }),
    deploys: h('section', { class: 'card', 'aria-labelledby': 'deploys-title', 'data-testid': 'deploys' }),
    danger: h('div'),
  };
  ui.view = { name: 'site', id, title: 'Site', parts, timer: null };
  state.site = { id, site: null, deployments: null, domains: null, busy: false };
  const live = h('input', { id: 'deploy-live', type: 'checkbox', checked: true, 'data-testid': 'deploy-live' });
  const strip = h('input', { id: 'deploy-strip', type: 'checkbox', checked: true, 'data-testid': 'deploy-strip' });
  parts.live = live;
  parts.strip = strip;
  fill(
    parts.deploy,
    h('h2', { id: 'deploy-title', class: 'card-title' }, 'Deploy'),
    h(
      'p',
      { class: 'muted' },
      'A folder (or its files) becomes the whole site, replacing the live deploy at once; a ',
      h('code', null, '.tar'),
      ', ',
      h('code', null, '.tar.gz'),
      ' or ',
      h('code', null, '.tar.zst'),
      ' archive is deployed as it is. ',
      h('code', null, '_redirects'),
      ', ',
      h('code', null, '_headers'),
      ' and ',
      h('code', null, '404.html'),
      ' work as on Netlify.',
    ),
    dropZone({ prefix: 'deploy-', title: 'Drag a folder or an archive here', filesLabel: 'Choose files or archive', onPick: deployPicked }),
    h('div', { class: 'checkbox' }, live, h('label', { for: 'deploy-live' }, 'Make it live (otherwise it is kept, to activate later)')),
    h(
      'div',
      { class: 'checkbox' },
      strip,
      h('label', { for: 'deploy-strip' }, 'Drop the common top folder (', h('code', null, 'site/index.html'), ' becomes ', h('code', null, 'index.html'), ')'),
    ),
    parts.progress,
  );
  loadSite(id);
  return h(
    'section',
    { class: 'page' },
    h('p', { class: 'back' }, h('a', { href: '#/sites', 'data-testid': 'back' }, '← All sites')),
    parts.head,
    parts.address.card,
    parts.domains,
    parts.deploy,
    parts.deploys,
    parts.danger,
  );
}

function current(id) {
  return ui.view?.name === 'site' && ui.view.id === id && state.site?.id === id;
}

async function allDomains() {
  const domains = [];
  let cursor = null;
  do {
    const page = await api(`/v1/domains?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    domains.push(...(page.domains || []));
    cursor = page.next_cursor;
  } while (cursor);
  return domains;
}

async function loadSite(id) {
  const epoch = state.listEpoch;
  const enc = encodeURIComponent(id);
  try {
    const [site, deploys, domains] = await Promise.all([
      api(`/v1/sites/${enc}`),
      api(`/v1/sites/${enc}/deployments`),
      allDomains(),
    ]);
    if (epoch !== state.listEpoch || !current(id)) return;
    Object.assign(state.site, { site, deployments: deploys.deployments, domains });
  } catch (err) {
    if (epoch !== state.listEpoch || !current(id) || err.status === 401) return;
    fill(
      ui.view.parts.head,
      h('h1', { tabindex: '-1' }, 'Site'),
      h('p', { class: 'notice notice-error', 'data-testid': 'site-error' }, `Could not load the site: ${err.detail}`),
    );
    return;
  }
  renderSite();
}

// Reload the deploys while one is going live (waiting for its compressed bodies).
function watchActivating() {
  const view = ui.view;
  clearTimeout(view.timer);
  if (!state.site.deployments?.some((d) => d.activating)) return;
  view.timer = setTimeout(async () => {
    if (!current(view.id)) return;
    await loadSite(view.id);
  }, ACTIVATING_POLL_MS);
}

function renderSite() {
  const { site, deployments, domains } = state.site;
  const { parts } = ui.view;
  document.title = `${site.name} · Landlord`;
  ui.view.title = site.name;
  fill(
    parts.head,
    h('h1', { tabindex: '-1', 'data-testid': 'site-name' }, site.name),
    h('p', { class: 'muted' }, site.default ? 'Your default site: what /v1/files and the Files page change.' : ['Created ', timeEl(site.created_at)]),
  );
  renderAddress(site);
  renderDomains(site, domains);
  renderDeploys(site, deployments);
  fill(
    parts.danger,
    site.default
      ? null
      : h(
          'section',
          { class: 'card danger' },
          h('h2', { class: 'card-title' }, 'Delete this site'),
          h('p', { class: 'muted' }, 'Its deploys are deleted with it. Move its domains to another site first.'),
          h('button', { type: 'button', class: 'button button-danger', 'data-testid': 'delete-site', onclick: () => deleteSite(site) }, 'Delete site'),
        ),
  );
  watchActivating();
}

// The slug and platform address. Built once per view (renderSite runs again on every
// reload), so a slug being typed and its error survive the reloads.
function addressCard() {
  const input = h('input', {
    id: 'site-slug',
    name: 'slug',
    type: 'text',
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    'data-testid': 'site-slug-input',
    'aria-describedby': 'site-slug-hint site-slug-error',
  });
  const error = h('p', { id: 'site-slug-error', class: 'field-error', 'data-testid': 'site-slug-error', hidden: true });
  const button = h('button', { type: 'submit', class: 'button', 'data-testid': 'site-slug-submit' }, 'Change slug');
  const setError = fieldError(input, error);
  const shown = h('p', { class: 'site-address-line' });
  const address = { input, button, setError, shown, value: null };
  address.card = h(
    'section',
    { class: 'card', 'aria-labelledby': 'address-title', 'data-testid': 'site-address', hidden: true },
    h('h2', { id: 'address-title', class: 'card-title' }, 'Platform address'),
    shown,
    h(
      'form',
      { class: 'field', novalidate: true, onsubmit: (e) => changeSlug(e, address) },
      h('label', { for: 'site-slug' }, 'Slug'),
      h('div', { class: 'input-row' }, input, button),
      h(
        'p',
        { id: 'site-slug-hint', class: 'hint' },
        'One lower-case label (letters, digits and inner "-"), unique across the platform. Changing it moves the platform address: the old one stops serving.',
      ),
      error,
    ),
  );
  return address;
}

function renderAddress(site) {
  const address = ui.view.parts.address;
  address.card.hidden = false;
  fill(
    address.shown,
    site.platform_hostname
      ? 'Besides its domains, the site is served at its platform address. '
      : 'This platform has no platform domain: the site is served on its domains only. ',
    siteAddress(site),
  );
  // Refresh the field unless it holds something the tenant typed.
  if (address.value === null || address.input.value.trim() === address.value) address.input.value = site.slug;
  address.value = site.slug;
}

async function changeSlug(event, address) {
  event.preventDefault();
  const { site } = state.site;
  if (!site || address.button.disabled) return;
  const slug = address.input.value.trim();
  if (!slug) {
    address.setError('Enter a slug: lower-case letters, digits and inner "-".');
    address.input.focus();
    return;
  }
  if (slug === site.slug) {
    address.setError(null);
    announce(`The slug is already ${slug}.`);
    return;
  }
  address.setError(null);
  address.button.disabled = true;
  try {
    const updated = await api(`/v1/sites/${encodeURIComponent(site.id)}`, { method: 'PATCH', json: { slug } });
    announce(
      updated.platform_hostname
        ? `The slug is now ${updated.slug}: the site is served at ${updated.platform_hostname}.`
        : `The slug is now ${updated.slug}.`,
    );
  } catch (err) {
    if (err instanceof ApiError && err.status !== 401) {
      address.setError(isSlugProblem(err) ? err.detail : `Could not change the slug: ${err.detail}`);
      address.input.focus();
    } else {
      report(err, 'Could not change the slug');
    }
    return;
  } finally {
    address.button.disabled = false;
  }
  await loadSite(site.id);
}

function renderDomains(site, domains) {
  const mine = domains.filter((d) => d.site_id === site.id);
  const others = domains.filter((d) => d.site_id !== site.id);
  const move = h(
    'select',
    { id: 'move-domain', 'data-testid': 'move-domain' },
    h('option', { value: '' }, 'Choose a domain…'),
    others.map((d) => h('option', { value: d.id }, displayName(d))),
  );
  const canonical = h(
    'select',
    { id: 'canonical', 'data-testid': 'canonical' },
    h('option', { value: '' }, 'None: every domain serves the site'),
    mine.map((d) => h('option', { value: d.hostname, selected: d.hostname === site.canonical_hostname }, displayName(d))),
  );
  fill(
    ui.view.parts.domains,
    h('h2', { class: 'card-title' }, 'Domains'),
    mine.length
      ? h(
          'ul',
          { class: 'site-domains' },
          mine.map((d) =>
            h(
              'li',
              { 'data-testid': 'site-domain', 'data-hostname': d.hostname },
              h('a', { href: `#/domains/${d.id}` }, displayName(d)),
              ' ',
              badge(d.status),
            ),
          ),
        )
      : h('p', { class: 'muted', 'data-testid': 'site-no-domains' }, 'No domain serves this site yet.'),
    others.length
      ? h(
          'form',
          { class: 'field', onsubmit: (e) => moveDomain(e, move.value) },
          h('label', { for: 'move-domain' }, 'Serve another of your domains from this site'),
          h('div', { class: 'input-row' }, move, h('button', { type: 'submit', class: 'button', 'data-testid': 'move-domain-submit' }, 'Move here')),
        )
      : null,
    mine.length
      ? h(
          'form',
          { class: 'field', onsubmit: (e) => setCanonical(e, canonical.value) },
          h('label', { for: 'canonical' }, 'Canonical hostname'),
          h('div', { class: 'input-row' }, canonical, h('button', { type: 'submit', class: 'button', 'data-testid': 'canonical-submit' }, 'Save')),
          h('p', { class: 'hint' }, 'The site’s other domains redirect to it (308), once it has a certificate.'),
        )
      : null,
  );
}

async function moveDomain(event, domainId) {
  event.preventDefault();
  if (!domainId) return;
  const { site } = state.site;
  try {
    const domain = await api(`/v1/domains/${encodeURIComponent(domainId)}`, { method: 'PATCH', json: { site_id: site.id } });
    announce(`${displayName(domain)} now serves ${site.name}.`);
  } catch (err) {
    report(err, 'Could not move the domain');
  }
  await loadSite(site.id);
}

async function setCanonical(event, hostname) {
  event.preventDefault();
  const { site } = state.site;
  try {
    await api(`/v1/sites/${encodeURIComponent(site.id)}`, { method: 'PATCH', json: { canonical_hostname: hostname || null } });
    announce(hostname ? `The site’s other domains now redirect to ${hostname}.` : 'No canonical hostname: every domain serves the site.');
  } catch (err) {
    report(err, 'Could not set the canonical hostname');
  }
  await loadSite(site.id);
}

function deployState(d) {
  if (d.live) return h('span', { class: 'badge badge-active', 'data-testid': 'deploy-state', 'data-state': 'live' }, 'Live');
  if (d.activating) {
    return h(
      'span',
      { class: 'badge badge-issuing', 'data-testid': 'deploy-state', 'data-state': 'activating' },
      `Going live: compressing ${d.compressing} file${d.compressing === 1 ? '' : 's'}`,
    );
  }
  return h('span', { class: 'muted', 'data-testid': 'deploy-state', 'data-state': 'kept' }, 'Kept');
}

function renderDeploys(site, deployments) {
  const liveIndex = deployments.findIndex((d) => d.live);
  const rows = deployments.map((d, i) =>
    h(
      'tr',
      { 'data-testid': 'deploy-row', 'data-id': d.id, 'data-live': String(d.live) },
      h('td', { 'data-label': 'Deploy' }, h('span', { class: 'mono', title: d.id }, d.id.slice(-8))),
      h('td', { 'data-label': 'Made' }, timeEl(d.created_at), h('span', { class: 'muted' }, ` · ${d.source}${d.created_by ? ` by ${d.created_by}…` : ''}`)),
      h('td', { 'data-label': 'Files' }, deploySize(d)),
      h('td', { 'data-label': 'State' }, deployState(d)),
      h(
        'td',
        { class: 'actions' },
        d.live || d.activating
          ? null
          : h(
              'button',
              {
                type: 'button',
                class: 'button button-small',
                'data-testid': 'activate-deploy',
                'data-focus-key': `activate:${d.id}`,
                onclick: () => activate(site, d),
              },
              liveIndex >= 0 && i > liveIndex ? 'Roll back to this' : 'Make live',
            ),
      ),
    ),
  );
  fill(
    ui.view.parts.deploys,
    h('h2', { id: 'deploys-title', class: 'card-title' }, 'Deploys'),
    deployments.length
      ? h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'files' },
            h('caption', { class: 'visually-hidden' }, 'Deploys, newest first'),
            h(
              'thead',
              null,
              h(
                'tr',
                null,
                ['Deploy', 'Made', 'Files', 'State'].map((t) => h('th', { scope: 'col' }, t)),
                h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')),
              ),
            ),
            h('tbody', null, rows),
          ),
        )
      : h('p', { class: 'muted', 'data-testid': 'deploys-empty' }, 'No deploy yet: drop the site’s folder above.'),
  );
}

async function activate(site, deployment) {
  try {
    const d = await api(`/v1/sites/${encodeURIComponent(site.id)}/deployments/${encodeURIComponent(deployment.id)}/activate`, { method: 'POST' });
    announce(d.live ? `Deploy ${d.id.slice(-8)} is live.` : `Deploy ${d.id.slice(-8)} goes live once its files are compressed.`);
  } catch (err) {
    report(err, 'Could not activate the deploy');
  }
  await loadSite(site.id);
}

// Files or a folder become a tar; one archive is sent as it is.
async function deployPicked(picked, fromFolder) {
  const view = ui.view;
  const site = state.site?.site;
  if (!site || state.site.busy) return;
  let items = picked.filter((i) => !IGNORED_FILES.has(i.path.split('/').pop()));
  if (!items.length) return;
  let body;
  let label;
  if (items.length === 1 && !fromFolder && ARCHIVE_NAME.test(items[0].path)) {
    body = items[0].file;
    label = `archive ${items[0].path}`;
  } else {
    if (fromFolder && view.parts.strip.checked) items = stripCommonTop(items);
    try {
      body = packTar(items);
    } catch (err) {
      showError(err.message);
      return;
    }
    label = `${items.length} file${items.length === 1 ? '' : 's'}`;
  }
  const activate = view.parts.live.checked;
  const bar = h('progress', { max: '100', value: '0', 'aria-label': 'Upload progress' });
  const text = h('span', { 'data-testid': 'deploy-progress-state', 'data-state': 'uploading' }, `Uploading ${label} (${humanSize(body.size)})…`);
  fill(view.parts.progress, h('div', { class: 'deploy-status' }, text, bar));
  state.site.busy = true;
  try {
    const d = await send('POST', `/v1/sites/${encodeURIComponent(site.id)}/deployments?activate=${activate}`, body, {
      contentType: body.type || 'application/octet-stream',
      onProgress: (ratio) => {
        bar.value = Math.round(ratio * 100);
      },
    });
    text.dataset.state = 'done';
    text.textContent = `Deployed ${deploySize(d)}${d.live ? ': live' : d.activating ? ': going live once compressed' : ': kept, not live'}.`;
    bar.value = 100;
    announce(text.textContent);
  } catch (err) {
    if (err.name === 'AbortError') return;
    text.dataset.state = 'failed';
    text.textContent = `Deploy refused: ${err.detail || err.message}`;
  } finally {
    state.site.busy = false;
  }
  if (current(site.id)) await loadSite(site.id);
}

async function deleteSite(site) {
  const ok = await confirmDialog({
    title: `Delete site ${site.name}?`,
    message: 'Its deploys are deleted with it. This cannot be undone.',
    confirmLabel: 'Delete site',
  });
  if (!ok) return;
  try {
    await api(`/v1/sites/${encodeURIComponent(site.id)}`, { method: 'DELETE' });
    announce(`Deleted site ${site.name}.`);
    location.hash = '#/sites';
  } catch (err) {
    report(err, 'Could not delete the site');
  }
}
