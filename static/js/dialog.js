// Confirmation dialog (a <dialog> so it is testable and styled; Esc cancels).

import { h } from './dom.js';

export function confirmDialog({ title, message, confirmLabel = 'Delete' }) {
  const opener = document.activeElement;
  if (typeof HTMLDialogElement !== 'function') {
    return Promise.resolve(window.confirm(`${title}\n\n${message}`));
  }
  return new Promise((resolve) => {
    const cancel = h('button', { type: 'submit', value: 'cancel', class: 'button', 'data-testid': 'confirm-cancel', autofocus: true }, 'Cancel');
    const confirm = h('button', { type: 'submit', value: 'confirm', class: 'button button-danger-solid', 'data-testid': 'confirm-ok' }, confirmLabel);
    const dialog = h(
      'dialog',
      { class: 'dialog', 'aria-labelledby': 'dialog-title', 'aria-describedby': 'dialog-message', 'data-testid': 'confirm-dialog' },
      h(
        'form',
        { method: 'dialog' },
        h('h2', { id: 'dialog-title' }, title),
        h('p', { id: 'dialog-message' }, message),
        h('div', { class: 'dialog-actions' }, cancel, confirm),
      ),
    );
    const openerKey = opener?.getAttribute?.('data-focus-key');
    dialog.addEventListener('close', () => {
      const ok = dialog.returnValue === 'confirm';
      dialog.remove();
      // The opener may have been re-rendered by a live update meanwhile: find its twin.
      const target =
        opener && opener.isConnected
          ? opener
          : openerKey && document.querySelector(`[data-focus-key="${CSS.escape(openerKey)}"]`);
      if (target) target.focus({ preventScroll: true });
      resolve(ok);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
