// Landlord tenant dashboard: plain ES modules, no build step, no dependencies. This entry
// wires everything up; the modules in js/ (served at /js/<name>.js) only define functions and
// constants, so the import cycles among them (views <-> data <-> session) are harmless: no
// module uses an import while it is being evaluated. Shared mutable state is in js/state.js.
//
// The API key lives in sessionStorage only (never in a URL, never in localStorage) and is
// sent as `Authorization: Bearer …` on every request, including the live-update stream,
// which is read with fetch() because EventSource cannot send headers.

import { KEY_STORAGE, state } from './js/state.js';
import { $ } from './js/dom.js';
import { tickTimes } from './js/format.js';
import { clearError } from './js/messages.js';
import { signIn, signOut } from './js/session.js';
import { render } from './js/router.js';
import { hasFiles } from './js/uploads.js';
import { live, refreshVisible } from './js/live.js';

// ---------------------------------------------------------------------------------------
// Start

window.addEventListener('hashchange', () => {
  clearError();
  render();
});

// A file dropped outside the drop zone must not make the browser navigate away.
for (const type of ['dragover', 'drop']) {
  window.addEventListener(type, (e) => {
    if (hasFiles(e) && !e.defaultPrevented) {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = 'none';
    }
  });
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && state.key && live.status === 'polling') refreshVisible();
});

$('#sign-out').addEventListener('click', () => signOut());
setInterval(tickTimes, 30_000);

const saved = sessionStorage.getItem(KEY_STORAGE);
if (saved) {
  signIn(saved);
} else {
  render();
}
