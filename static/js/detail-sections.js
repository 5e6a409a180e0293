// Domain detail view: its cards (DNS records, DNS answers, certificate, timeline).

import { h } from './dom.js';
import { displayName, timeEl } from './format.js';
import { announce, showError } from './messages.js';

export function fact(label, value) {
  return h('div', { class: 'fact' }, h('dt', null, label), h('dd', null, value));
}

function copyButton(value, label) {
  const button = h(
    'button',
    {
      type: 'button',
      class: 'button button-small copy',
      'data-testid': 'copy-value',
      'data-focus-key': `copy:${label}:${value}`,
      'aria-label': `Copy ${label}`,
      onclick: async () => {
        const ok = await copyText(value);
        button.focus({ preventScroll: true });
        if (ok) {
          button.textContent = 'Copied';
          announce(`Copied ${value} to the clipboard.`);
          setTimeout(() => {
            button.textContent = 'Copy';
          }, 2000);
        } else {
          const cell = button.closest('td')?.querySelector('code');
          if (cell) {
            const range = document.createRange();
            range.selectNodeContents(cell);
            const selection = getSelection();
            selection.removeAllRanges();
            selection.addRange(range);
          }
          showError('Copying is not allowed here. The value is selected: press Ctrl+C (⌘C) to copy it.');
        }
      },
    },
    'Copy',
  );
  return button;
}

async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the legacy path
  }
  const area = h('textarea', { readonly: true, 'aria-hidden': 'true', class: 'clipboard-helper' });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

function recordsTable(records, { caption, testid }) {
  return h(
    'table',
    { class: 'records', 'data-testid': testid },
    h('caption', { class: 'visually-hidden' }, caption),
    h(
      'thead',
      null,
      h('tr', null, h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Value')),
    ),
    h(
      'tbody',
      null,
      records.map((r) =>
        h(
          'tr',
          { 'data-type': r.type },
          h('td', { 'data-label': 'Type' }, h('span', { class: 'rr-type' }, r.type)),
          h('td', { 'data-label': 'Name' }, h('code', null, r.name)),
          h(
            'td',
            { 'data-label': 'Value' },
            h('div', { class: 'value-cell' }, h('code', null, r.value), copyButton(r.value, `${r.type} value ${r.value}`)),
          ),
        ),
      ),
    ),
  );
}

export function dnsSection(domain) {
  const dns = domain.dns || {};
  const alternatives = Array.isArray(dns.alternatives) ? dns.alternatives : [];
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'dns-title' },
    h('h2', { id: 'dns-title', class: 'card-title' }, 'DNS record to create'),
    h('p', { class: 'muted' }, 'At your DNS provider, create this record for the hostname:'),
    recordsTable([{ type: dns.type || 'CNAME', name: dns.name || domain.hostname, value: dns.value || '' }], {
      caption: 'DNS record to create',
      testid: 'dns-records',
    }),
    dns.shared_target_accepted
      ? h(
          'p',
          { class: 'hint', 'data-testid': 'shared-target-note' },
          'This domain was registered before each domain had a target of its own: a CNAME to the shared target keeps working. Move it to the value above when convenient; a stale record then cannot be used by anyone else.',
        )
      : null,
    alternatives.length
      ? [
          h('h3', { class: 'subhead' }, 'Alternative: address records'),
          h(
            'p',
            { class: 'muted' },
            'If your provider cannot create a CNAME here (for example at the zone apex), create these A/AAAA records instead — and no other address records for this name.',
          ),
          recordsTable(alternatives, { caption: 'Alternative address records', testid: 'dns-alternatives' }),
          domain.ownership && !domain.ownership.verified
            ? [
                h(
                  'p',
                  { class: 'muted' },
                  'Address records can point anyone’s name at us, so with them, also prove the hostname is yours with this TXT record (it can go once the domain is active):',
                ),
                recordsTable([domain.ownership], { caption: 'Ownership record', testid: 'ownership-record' }),
              ]
            : null,
        ]
      : null,
  );
}

// The CNAME that delegates this name's ACME validation to the platform (present when the
// platform does DNS-01): optional for a name, the only way forward for a wildcard.
export function delegationSection(domain) {
  const record = domain.dcv_delegation;
  if (!record) return null;
  const wildcard = domain.hostname.startsWith('*.');
  const waiting = wildcard && !record.verified;
  const title = wildcard ? 'Certificate validation record (required for wildcards)' : 'Certificate before DNS switch (optional)';
  return h(
    'section',
    {
      class: waiting ? 'card card-required' : 'card',
      'aria-labelledby': 'dcv-title',
      'data-testid': 'dcv-delegation',
      'data-required': waiting ? 'true' : null,
    },
    h('h2', { id: 'dcv-title', class: 'card-title' }, title),
    waiting
      ? h(
          'div',
          { class: 'callout callout-warning', 'data-testid': 'dcv-required' },
          h(
            'p',
            null,
            h('strong', null, 'Create this record first. '),
            `${displayName(domain)} is a wildcard: its certificate can only be obtained through this record, so nothing happens until it exists.`,
          ),
        )
      : null,
    h(
      'p',
      { class: 'muted' },
      'Creating this CNAME lets the platform obtain the certificate through DNS-01 before traffic moves here, so HTTPS works from the moment you switch DNS. It is required for wildcard hostnames (',
      h('code', null, '*.example.com'),
      ').',
    ),
    recordsTable([record], { caption: 'Certificate validation record', testid: 'dcv-delegation-record' }),
    h(
      'p',
      { class: 'record-state', 'data-testid': 'dcv-delegation-state', 'data-verified': String(Boolean(record.verified)) },
      'State: ',
      h('span', { class: `badge ${record.verified ? 'badge-active' : 'badge-pending_dns'}` }, record.verified ? 'found' : 'not found yet'),
      h(
        'span',
        { class: 'muted' },
        record.verified
          ? wildcard
            ? ' Keep it: every renewal of this certificate goes through it.'
            : ' Certificates for this name are obtained through it.'
          : ' It is looked for at every DNS check (“Check DNS now” looks at once).',
      ),
    ),
  );
}

export function foundSection(check) {
  const found = check.found;
  let content;
  if (!check.checked_at && !found) {
    content = h('p', { class: 'muted' }, 'DNS has not been checked yet.');
  } else if (!found || typeof found !== 'object') {
    content = h('p', { class: 'muted' }, 'No answer was recorded.');
  } else {
    const rows = [];
    const labels = { cname: 'CNAME', a: 'A', aaaa: 'AAAA' };
    for (const key of ['cname', 'a', 'aaaa']) {
      if (!(key in found)) continue;
      const values = Array.isArray(found[key]) ? found[key] : [found[key]];
      rows.push(
        fact(
          labels[key],
          values.length
            ? h('ul', { class: 'plain-list' }, values.map((v) => h('li', null, h('code', null, String(v)))))
            : h('span', { class: 'muted' }, 'none'),
        ),
      );
    }
    for (const [key, value] of Object.entries(found)) {
      if (key in labels) continue;
      rows.push(fact(key, h('span', null, typeof value === 'string' ? value : JSON.stringify(value))));
    }
    content = h('dl', { class: 'facts', 'data-testid': 'dns-found' }, rows);
  }
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'found-title' },
    h('h2', { id: 'found-title', class: 'card-title' }, 'What DNS answered'),
    check.checked_at ? h('p', { class: 'muted' }, 'At the last check, ', timeEl(check.checked_at), ':') : null,
    content,
  );
}

export function certificateSection(cert) {
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'cert-title', 'data-testid': 'certificate' },
    h('h2', { id: 'cert-title', class: 'card-title' }, 'Certificate'),
    cert
      ? h(
          'dl',
          { class: 'facts' },
          fact('Issuer', h('span', { class: 'break' }, cert.issuer || '—')),
          fact('Serial', h('code', { class: 'break' }, cert.serial || '—')),
          fact('Valid from', timeEl(cert.not_before, { mode: 'absolute' })),
          fact(
            'Expires',
            h('span', null, timeEl(cert.not_after, { mode: 'absolute' }), ' (', timeEl(cert.not_after), ')'),
          ),
          fact('Renews', h('span', null, timeEl(cert.renew_at, { mode: 'absolute' }), ' (', timeEl(cert.renew_at), ')')),
          cert.renewal_window
            ? fact(
                'CA renewal window',
                h(
                  'span',
                  { 'data-testid': 'renewal-window' },
                  timeEl(cert.renewal_window.start, { mode: 'absolute' }),
                  ' – ',
                  timeEl(cert.renewal_window.end, { mode: 'absolute' }),
                  cert.renewal_window.explanation_url
                    ? h(
                        'span',
                        null,
                        ' (',
                        h('a', { href: cert.renewal_window.explanation_url, rel: 'noopener noreferrer' }, 'why'),
                        ')',
                      )
                    : null,
                ),
              )
            : null,
        )
      : h('p', { class: 'muted' }, 'No certificate yet. One is requested as soon as DNS points at us.'),
  );
}

export function timelineSection(events, eventsError) {
  let content;
  if (eventsError && eventsError.status !== 401) {
    content = h('p', { class: 'notice notice-error' }, `Could not load the timeline: ${eventsError.detail}`);
  } else if (!events) {
    content = h('p', { class: 'muted' }, 'Loading timeline…');
  } else if (!events.length) {
    content = h('p', { class: 'muted' }, 'No events yet.');
  }
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'timeline-title' },
    h('h2', { id: 'timeline-title', class: 'card-title' }, 'Timeline'),
    content,
    h(
      'ol',
      { class: 'timeline', 'data-testid': 'timeline', 'aria-label': 'Events, newest first', hidden: !events?.length },
      (events || []).map((e) =>
        h(
          'li',
          { class: 'timeline-item', 'data-kind': e.kind },
          h('div', { class: 'timeline-meta' }, timeEl(e.at, { mode: 'absolute' }), h('span', { class: 'kind' }, e.kind)),
          h('p', { class: 'timeline-message' }, e.message),
        ),
      ),
    ),
  );
}
