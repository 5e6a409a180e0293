// Constants and the one mutable store every module shares. ES module bindings are read-only
// for importers, so whatever other modules change lives in properties of `state` and `ui`.

export const KEY_STORAGE = 'landlord.apiKey';
export const PAGE_SIZE = 50;
export const MAX_PAGE = 1000;
export const POLL_MS = 5000;
export const STREAM_RETRY_MIN_MS = 1000;
export const STREAM_RETRY_MAX_MS = 30000;
export const UPLOAD_CONCURRENCY = 3;
export const IGNORED_FILES = new Set(['.DS_Store', 'Thumbs.db', 'desktop.ini']);

// The signed-in tenant's data (session.js resets it and bumps listEpoch on sign-out).
export const state = {
  key: null,
  domains: [],
  nextCursor: null,
  listLoaded: false,
  listError: null,
  loadingMore: false,
  busy: new Set(), // "check:<id>" / "delete:<id>" while a request is in flight
  detail: null, // { id, domain, events, error, eventsError }
  site: null, // { id, site, deployments, domains, busy } on a site's page
  files: null,
  usage: null,
  limits: null,
  filesError: null,
  uploads: [],
  signOutMessage: null,
  listEpoch: 0, // bumped on sign-out so stale responses are dropped
};

export const ui = {
  view: null, // the current view: { name, ...elements }
  firstRender: true,
};
