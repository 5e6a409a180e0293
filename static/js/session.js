// Session: signing in and out.

import { KEY_STORAGE, state } from './state.js';
import { $ } from './dom.js';
import { announce, clearError } from './messages.js';
import { render } from './router.js';
import { live } from './live.js';

export function signIn(key) {
  state.key = key;
  sessionStorage.setItem(KEY_STORAGE, key);
  state.signOutMessage = null;
  $('#nav').hidden = false;
  $('#session').hidden = false;
  live.start();
  render();
}

function resetData() {
  state.domains = [];
  state.nextCursor = null;
  state.listLoaded = false;
  state.listError = null;
  state.loadingMore = false;
  state.busy.clear();
  state.detail = null;
  state.site = null;
  state.files = null;
  state.usage = null;
  state.limits = null;
  state.filesError = null;
  for (const upload of state.uploads) upload.xhr?.abort();
  state.uploads = [];
}

export function signOut(message = null) {
  state.key = null;
  sessionStorage.removeItem(KEY_STORAGE);
  live.stop();
  resetData();
  state.listEpoch += 1;
  state.signOutMessage = message;
  $('#nav').hidden = true;
  $('#session').hidden = true;
  clearError();
  render();
  if (!message) announce('Signed out.');
}
