// Files view: storage and limits, the file list.

import { state, ui } from './state.js';
import { $, fill, h } from './dom.js';
import { encodePath, humanSize, timeEl } from './format.js';
import { announce } from './messages.js';
import { api, report } from './api.js';
import { renderUploads, startUploads } from './uploads.js';
import { dropZone } from './dropzone.js';
import { confirmDialog } from './dialog.js';

export function renderFilesView() {
  const strip = h('input', { id: 'strip-top', type: 'checkbox', checked: true, 'data-testid': 'strip-top' });
  const drop = dropZone({ title: 'Drag files or a folder here', onPick: startUploads });

  const usage = h('div', { class: 'card usage', 'data-testid': 'usage' }, h('p', { class: 'muted' }, 'Loading usage…'));
  const uploads = h('div', { class: 'uploads' });
  const files = h('div', { class: 'files-region', 'aria-busy': 'true' }, h('p', { class: 'muted loading' }, 'Loading files…'));
  ui.view = { name: 'files', title: 'Files', usage, uploads, files, strip };

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
        'The files of your default site, served by the domains attached to it; each change is live at once. ',
        h('code', null, '/'),
        ' serves ',
        h('code', null, 'index.html'),
        '. To publish a whole version at once, deploy it to a site (',
        h('a', { href: '#/sites' }, 'Sites'),
        ').',
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

export async function loadFiles() {
  const epoch = state.listEpoch;
  try {
    // Every page (the listing is paginated; the tenant's file limit bounds the pages).
    let data = await api('/v1/files?limit=1000');
    const files = [...(data.files || [])];
    while (data.next_cursor && epoch === state.listEpoch) {
      data = await api(`/v1/files?limit=1000&cursor=${encodeURIComponent(data.next_cursor)}`);
      files.push(...(data.files || []));
    }
    const limits = await api('/v1/limits').catch(() => null);
    if (epoch !== state.listEpoch) return;
    state.files = files.sort((a, b) => a.path.localeCompare(b.path));
    state.usage = data.usage || null;
    state.limits = limits;
    state.filesError = null;
  } catch (err) {
    if (epoch !== state.listEpoch || err.status === 401) return;
    state.filesError = err;
  }
  renderFiles();
}

function renderFiles() {
  if (!ui.view || ui.view.name !== 'files') return;
  renderUsage();
  const region = ui.view.files;
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
  const el = ui.view.usage;
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
  if (heading && ui.view?.files?.contains(document.activeElement)) heading.focus();
  renderFiles();
  await loadFiles();
}
