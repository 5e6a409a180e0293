// A drop zone with "Choose files" and "Choose folder" pickers; onPick gets
// ([{ file, path }], fromFolder) however the files came.

import { h } from './dom.js';
import { report } from './api.js';
import { droppedFiles, hasFiles } from './uploads.js';

// prefix names the inputs: `${prefix}file-input` and `${prefix}folder-input` (ids and test ids).
export function dropZone({ prefix = '', title, filesLabel = 'Choose files', onPick }) {
  const fileInput = h('input', {
    id: `${prefix}file-input`,
    type: 'file',
    multiple: true,
    class: 'visually-hidden',
    'data-testid': `${prefix}file-input`,
  });
  const folderInput = h('input', {
    id: `${prefix}folder-input`,
    type: 'file',
    class: 'visually-hidden',
    'data-testid': `${prefix}folder-input`,
  });
  folderInput.webkitdirectory = true;
  folderInput.setAttribute('webkitdirectory', '');

  fileInput.addEventListener('change', () => {
    const picked = [...fileInput.files].map((file) => ({ file, path: file.name }));
    fileInput.value = '';
    onPick(picked, false);
  });
  folderInput.addEventListener('change', () => {
    const picked = [...folderInput.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
    folderInput.value = '';
    onPick(picked, true);
  });

  const drop = h(
    'div',
    { class: 'dropzone', 'data-testid': `${prefix}drop-zone` },
    h('p', { class: 'dropzone-title' }, title),
    h('p', { class: 'muted' }, 'or'),
    h(
      'div',
      { class: 'picker-row' },
      fileInput,
      h('label', { for: fileInput.id, class: 'button button-primary' }, filesLabel),
      folderInput,
      h('label', { for: folderInput.id, class: 'button' }, 'Choose folder'),
    ),
  );
  let depth = 0;
  drop.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth += 1;
    drop.classList.add('dragging');
  });
  drop.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  drop.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) drop.classList.remove('dragging');
  });
  drop.addEventListener('drop', async (e) => {
    e.preventDefault();
    depth = 0;
    drop.classList.remove('dragging');
    try {
      const { items, fromFolder } = await droppedFiles(e.dataTransfer);
      onPick(items, fromFolder);
    } catch (err) {
      report(err, 'Could not read the dropped files');
    }
  });
  return drop;
}
