// Sign-in view.

import { state, ui } from './state.js';
import { h } from './dom.js';
import { announce } from './messages.js';
import { api, ApiError } from './api.js';
import { signIn } from './session.js';

export function renderSignIn() {
  ui.view = { name: 'signin', title: 'Sign in' };
  const input = h('input', {
    id: 'api-key',
    name: 'api-key',
    type: 'password',
    required: true,
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    'data-testid': 'api-key',
    'aria-describedby': 'api-key-hint api-key-error',
  });
  const error = h('p', {
    id: 'api-key-error',
    class: 'field-error',
    'data-testid': 'sign-in-error',
    hidden: !state.signOutMessage,
  });
  if (state.signOutMessage) {
    error.textContent = state.signOutMessage;
    input.setAttribute('aria-invalid', 'true');
  }
  const button = h('button', { type: 'submit', class: 'button button-primary', 'data-testid': 'sign-in' }, 'Sign in');
  const toggle = h(
    'button',
    {
      type: 'button',
      class: 'button button-quiet button-small',
      'aria-pressed': 'false',
      'aria-controls': 'api-key',
      onclick: () => {
        const show = input.type === 'password';
        input.type = show ? 'text' : 'password';
        toggle.setAttribute('aria-pressed', String(show));
        toggle.textContent = show ? 'Hide key' : 'Show key';
      },
    },
    'Show key',
  );

  input.addEventListener('input', () => {
    if (error.hidden) return;
    error.hidden = true;
    input.removeAttribute('aria-invalid');
  });

  function fail(message) {
    error.textContent = message;
    error.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }

  // method=post: even if this script failed to load, the key would never land in a URL.
  const form = h(
    'form',
    {
      class: 'card signin-card',
      method: 'post',
      action: '/',
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const key = input.value.trim();
        if (!key) {
          fail('Enter your API key.');
          return;
        }
        button.disabled = true;
        button.textContent = 'Signing in…';
        try {
          await api(`/v1/domains?limit=1`, { key, handle401: false });
          input.value = '';
          signIn(key);
          announce('Signed in.');
        } catch (err) {
          button.disabled = false;
          button.textContent = 'Sign in';
          fail(err instanceof ApiError ? err.detail : String(err.message || err));
        }
      },
    },
    h('h1', { tabindex: '-1' }, 'Sign in'),
    h(
      'p',
      { class: 'muted' },
      'Manage your custom domains, certificates and site files with your tenant API key.',
    ),
    h(
      'div',
      { class: 'field' },
      h('div', { class: 'label-row' }, h('label', { for: 'api-key' }, 'API key'), toggle),
      input,
      h(
        'p',
        { id: 'api-key-hint', class: 'hint' },
        'The key is kept in this browser tab only and is forgotten when you close it.',
      ),
      error,
    ),
    button,
  );
  return h('section', { class: 'signin' }, form);
}
