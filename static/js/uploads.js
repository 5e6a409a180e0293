// Files view: picking, dropping and uploading files.

import { IGNORED_FILES, state, ui, UPLOAD_CONCURRENCY } from './state.js';
import { h } from './dom.js';
import { encodePath, humanSize } from './format.js';
import { announce, showError } from './messages.js';
import { send } from './api.js';
import { loadFiles } from './files.js';

export function hasFiles(event) {
  return [...(event.dataTransfer?.types || [])].includes('Files');
}

// Read a drop, walking directories. Entries must be taken synchronously, before any await.
export async function droppedFiles(dataTransfer) {
  const entries = [];
  const plain = [];
  for (const item of dataTransfer.items || []) {
    if (item.kind !== 'file') continue;
    const entry = typeof item.webkitGetAsEntry === 'function' ? item.webkitGetAsEntry() : null;
    if (entry) entries.push(entry);
    else {
      const file = item.getAsFile();
      if (file) plain.push({ file, path: file.name });
    }
  }
  if (!entries.length && !plain.length) {
    for (const file of dataTransfer.files || []) plain.push({ file, path: file.name });
  }
  const items = [...plain];
  let fromFolder = false;
  for (const entry of entries) {
    if (entry.isDirectory) fromFolder = true;
    await walkEntry(entry, items);
  }
  return { items, fromFolder };
}

async function walkEntry(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, path: entry.fullPath.replace(/^\/+/, '') || file.name });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      // readEntries returns at most ~100 entries per call; keep reading until empty.
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walkEntry(child, out);
    }
  }
}

export function stripCommonTop(items) {
  if (!items.length) return items;
  const tops = new Set(items.map((i) => (i.path.includes('/') ? i.path.split('/')[0] : null)));
  if (tops.size !== 1 || tops.has(null)) return items;
  const [top] = tops;
  return items.map((i) => ({ ...i, path: i.path.slice(top.length + 1) }));
}

export function startUploads(picked, fromFolder) {
  let items = picked.filter((i) => !IGNORED_FILES.has(i.path.split('/').pop()));
  if (!items.length) {
    if (picked.length) announce('Nothing to upload: only system files were selected.');
    return;
  }
  if (fromFolder && ui.view?.strip?.checked) items = stripCommonTop(items);
  // A new batch replaces finished rows; rows still in flight stay.
  state.uploads = state.uploads.filter((u) => u.state === 'queued' || u.state === 'uploading');
  const max = state.usage?.max_file_bytes;
  const batch = items.map((i) => ({
    id: crypto.randomUUID(),
    file: i.file,
    path: i.path,
    size: i.file.size,
    state: 'queued',
    progress: 0,
    error: null,
    xhr: null,
  }));
  for (const u of batch) {
    if (max && u.size > max) {
      u.state = 'failed';
      u.error = `The file is ${humanSize(u.size)}; the limit is ${humanSize(max)} per file.`;
    }
  }
  state.uploads.push(...batch);
  renderUploads();
  announce(`Uploading ${batch.length} file${batch.length === 1 ? '' : 's'}…`);
  runUploads(batch);
}

async function runUploads(batch) {
  const queue = batch.filter((u) => u.state === 'queued');
  const epoch = state.listEpoch;
  async function worker() {
    while (queue.length) {
      if (epoch !== state.listEpoch) return;
      const upload = queue.shift();
      upload.state = 'uploading';
      updateUploadRow(upload);
      try {
        await putFile(upload, () => updateUploadRow(upload));
        upload.state = 'done';
        upload.progress = 1;
      } catch (err) {
        if (err.name === 'AbortError' || epoch !== state.listEpoch) return;
        upload.state = 'failed';
        upload.error = err.detail || err.message;
      }
      updateUploadRow(upload);
    }
  }
  await Promise.all(Array.from({ length: Math.min(UPLOAD_CONCURRENCY, queue.length) }, worker));
  if (epoch !== state.listEpoch) return;
  const done = batch.filter((u) => u.state === 'done').length;
  const failed = batch.filter((u) => u.state === 'failed').length;
  renderUploads();
  const files = `file${batch.length === 1 ? '' : 's'}`;
  if (failed) {
    showError(`Uploaded ${done} of ${batch.length} ${files}; ${failed} failed. The upload list says why.`);
  } else {
    announce(`Uploaded ${done} of ${batch.length} ${files}.`);
  }
  await loadFiles();
}

function putFile(upload, onProgress) {
  return send('PUT', `/v1/files/${encodePath(upload.path)}`, upload.file, {
    contentType: upload.file.type || undefined,
    onProgress: (ratio) => {
      upload.progress = ratio;
      onProgress();
    },
    onXhr: (xhr) => {
      upload.xhr = xhr;
    },
  });
}

function uploadStateText(u) {
  switch (u.state) {
    case 'queued':
      return 'Waiting';
    case 'uploading':
      return `Uploading ${Math.round(u.progress * 100)}%`;
    case 'done':
      return 'Uploaded';
    default:
      return `Failed: ${u.error}`;
  }
}

function uploadRow(u) {
  return h(
    'li',
    { class: `upload upload-${u.state}`, 'data-testid': 'upload-row', 'data-path': u.path, 'data-state': u.state, 'data-upload': u.id },
    h('span', { class: 'upload-path mono' }, u.path),
    h('span', { class: 'upload-size muted' }, humanSize(u.size)),
    h('progress', { max: '100', value: String(Math.round(u.progress * 100)), 'aria-label': `Progress of ${u.path}` }),
    h('span', { class: 'upload-state', 'data-testid': 'upload-state' }, uploadStateText(u)),
  );
}

export function renderUploads() {
  if (!ui.view || ui.view.name !== 'files') return;
  if (!state.uploads.length) {
    ui.view.uploads.replaceChildren();
    return;
  }
  const clear = state.uploads.every((u) => u.state === 'done' || u.state === 'failed')
    ? h(
        'button',
        {
          type: 'button',
          class: 'button button-quiet button-small',
          onclick: () => {
            state.uploads = [];
            renderUploads();
          },
        },
        'Clear list',
      )
    : null;
  ui.view.uploads.replaceChildren(
    h('div', { class: 'uploads-head' }, h('h3', { class: 'subhead' }, 'Uploads'), clear),
    h('ul', { class: 'upload-list', 'data-testid': 'upload-list' }, state.uploads.map(uploadRow)),
  );
}

function updateUploadRow(u) {
  if (!ui.view || ui.view.name !== 'files') return;
  const old = ui.view.uploads.querySelector(`[data-upload="${u.id}"]`);
  if (old) old.replaceWith(uploadRow(u));
  else renderUploads();
}
