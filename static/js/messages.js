// Messages (live regions are in index.html so they exist before anything is announced).

import { $, h } from './dom.js';

let statusTimer = null;

export function announce(message) {
  const region = $('#flash-status');
  clearTimeout(statusTimer);
  region.textContent = '';
  // A fresh text node in the next frame makes screen readers announce repeated messages.
  requestAnimationFrame(() => {
    region.textContent = message;
    statusTimer = setTimeout(() => {
      region.textContent = '';
    }, 6000);
  });
}

export function showError(message) {
  const region = $('#flash-error');
  region.replaceChildren(
    h('span', { class: 'flash-text' }, message),
    h(
      'button',
      {
        type: 'button',
        class: 'button button-quiet button-small',
        'aria-label': 'Dismiss error',
        onclick: clearError,
      },
      'Dismiss',
    ),
  );
}

export function clearError() {
  $('#flash-error').replaceChildren();
}
