// Routing: the location hash picks the view.

import { state, ui } from './state.js';
import { $, focusHeading } from './dom.js';
import { renderSignIn } from './signin.js';
import { renderDomainsView } from './domains-list.js';
import { renderDetailView } from './domain-detail.js';
import { renderFilesView } from './files.js';
import { renderSitesView } from './sites.js';
import { renderSiteView } from './site-detail.js';
import { renderKeysView } from './keys.js';

function route() {
  const path = location.hash.replace(/^#/, '') || '/domains';
  const m = path.match(/^\/domains\/([^/?#]+)$/);
  if (m) return { name: 'detail', id: decodeURIComponent(m[1]) };
  const site = path.match(/^\/sites\/([^/?#]+)$/);
  if (site) return { name: 'site', id: decodeURIComponent(site[1]) };
  if (path === '/sites') return { name: 'sites' };
  if (path === '/files') return { name: 'files' };
  if (path === '/keys') return { name: 'keys' };
  return { name: 'domains' };
}

export function render() {
  const main = $('#main');
  const r = state.key ? route() : { name: 'signin' };
  for (const link of document.querySelectorAll('#nav a')) {
    const current =
      link.dataset.route === r.name ||
      (link.dataset.route === 'domains' && r.name === 'detail') ||
      (link.dataset.route === 'sites' && r.name === 'site');
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (r.name !== 'detail') state.detail = null;
  if (r.name !== 'site') state.site = null;
  clearTimeout(ui.view?.timer);
  let content;
  if (r.name === 'signin') content = renderSignIn();
  else if (r.name === 'detail') content = renderDetailView(r.id);
  else if (r.name === 'files') content = renderFilesView();
  else if (r.name === 'sites') content = renderSitesView();
  else if (r.name === 'site') content = renderSiteView(r.id);
  else if (r.name === 'keys') content = renderKeysView();
  else content = renderDomainsView();
  main.replaceChildren(content);
  document.title = `${ui.view.title} · Landlord`;
  if (r.name === 'signin') {
    $('#api-key').focus();
  } else if (!ui.firstRender) {
    focusHeading();
    window.scrollTo(0, 0);
  }
  ui.firstRender = false;
}
