// API keys: the list (never a secret), creating one (its secret shown once), revoking.

import { state, ui } from './state.js';
import { fieldError, fill, h } from './dom.js';
import { timeEl } from './format.js';
import { announce } from './messages.js';
import { api, ApiError, report } from './api.js';
import { confirmDialog } from './dialog.js';
import { signOut } from './session.js';

export function renderKeysView() {
  const input = h('input', {
    id: 'new-key-name',
    name: 'name',
    type: 'text',
    autocomplete: 'off',
    maxlength: '100',
    placeholder: 'CI',
    'data-testid': 'new-key-name',
    'aria-describedby': 'new-key-hint key-error',
  });
  const error = h('p', { id: 'key-error', class: 'field-error', 'data-testid': 'key-error', hidden: true });
  const setError = fieldError(input, error);
  const button = h('button', { type: 'submit', class: 'button button-primary', 'data-testid': 'create-key' }, 'Create key');
  const secret = h('div', { 'aria-live': 'polite' });
  const form = h(
    'form',
    {
      class: 'card add-domain',
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        setError(null);
        button.disabled = true;
        try {
          const name = input.value.trim();
          const key = await api('/v1/keys', { method: 'POST', json: name ? { name } : {} });
          input.value = '';
          fill(secret, secretBox(key));
          announce(`Created the API key ${key.prefix}…: copy it now, it is not shown again.`);
          loadKeys();
        } catch (err) {
          if (err instanceof ApiError && err.status !== 401) {
            setError(err.detail);
            input.focus();
          } else {
            report(err, 'Could not create the key');
          }
        } finally {
          button.disabled = false;
        }
      },
    },
    h('h2', { class: 'card-title' }, 'Create a key'),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'new-key-name' }, 'Name (optional)'),
      input,
      h('p', { id: 'new-key-hint', class: 'hint' }, 'What the key is for, so you can tell keys apart later.'),
      error,
    ),
    h('div', { class: 'form-actions' }, button),
    secret,
  );
  const list = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted loading' }, 'Loading keys…'));
  ui.view = { name: 'keys', title: 'API keys', list };
  loadKeys();
  return h(
    'section',
    { class: 'page', 'aria-labelledby': 'keys-title' },
    h(
      'div',
      { class: 'page-head' },
      h('h1', { id: 'keys-title', tabindex: '-1' }, 'API keys'),
      h(
        'p',
        { class: 'muted' },
        'Every key can do everything your account can. Give each program its own key; revoke a key you no longer use or that may have leaked: it stops working at once.',
      ),
    ),
    form,
    list,
  );
}

// The new key's secret, once, with a copy button.
function secretBox(key) {
  const value = h('code', { class: 'mono secret', 'data-testid': 'new-key-secret' }, key.api_key);
  const copy = h(
    'button',
    {
      type: 'button',
      class: 'button',
      'data-testid': 'copy-key',
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(key.api_key);
          announce('Key copied.');
        } catch {
          announce('Select the key and copy it.');
        }
      },
    },
    'Copy',
  );
  return h(
    'div',
    { class: 'notice', 'data-testid': 'new-key' },
    h('p', null, h('strong', null, 'Copy this key now: it is not shown again.')),
    h('p', null, value, ' ', copy),
  );
}

async function loadKeys() {
  const epoch = state.listEpoch;
  let content;
  try {
    const { keys } = await api('/v1/keys');
    if (epoch !== state.listEpoch) return;
    content = keysTable(keys);
  } catch (err) {
    if (epoch !== state.listEpoch || err.status === 401) return;
    content = h('p', { class: 'card notice notice-error' }, `Could not load your keys: ${err.detail}`);
  }
  if (ui.view?.name !== 'keys') return;
  ui.view.list.setAttribute('aria-busy', 'false');
  ui.view.list.replaceChildren(content);
}

async function revoke(key) {
  const ok = await confirmDialog({
    title: `Revoke ${key.name || key.prefix + '…'}?`,
    message: key.current
      ? 'This is the key you signed in with: you will be signed out. Programs using it stop working at once.'
      : 'Programs using this key stop working at once. This cannot be undone.',
    confirmLabel: 'Revoke',
  });
  if (!ok) return;
  try {
    await api(`/v1/keys/${key.id}`, { method: 'DELETE' });
    if (key.current) {
      signOut('You revoked the key you signed in with. Sign in with another key.');
      return;
    }
    announce(`Revoked ${key.prefix}…`);
    loadKeys();
  } catch (err) {
    report(err, 'Could not revoke the key');
  }
}

function keysTable(keys) {
  return h(
    'div',
    { class: 'card' },
    h('h2', { class: 'card-title' }, `${keys.length} key${keys.length === 1 ? '' : 's'}`),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'files', 'data-testid': 'keys' },
        h('caption', { class: 'visually-hidden' }, 'Your API keys'),
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            h('th', { scope: 'col' }, 'Key'),
            h('th', { scope: 'col' }, 'Created'),
            h('th', { scope: 'col' }, 'Last used'),
            h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')),
          ),
        ),
        h(
          'tbody',
          null,
          keys.map((k) =>
            h(
              'tr',
              { 'data-testid': 'key-row', 'data-id': k.id, 'data-prefix': k.prefix },
              h(
                'td',
                { 'data-label': 'Key' },
                k.name ? h('strong', null, k.name, ' ') : null,
                h('code', { class: 'mono' }, `${k.prefix}…`),
                k.current ? h('span', { class: 'muted', 'data-testid': 'key-current' }, ' (this session)') : null,
              ),
              h('td', { 'data-label': 'Created' }, timeEl(k.created_at)),
              h('td', { 'data-label': 'Last used' }, k.last_used_at ? timeEl(k.last_used_at) : h('span', { class: 'muted' }, 'never')),
              h(
                'td',
                { class: 'actions' },
                h(
                  'button',
                  {
                    type: 'button',
                    class: 'button button-danger',
                    'data-testid': 'revoke-key',
                    'data-focus-key': `revoke-${k.id}`,
                    onclick: () => revoke(k),
                  },
                  'Revoke',
                  h('span', { class: 'visually-hidden' }, ` ${k.name || k.prefix}`),
                ),
              ),
            ),
          ),
        ),
      ),
    ),
  );
}
