// API client: JSON requests with the session's bearer key, errors as ApiError.

import { state } from './state.js';
import { $, h } from './dom.js';
import { showError } from './messages.js';
import { signOut } from './session.js';

export class ApiError extends Error {
  constructor(status, detail, title = '', type = '') {
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.detail = detail;
    this.title = title;
    this.type = type;
  }
}

export function problemFrom(status, body, statusText) {
  const detail =
    (body && typeof body === 'object' && (body.detail || body.title)) ||
    (status === 413 ? 'The file is too large.' : '') ||
    `The server answered ${status}${statusText ? ` ${statusText}` : ''}.`;
  return new ApiError(status, detail, body?.title || '', body?.type || '');
}

export function parseJson(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export async function api(path, { method = 'GET', json, key = state.key, signal, handle401 = true } = {}) {
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body, signal, cache: 'no-store', credentials: 'omit' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'Cannot reach the Landlord API. Check your connection and try again.');
  }
  const text = res.status === 204 ? '' : await res.text();
  const data = parseJson(text);
  if (!res.ok) {
    const err = problemFrom(res.status, data, res.statusText);
    if (res.status === 401 && handle401) unauthorized(err);
    if (res.status === 403 && err.type === '/problems/tenant-suspended') showSuspended(err);
    throw err;
  }
  return data;
}

// A request whose body is a file or an archive, through XMLHttpRequest rather than fetch
// because it reports upload progress (onProgress gets 0..1); onXhr gets the request, to
// abort it. Resolves with the answer's JSON, rejects with an ApiError.
export function send(method, path, body, { contentType, onProgress, onXhr } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    onXhr?.(xhr);
    xhr.open(method, path);
    xhr.setRequestHeader('Authorization', `Bearer ${state.key}`);
    xhr.setRequestHeader('Accept', 'application/json');
    if (contentType) xhr.setRequestHeader('Content-Type', contentType);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable && e.total) onProgress?.(e.loaded / e.total);
    });
    xhr.addEventListener('load', () => {
      onXhr?.(null);
      const data = parseJson(xhr.responseText);
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(data);
        return;
      }
      const err = problemFrom(xhr.status, data, xhr.statusText);
      if (xhr.status === 401) unauthorized(err);
      reject(err);
    });
    xhr.addEventListener('error', () => {
      onXhr?.(null);
      reject(new ApiError(0, 'The upload was interrupted (network error or the server closed the connection).'));
    });
    xhr.addEventListener('abort', () => {
      onXhr?.(null);
      reject(new DOMException('Upload aborted', 'AbortError'));
    });
    xhr.send(body);
  });
}

// A suspended account: say so once, plainly, where errors go (it stays until dismissed).
function showSuspended(err) {
  const region = $('#flash-error');
  if (region.querySelector('[data-testid="suspended-banner"]')) return;
  region.replaceChildren(
    h('span', { class: 'flash-text', 'data-testid': 'suspended-banner' }, `Account suspended. ${err.detail}`),
  );
}

// Any 401 while signed in ends the session and returns to the sign-in form.
export function unauthorized(err) {
  if (!state.key) return;
  signOut(`Your API key was not accepted: ${err.detail} Please sign in again.`);
}

// Errors a caller did not handle itself: 401s were handled already, aborts are silent.
export function report(err, context) {
  if (!err || err.name === 'AbortError') return;
  if (err instanceof ApiError) {
    if (err.status === 401) return;
    showError(context ? `${context}: ${err.detail}` : err.detail);
  } else {
    showError(context ? `${context}: ${err.message}` : String(err.message || err));
  }
}
