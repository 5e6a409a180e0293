// End-to-end test of the tenant dashboard in a real headless Chromium, against real
// `landlord all` (API + worker + edge), PostgreSQL, Pebble and pebble-challtestsrv.
//
// Run through scripts/test-browser.sh, which starts the platform and sets:
//   LANDLORD_BROWSER_API_URL      http://127.0.0.1:<port> (the API, which serves the dashboard)
//   LANDLORD_BROWSER_API_KEY      a fresh tenant's API key
//   LANDLORD_BROWSER_CHALLTESTSRV pebble-challtestsrv's management URL (the DNS mock)
//   LANDLORD_BROWSER_EDGE_HTTPS   the edge's HTTPS listener (ip:port), to fetch deployed pages
//   LANDLORD_BROWSER_ARTIFACTS    where screenshots go (default ../../target/browser)
//   LANDLORD_BROWSER_CHROMIUM     the browser (default /usr/bin/chromium)
// and, when the platform runs with DNS-01 (scripts/test-dns.sh started, as in `just test`):
//   LANDLORD_BROWSER_ACME_DNS_ZONE   its LANDLORD_ACME_DNS_ZONE (domains show dcv_delegation)
//   LANDLORD_BROWSER_PLATFORM_DOMAIN its LANDLORD_PLATFORM_DOMAIN (sites show platform_hostname)
// (empty or unset: the checks of what they show become checks that it is absent).
//
// The steps share one page and run in order; once one fails the rest are skipped, so the
// first failure is the one reported. Every wait is on a condition with a deadline.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    throw new Error(`${name} is not set: run this test through scripts/test-browser.sh`);
  }
  return value;
}

const API = env('LANDLORD_BROWSER_API_URL').replace(/\/+$/, '');
const KEY = env('LANDLORD_BROWSER_API_KEY');
const CHALLTESTSRV = env('LANDLORD_BROWSER_CHALLTESTSRV', process.env.LANDLORD_TEST_CHALLTESTSRV).replace(/\/+$/, '');
const ARTIFACTS = env('LANDLORD_BROWSER_ARTIFACTS', path.resolve(here, '../../target/browser'));
const CHROMIUM = env('LANDLORD_BROWSER_CHROMIUM', '/usr/bin/chromium');
const EDGE = env('LANDLORD_BROWSER_EDGE_HTTPS');
const DCV_ZONE = process.env.LANDLORD_BROWSER_ACME_DNS_ZONE || '';
const PLATFORM_DOMAIN = process.env.LANDLORD_BROWSER_PLATFORM_DOMAIN || '';

const TARGET = 'edge.platform.test';
const HOST = `shop-${Math.random().toString(36).slice(2, 12)}.customer.test`;
const WILDCARD_BASE = `wild-${Math.random().toString(36).slice(2, 12)}.customer.test`;
const UI_MS = 15_000; // anything the page does by itself
const DNS_CHECK_MS = 60_000; // the worker's first DNS check of a new domain
const ISSUE_MS = 60_000; // check-now → certificate from Pebble → badge "active"

const INDEX_HTML = Buffer.from(
  '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Shop</title></head>\n' +
    `<body><h1>Hello from ${HOST}</h1><p>Uploaded by the dashboard browser test.</p></body></html>\n`,
);

// ---------------------------------------------------------------------------------------
// Browser, and everything the page does that should fail the test

let browser;
let page;
let loads = 0; // full page loads: the live-update steps must not cause any
const pageErrors = []; // uncaught exceptions, unexpected console errors, unexpected HTTP errors
const httpSeen = []; // every HTTP error answer, for the failure message
const httpAllowed = []; // predicates for error answers a step expects

function allowHttp(description, pred) {
  httpAllowed.push({ description, pred });
}

function takeErrors() {
  const errors = pageErrors.splice(0);
  assert.deepEqual(errors, [], `the page reported errors:\n${errors.join('\n')}`);
}

async function shot(name) {
  if (!page) return;
  try {
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  } catch (err) {
    console.error(`screenshot ${name} failed: ${err.message}`);
  }
}

async function dns(route, body) {
  const res = await fetch(`${CHALLTESTSRV}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.ok(res.ok, `challtestsrv ${route} answered ${res.status}`);
}

async function apiGet(route) {
  return fetch(`${API}${route}`, { headers: { authorization: `Bearer ${KEY}` } });
}

// GET https://HOST<route> from the edge (SNI and Host: HOST; Pebble's chain is not checked
// here, the Rust end-to-end tests do). Resolves { status, headers, body (decoded) }.
function edgeGet(route, headers = {}) {
  const [host, port] = EDGE.split(':');
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host, port: Number(port), path: route, servername: HOST, rejectUnauthorized: false, headers: { host: HOST, ...headers } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          let body = Buffer.concat(chunks);
          if (res.headers['content-encoding'] === 'br') body = brotliDecompressSync(body);
          resolve({ status: res.statusCode, headers: res.headers, body: body.toString('utf8') });
        });
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`edge GET ${route} timed out`)));
    req.end();
  });
}

// A site's folder on disk: { dir, files: { path: body } }.
function siteFolder(version) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'landlord-site-'));
  const files = {
    'index.html': `<!doctype html><title>Docs</title>\n${'<p>Documentation paragraph.</p>\n'.repeat(80)}<p>docs ${version}</p>\n`,
    'css/site.css': `/* ${version} */ body { font-family: sans-serif }\n`,
    '_redirects': '/old /index.html 301\n',
    'café.html': `<p>accents ${version}</p>`,
    [`guides/${'a-rather-long-directory-name/'.repeat(3)}page.html`]: `<p>deep ${version}</p>`,
  };
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, 'site', name)), { recursive: true });
    writeFileSync(path.join(dir, 'site', name), body);
  }
  return { dir, root: path.join(dir, 'site'), files };
}

const reEscape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function waitFor(what, ms, probe) {
  const end = Date.now() + ms;
  for (;;) {
    const last = await probe();
    if (last === true) return;
    if (Date.now() > end) assert.fail(`${what}: still ${JSON.stringify(last)} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Steps: run in order; after a failure the rest are skipped (and a screenshot is taken).
let broken = null;
let shotNo = 0;

function step(name, fn, timeoutMs = 60_000) {
  it(name, { timeout: timeoutMs + 30_000 }, async (t) => {
    if (broken) {
      t.skip(`an earlier step failed: ${broken}`);
      return;
    }
    try {
      await fn(t);
      takeErrors();
    } catch (err) {
      broken = name;
      await shot(`failed-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`);
      const extra = pageErrors.length ? `\npage errors:\n${pageErrors.join('\n')}` : '';
      if (extra) err.message += extra;
      throw err;
    }
  });
}

function screenshot(name) {
  shotNo += 1;
  return shot(`${String(shotNo).padStart(2, '0')}-${name}`);
}

const byTestId = (id) => page.getByTestId(id);
const domainRow = () => page.locator(`[data-testid="domain-row"][data-hostname="${HOST}"]`);

// ---------------------------------------------------------------------------------------

describe('tenant dashboard in Chromium against the real platform', () => {
  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    // The CNAME target resolves to the edge. add-a appends, so clear first.
    await dns('/clear-a', { host: TARGET });
    await dns('/add-a', { host: TARGET, addresses: ['127.0.0.1'] });

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-GB' });
    page = await context.newPage();
    page.setDefaultTimeout(UI_MS);

    page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.stack || err.message}`));
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      // Chromium's own line for every 4xx/5xx answer; those are judged by status below.
      if (msg.text().startsWith('Failed to load resource: the server responded with a status of')) return;
      pageErrors.push(`console.error: ${msg.text()}`);
    });
    page.on('response', (res) => {
      if (res.status() < 400) return;
      const req = res.request();
      const url = new URL(res.url());
      const seen = { method: req.method(), path: url.pathname + url.search, status: res.status() };
      httpSeen.push(seen);
      if (!httpAllowed.some((a) => a.pred(seen))) {
        pageErrors.push(`unexpected HTTP ${seen.status} for ${seen.method} ${seen.path}`);
      }
    });
    page.on('load', () => {
      loads += 1;
    });
  });

  after(async () => {
    await browser?.close();
    const seen = httpSeen.map((r) => `${r.status} ${r.method} ${r.path}`);
    console.log(`# HTTP error answers seen by the page: ${seen.length ? seen.join('; ') : 'none'}`);
  });

  step('the dashboard loads and shows the sign-in form', async () => {
    await page.goto(`${API}/`);
    await byTestId('api-key').waitFor();
    assert.equal(await page.title(), 'Sign in · Landlord');
    assert.equal(await byTestId('api-key').getAttribute('type'), 'password');
  });

  step('a wrong API key is refused with the API’s message', async () => {
    allowHttp('401 for the wrong key', (r) => r.status === 401 && r.method === 'GET' && r.path === '/v1/domains?limit=1');
    const answer = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/domains' && r.request().method() === 'GET');
    await byTestId('api-key').fill('ll_this_key_does_not_exist_0123456789');
    await byTestId('sign-in').click();
    const res = await answer;
    assert.equal(res.status(), 401);
    const problem = await res.json();
    const error = byTestId('sign-in-error');
    await error.waitFor();
    assert.equal((await error.textContent()).trim(), problem.detail || problem.title);
    assert.equal(await byTestId('api-key').getAttribute('aria-invalid'), 'true');
    // Still signed out: the key was not kept.
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal(await byTestId('sign-out').isVisible(), false);
    await screenshot('sign-in-wrong-key');
  });

  step('the real API key signs in and the live stream connects', async () => {
    await byTestId('api-key').fill(KEY);
    await byTestId('sign-in').click();
    await byTestId('sign-out').waitFor();
    await byTestId('domains-empty').waitFor();
    await page.locator('[data-testid="live-indicator"][data-state="live"]').waitFor();
    assert.equal(await page.title(), 'Domains · Landlord');
    // From here on the page is never reloaded: live updates must do the work.
    await page.evaluate(() => {
      window.__landlordBrowserTest = 'same document';
    });
    await screenshot('signed-in');
  });

  step('an invalid hostname shows the API’s detail inline; a wildcard is sent as typed', async () => {
    allowHttp('4xx for an invalid hostname', (r) => r.status >= 400 && r.status < 500 && r.method === 'POST' && r.path === '/v1/domains');
    const answer = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/domains' && r.request().method() === 'POST');
    await byTestId('new-hostname').fill('not a host');
    await byTestId('add-domain').click();
    const res = await answer;
    assert.ok(res.status() >= 400 && res.status() < 500, `POST /v1/domains answered ${res.status()}`);
    const problem = await res.json();
    assert.ok(problem.detail, `the problem has a detail: ${JSON.stringify(problem)}`);
    const error = byTestId('hostname-error');
    await error.waitFor();
    assert.equal((await error.textContent()).trim(), problem.detail);
    assert.equal(await byTestId('new-hostname').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.locator('[data-testid="domain-row"]').count(), 0);
    assert.equal(await byTestId('flash-error').textContent(), '', 'no global error for a field error');
    await screenshot('hostname-error');

    // A wildcard goes to the API as typed. Without DNS-01 the API refuses it, inline as above;
    // with it, it is registered and its page leads with the delegated-DCV record (the only
    // way such a domain progresses). It is deleted from there.
    const wildcard = `*.${WILDCARD_BASE}`;
    const sent = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/domains' && r.request().method() === 'POST');
    await byTestId('new-hostname').fill(wildcard);
    await byTestId('add-domain').click();
    const wildRes = await sent;
    assert.equal(JSON.parse(wildRes.request().postData()).hostname, wildcard);
    if (!DCV_ZONE) {
      assert.equal(wildRes.status(), 422);
      const refusal = await wildRes.json();
      assert.match(refusal.detail, /wildcard/);
      await error.filter({ hasText: 'wildcard' }).waitFor();
      assert.equal((await error.textContent()).trim(), refusal.detail);
      assert.equal(await page.locator('[data-testid="domain-row"]').count(), 0);
      return;
    }
    allowHttp('404 for the deleted wildcard', (r) => r.status === 404 && r.method === 'GET' && /^\/v1\/domains\/[0-9a-f-]{36}(\/events)?$/.test(r.path));
    assert.equal(wildRes.status(), 201);
    const row = page.locator(`[data-testid="domain-row"][data-hostname="${wildcard}"]`);
    await row.waitFor();
    await error.waitFor({ state: 'hidden' });
    await row.getByTestId('domain-link').click();
    await page.waitForURL(/#\/domains\/[0-9a-f-]{36}$/);
    await byTestId('detail-hostname').filter({ hasText: wildcard }).waitFor();
    const section = page.locator('[data-testid="dcv-delegation"][data-required="true"]');
    await section.getByTestId('dcv-required').waitFor();
    const cells = await section.locator('[data-testid="dcv-delegation-record"] tbody tr[data-type="CNAME"] code').allTextContents();
    assert.equal(cells[0], `_acme-challenge.${WILDCARD_BASE}`);
    assert.match(cells[1], new RegExp(`^[0-9a-f]{32}\\.${reEscape(DCV_ZONE)}$`));
    assert.equal(await section.getByTestId('dcv-delegation-state').getAttribute('data-verified'), 'false');
    // First of the cards, above the overview; and a wildcard has no address to open.
    assert.equal(await page.locator('.detail-body section.card').first().getAttribute('data-testid'), 'dcv-delegation');
    assert.equal(await byTestId('open-site').count(), 0);
    await screenshot('wildcard-delegation');
    await byTestId('delete-domain').click();
    await byTestId('confirm-ok').click();
    await page.waitForURL(/#\/domains$/);
    await byTestId('domains-empty').waitFor();
    assert.equal(await page.locator('[data-testid="domain-row"]').count(), 0);
  });

  step('a valid hostname is added and listed as pending DNS', async () => {
    await byTestId('new-hostname').fill(HOST);
    await byTestId('add-domain').click();
    await domainRow().waitFor();
    await domainRow().locator('[data-testid="status"][data-status="pending_dns"]').waitFor();
    await byTestId('hostname-error').waitFor({ state: 'hidden' });
    assert.equal(await byTestId('new-hostname').inputValue(), '', 'the field is cleared');
    assert.equal(await page.locator('[data-testid="domain-row"]').count(), 1);
  });

  step('its page shows the CNAME to create, then the DNS problem found by the worker', async () => {
    await domainRow().getByTestId('domain-link').click();
    await page.waitForURL(/#\/domains\/[0-9a-f-]{36}$/);
    await byTestId('detail-hostname').filter({ hasText: HOST }).waitFor();
    const cname = byTestId('dns-records').locator('tbody tr[data-type="CNAME"]');
    await cname.waitFor();
    const cells = await cname.locator('code').allTextContents();
    // Every domain has a CNAME target of its own under the platform's.
    assert.equal(cells[0], HOST);
    assert.match(cells[1], new RegExp(`^[0-9a-f]{20}\\.${TARGET.replace(/\./g, '\\.')}$`));
    // With DNS-01, the delegated-DCV CNAME: optional for this name, and not created.
    const id = decodeURIComponent(page.url().split('#/domains/')[1]);
    const delegation = (await (await apiGet(`/v1/domains/${id}`)).json()).dcv_delegation;
    if (DCV_ZONE) {
      const dcv = byTestId('dcv-delegation');
      await dcv.filter({ hasText: 'Certificate before DNS switch (optional)' }).waitFor();
      assert.equal(await dcv.getAttribute('data-required'), null);
      const record = await dcv.locator('[data-testid="dcv-delegation-record"] tbody tr[data-type="CNAME"] code').allTextContents();
      assert.deepEqual(record, [`_acme-challenge.${HOST}`, delegation.value]);
      assert.match(delegation.value, new RegExp(`^[0-9a-f]{32}\\.${reEscape(DCV_ZONE)}$`));
      const state = dcv.getByTestId('dcv-delegation-state');
      assert.equal(await state.getAttribute('data-verified'), 'false');
      assert.match(await state.textContent(), /not found yet/);
    } else {
      assert.equal(delegation, undefined);
      assert.equal(await byTestId('dcv-delegation').count(), 0);
    }
    // The worker checks the new domain by itself; the page learns of it without a reload.
    const problem = byTestId('dns-problem');
    await problem.filter({ hasText: 'has no DNS record yet' }).waitFor({ timeout: DNS_CHECK_MS });
    assert.match(await problem.textContent(), new RegExp(`${HOST.replace(/\./g, '\\.')} has no DNS record yet.*${TARGET.replace(/\./g, '\\.')}`));
    await page.locator('[data-testid="status"][data-status="pending_dns"]').waitFor();
    await byTestId('timeline').locator('li[data-kind="dns_problem"]').first().waitFor();
    await screenshot('domain-dns-problem');
  }, DNS_CHECK_MS);

  step('after the CNAME is created, "Check DNS now" turns the domain active live', async () => {
    const id = decodeURIComponent(page.url().split('#/domains/')[1]);
    // Its own target (the operator's wildcard *.TARGET would make it resolve to the edge).
    const own = (await (await apiGet(`/v1/domains/${id}`)).json()).dns.value;
    await dns('/clear-a', { host: own });
    await dns('/add-a', { host: own, addresses: ['127.0.0.1'] });
    await dns('/clear-aaaa', { host: HOST });
    await dns('/set-cname', { host: HOST, target: own });
    const loadsBefore = loads;
    const started = Date.now();
    const requested = page.waitForResponse(
      (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === `/v1/domains/${id}/check`,
    );
    await byTestId('check-now').click();
    assert.equal((await requested).status(), 202);
    await page.locator('[data-testid="status"][data-status="active"]').waitFor({ timeout: ISSUE_MS });
    const took = Date.now() - started;
    assert.equal(loads, loadsBefore, 'the page was reloaded');
    assert.equal(await page.evaluate(() => window.__landlordBrowserTest), 'same document', 'the page was reloaded');
    await byTestId('timeline').locator('li[data-kind="issued"]').first().waitFor();
    await byTestId('certificate').filter({ hasText: 'Pebble' }).waitFor();
    await byTestId('dns-problem').waitFor({ state: 'detached' });
    assert.equal(await page.locator('[data-testid="live-indicator"]').getAttribute('data-state'), 'live');
    // The API agrees with what the page shows.
    const domain = await (await apiGet(`/v1/domains/${id}`)).json();
    assert.equal(domain.status, 'active');
    const kinds = await byTestId('timeline').locator('li').evaluateAll((els) => els.map((e) => e.dataset.kind));
    for (const kind of ['created', 'dns_problem', 'dns_verified', 'issued']) {
      assert.ok(kinds.includes(kind), `timeline has ${kind}: ${kinds.join(', ')}`);
    }
    console.log(`# active ${took} ms after "Check DNS now"`);
    await screenshot('domain-active');
  }, ISSUE_MS);

  step('an index.html uploaded through the file input is listed and counted', async () => {
    await byTestId('nav-files').click();
    await page.waitForURL(/#\/files$/);
    const usage = byTestId('usage-text');
    await usage.filter({ hasText: /^0 B of / }).waitFor();
    await byTestId('files-empty').waitFor();
    await byTestId('file-input').setInputFiles({ name: 'index.html', mimeType: 'text/html', buffer: INDEX_HTML });
    const row = page.locator('[data-testid="file-row"][data-path="index.html"]');
    await row.waitFor();
    await page.locator('[data-testid="upload-row"][data-path="index.html"][data-state="done"]').waitFor();
    assert.match(await row.textContent(), /text\/html/);
    const listed = await (await apiGet('/v1/files')).json();
    const file = listed.files.find((f) => f.path === 'index.html');
    assert.equal(file?.size, INDEX_HTML.length);
    // The quota counts the body, the path, the type and a fixed overhead per file.
    const cost = file.size + file.path.length + file.content_type.length + listed.usage.file_overhead_bytes;
    assert.equal(listed.usage.used_bytes, cost);
    await usage.filter({ hasText: new RegExp(`^${cost} B of `) }).waitFor();
    // The account's limits, beside its usage.
    await byTestId('limits').filter({ hasText: /Files\s*1 of [\d,.]+ files/ }).waitFor();
    await screenshot('files');
  });

  let siteId;
  let siteSlug;
  let folder;
  step('a site is created in the Sites view and the domain moved to it', async () => {
    allowHttp('422 for an invalid site name', (r) => r.status === 422 && r.method === 'POST' && r.path === '/v1/sites');
    await byTestId('nav-sites').click();
    await page.waitForURL(/#\/sites$/);
    await page.locator('[data-testid="site-row"][data-name="default"]').waitFor();
    // Every site shows its slug, and its platform address when the platform has a domain.
    const defaultSite = (await (await apiGet('/v1/sites')).json()).sites.find((s) => s.default);
    const defaultRow = page.locator('[data-testid="site-row"][data-name="default"]');
    assert.equal(await defaultRow.getByTestId('site-slug').textContent(), defaultSite.slug);
    assert.equal(await defaultRow.getByTestId('platform-hostname').count(), PLATFORM_DOMAIN ? 1 : 0);
    await byTestId('new-site').fill('Not A Name');
    await byTestId('create-site').click();
    await byTestId('site-error').filter({ hasText: 'lower-case' }).waitFor();
    assert.equal(await byTestId('new-site').getAttribute('aria-invalid'), 'true');
    // A refused slug is shown under the slug field, not the name's.
    await byTestId('new-site').fill('docs');
    await byTestId('new-site-slug').fill('Not A Slug');
    const refused = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/sites' && r.request().method() === 'POST');
    await byTestId('create-site').click();
    const problem = await (await refused).json();
    assert.equal(problem.type, '/problems/invalid-slug');
    await byTestId('site-slug-error').filter({ hasText: problem.detail }).waitFor();
    assert.equal(await byTestId('new-site-slug').getAttribute('aria-invalid'), 'true');
    assert.equal(await byTestId('site-error').isVisible(), false);
    assert.equal(await byTestId('new-site').getAttribute('aria-invalid'), null);
    await screenshot('site-slug-refused');
    await byTestId('new-site-slug').fill('');
    await byTestId('create-site').click();
    await page.waitForURL(/#\/sites\/[0-9a-f-]{36}$/);
    siteId = decodeURIComponent(page.url().split('#/sites/')[1]);
    await byTestId('site-name').filter({ hasText: 'docs' }).waitFor();
    // Its slug (the name, free on this fresh platform) and platform address.
    const created = await (await apiGet(`/v1/sites/${siteId}`)).json();
    assert.equal(created.slug, 'docs');
    const address = byTestId('site-address');
    await address.getByTestId('site-slug').filter({ hasText: /^docs$/ }).waitFor();
    assert.equal(await byTestId('site-slug-input').inputValue(), 'docs');
    if (PLATFORM_DOMAIN) {
      assert.equal(created.platform_hostname, `docs.${PLATFORM_DOMAIN}`);
      assert.equal(await address.getByTestId('platform-hostname').getAttribute('href'), `https://docs.${PLATFORM_DOMAIN}/`);
    } else {
      assert.equal(created.platform_hostname, null);
      assert.equal(await address.getByTestId('platform-hostname').count(), 0);
    }
    // Changing it: a taken slug (the default site's) is refused inline, a free one is taken.
    allowHttp('409 for a taken slug', (r) => r.status === 409 && r.method === 'PATCH' && r.path === `/v1/sites/${siteId}`);
    await byTestId('site-slug-input').fill(defaultSite.slug);
    await byTestId('site-slug-submit').click();
    await byTestId('site-slug-error').filter({ hasText: 'taken' }).waitFor();
    assert.equal(await byTestId('site-slug-input').getAttribute('aria-invalid'), 'true');
    siteSlug = `docs-${Math.random().toString(36).slice(2, 8)}`;
    await byTestId('site-slug-input').fill(siteSlug);
    await byTestId('site-slug-error').waitFor({ state: 'hidden' });
    await byTestId('site-slug-submit').click();
    await address.getByTestId('site-slug').filter({ hasText: siteSlug }).waitFor();
    assert.equal((await (await apiGet(`/v1/sites/${siteId}`)).json()).slug, siteSlug);
    if (PLATFORM_DOMAIN) {
      assert.equal(await address.getByTestId('platform-hostname').getAttribute('href'), `https://${siteSlug}.${PLATFORM_DOMAIN}/`);
    }
    assert.equal(await byTestId('site-slug-error').isVisible(), false);
    await byTestId('deploys-empty').waitFor();
    await byTestId('site-no-domains').waitFor();
    await byTestId('move-domain').selectOption({ label: HOST });
    await byTestId('move-domain-submit').click();
    await page.locator(`[data-testid="site-domain"][data-hostname="${HOST}"]`).waitFor();
    const domains = await (await apiGet('/v1/domains')).json();
    assert.equal(domains.domains.find((d) => d.hostname === HOST).site_id, siteId);
    await screenshot('site-created');
  });

  step('a folder picked on the site page is deployed, compressed and served by the edge', async () => {
    folder = siteFolder('v1');
    await byTestId('deploy-folder-input').setInputFiles(folder.root);
    await page.locator('[data-testid="deploy-progress-state"][data-state="done"]').waitFor();
    const liveRow = page.locator('[data-testid="deploy-row"][data-live="true"]');
    await liveRow.waitFor();
    assert.equal(await page.locator('[data-testid="deploy-row"]').count(), 1);
    const [deploy] = (await (await apiGet(`/v1/sites/${siteId}/deployments`)).json()).deployments;
    assert.equal(deploy.live, true);
    assert.equal(deploy.file_count, Object.keys(folder.files).length, 'every file, the common top folder dropped');
    // Every file at its path (the long one through a PAX header, the accented one too);
    // the page compressed from the first answer, since a deploy goes live with its variants.
    await waitFor('the edge serving the deploy', 5_000, async () => (await edgeGet('/')).body.includes('docs v1') || 'old');
    const first = await edgeGet('/', { 'accept-encoding': 'gzip, deflate, br, zstd' });
    assert.equal(first.headers['content-encoding'], 'br');
    assert.equal(first.body, folder.files['index.html']);
    for (const [name, body] of Object.entries(folder.files)) {
      if (name.startsWith('_')) continue;
      const res = await edgeGet(`/${name.split('/').map(encodeURIComponent).join('/')}`);
      assert.equal(res.status, 200, name);
      assert.equal(res.body, body, name);
    }
    // The deploy's own _redirects.
    const moved = await edgeGet('/old');
    assert.equal(moved.status, 301);
    assert.equal(moved.headers.location, '/index.html');
    await screenshot('site-deployed');
  });

  step('an archive deploy goes live, and one click rolls back to the folder deploy', async () => {
    const v2 = siteFolder('v2');
    const archive = path.join(v2.dir, 'site-v2.tar.gz');
    execFileSync('tar', ['-czf', archive, '-C', v2.root, '.']);
    await byTestId('deploy-file-input').setInputFiles(archive);
    await page.locator('[data-testid="deploy-progress-state"][data-state="done"]').filter({ hasText: 'Deployed' }).waitFor();
    await page.locator('[data-testid="deploy-row"]').nth(1).waitFor();
    await page.locator('[data-testid="deploy-row"]').first().and(page.locator('[data-live="true"]')).waitFor();
    await waitFor('the edge serving v2', 5_000, async () => (await edgeGet('/')).body.includes('docs v2') || 'v1');
    assert.equal((await edgeGet('/css/site.css')).body, v2.files['css/site.css']);
    rmSync(v2.dir, { recursive: true, force: true });
    // Roll back: the older row's button.
    const older = page.locator('[data-testid="deploy-row"]').nth(1);
    await older.getByTestId('activate-deploy').filter({ hasText: 'Roll back to this' }).click();
    await page.locator('[data-testid="deploy-row"]').nth(1).and(page.locator('[data-live="true"]')).waitFor();
    await waitFor('the edge serving v1 again', 5_000, async () => (await edgeGet('/')).body.includes('docs v1') || 'v2');
    assert.equal((await edgeGet('/css/site.css')).body, folder.files['css/site.css']);
    rmSync(folder.dir, { recursive: true, force: true });
    await screenshot('site-rolled-back');
  });

  step('deleting the domain asks for confirmation and removes its row', async () => {
    // After a deletion, a live refresh already scheduled for the domain may find it gone.
    allowHttp('404 for the deleted domain', (r) => r.status === 404 && r.method === 'GET' && /^\/v1\/domains\/[0-9a-f-]{36}(\/events)?$/.test(r.path));
    await byTestId('nav-domains').click();
    await domainRow().locator('[data-testid="status"][data-status="active"]').waitFor();
    const id = await domainRow().getAttribute('data-id');
    await domainRow().getByTestId('delete-domain').click();
    const dialog = byTestId('confirm-dialog');
    await dialog.waitFor();
    assert.match(await dialog.textContent(), new RegExp(`Delete ${HOST.replace(/\./g, '\\.')}\\?`));
    await screenshot('delete-confirm');
    await byTestId('confirm-ok').click();
    await dialog.waitFor({ state: 'detached' });
    await domainRow().waitFor({ state: 'detached' });
    await byTestId('domains-empty').waitFor();
    assert.equal((await apiGet(`/v1/domains/${id}`)).status, 404);
    await screenshot('domain-deleted');
  });

  step('a site without domains is deleted from its page', async () => {
    await byTestId('nav-sites').click();
    const row = page.locator(`[data-testid="site-row"][data-id="${siteId}"]`);
    // The list shows the slug changed on the site's page.
    assert.equal(await row.getByTestId('site-slug').textContent(), siteSlug);
    if (PLATFORM_DOMAIN) {
      assert.equal(await row.getByTestId('platform-hostname').getAttribute('href'), `https://${siteSlug}.${PLATFORM_DOMAIN}/`);
    }
    await row.getByTestId('site-link').click();
    await byTestId('site-no-domains').waitFor();
    await byTestId('delete-site').click();
    await byTestId('confirm-ok').click();
    await page.waitForURL(/#\/sites$/);
    await page.locator('[data-testid="site-row"][data-name="default"]').waitFor();
    assert.equal(await page.locator(`[data-testid="site-row"][data-id="${siteId}"]`).count(), 0);
    assert.equal((await apiGet(`/v1/sites/${siteId}`)).status, 404);
  });

  step('an API key is created (secret shown once), listed, and revoked', async () => {
    await page.getByTestId('nav-keys').click();
    await page.locator('h1', { hasText: 'API keys' }).waitFor();
    await page.locator('[data-testid="key-row"]').first().waitFor();
    assert.equal(await page.locator('[data-testid="key-row"]').count(), 1);
    assert.equal(await byTestId('key-current').count(), 1, 'the signed-in key is marked');
    await byTestId('new-key-name').fill('CI');
    await byTestId('create-key').click();
    const secret = (await byTestId('new-key-secret').textContent()).trim();
    assert.match(secret, /^ll_[0-9a-f]{64}$/);
    await page.locator('[data-testid="key-row"]').nth(1).waitFor();
    assert.equal((await (await apiGet('/v1/keys')).json()).keys.length, 2);
    const created = await fetch(`${API}/v1/keys`, { headers: { authorization: `Bearer ${secret}` } });
    assert.equal(created.status, 200, 'the new key works');
    // The page never lists a secret.
    assert.ok(!(await page.locator('[data-testid="keys"]').textContent()).includes(secret));
    await screenshot('api-keys');

    const row = page.locator('[data-testid="key-row"]', { hasText: 'CI' });
    await row.getByTestId('revoke-key').click();
    await byTestId('confirm-ok').click();
    await page.locator('[data-testid="key-row"]', { hasText: 'CI' }).waitFor({ state: 'detached' });
    const revoked = await fetch(`${API}/v1/keys`, { headers: { authorization: `Bearer ${secret}` } });
    assert.equal(revoked.status, 401, 'the revoked key is refused at once');

    // The last key cannot be revoked: the API's reason is shown.
    allowHttp('409 for revoking the last key', (r) => r.status === 409 && r.method === 'DELETE' && r.path.startsWith('/v1/keys/'));
    await page.locator('[data-testid="key-row"]').first().getByTestId('revoke-key').click();
    await byTestId('confirm-ok').click();
    await page.locator('[data-testid="flash-error"]', { hasText: 'only live API key' }).waitFor();
    assert.equal(await page.locator('[data-testid="key-row"]').count(), 1);
  });

  step('signing out forgets the key', async () => {
    await byTestId('sign-out').click();
    await byTestId('api-key').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    assert.equal(await page.locator('[data-testid="live-indicator"]').getAttribute('data-state'), 'off');
    assert.equal(await page.evaluate(() => window.__landlordBrowserTest), 'same document', 'the page was reloaded');
  });
});
