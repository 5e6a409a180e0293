// Small DOM helpers.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith('on') && typeof value === 'function') {
        el.addEventListener(name.slice(2).toLowerCase(), value);
      } else if (name === 'class') {
        el.className = value;
      } else if (['value', 'checked', 'disabled', 'hidden', 'multiple'].includes(name)) {
        el[name] = value;
      } else {
        el.setAttribute(name, value === true ? '' : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

// replaceChildren() would turn null into the text "null"; this skips empty slots.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export const $ = (sel, root = document) => root.querySelector(sel);

// Replace `oldEl` by `newEl`, keeping keyboard focus on the equivalent control
// (matched by its data-focus-key) so live updates never yank focus away.
export function swap(oldEl, newEl) {
  const active = document.activeElement;
  const key = active && oldEl.contains(active) ? active.getAttribute('data-focus-key') : null;
  oldEl.replaceWith(newEl);
  if (key) {
    const target = newEl.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (target) target.focus({ preventScroll: true });
  }
}

export function focusHeading() {
  const heading = $('#main h1');
  if (heading) heading.focus({ preventScroll: false });
}

// A field's inline error: the returned function shows `message` under `input` (a falsy one
// clears it) and marks the input invalid; typing in the field clears it.
export function fieldError(input, error) {
  const set = (message) => {
    error.textContent = message || '';
    error.hidden = !message;
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  };
  input.addEventListener('input', () => {
    if (!error.hidden) set(null);
  });
  return set;
}
