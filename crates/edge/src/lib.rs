//! `landlord-edge`: what tenants' visitors and the CA reach.
//!
//! This release has the plain-HTTP listener: the ACME HTTP-01 responder (answers come
//! from PostgreSQL, so any edge node can answer for a challenge any worker published),
//! `308` to HTTPS for registered hostnames, `404` for everything else.

mod http;

pub use http::{http_router, serve_http};
