//! Issuance over ACME (RFC 8555) with instant-acme, HTTP-01 only.
//!
//! One account per directory URL serves every tenant. The order flow is a state
//! machine: each arm handles one ACME state, writes what a takeover would need to
//! PostgreSQL (the order URL, the challenge response, the CSR's key) before the next
//! network step, and records an event.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeStatus, ChallengeType, Identifier,
    NewAccount, NewOrder, Order, OrderStatus,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};

use landlord_store::{
    Budgets, DomainId, Hostname, MasterKey, OrderRequest, Reservation, Store, TenantId,
};

use crate::IssueError;
use crate::lease::Progress;

pub struct AcmeIssuer {
    account: Account,
    directory_url: String,
}

#[derive(Debug, Clone)]
pub struct AcmeConfig {
    pub directory_url: String,
    pub extra_roots: Option<PathBuf>,
    pub contact: Option<String>,
}

/// How long an order may take from this round's first request to its certificate.
const ORDER_DEADLINE: Duration = Duration::from_secs(90);

/// The part of a claimed domain the order flow needs.
pub struct OrderContext<'a> {
    pub store: &'a Store,
    pub key: &'a MasterKey,
    /// The claim's lease: every write is fenced with it.
    pub lease: &'a str,
    pub tenant: TenantId,
    pub domain: DomainId,
    pub hostname: &'a Hostname,
    pub order_url: Option<&'a str>,
    pub order_key_sealed: Option<&'a [u8]>,
    /// For a renewal: the RFC 9773 identifier of the certificate it replaces.
    pub replaces: Option<&'a str>,
    /// The domain already had a certificate (Let's Encrypt's "renewal": same names).
    pub renewal: bool,
    pub registered_domain: &'a str,
    pub budgets: &'a Budgets,
    /// Marked at every answer from the CA (the lease is renewed while it moves).
    pub progress: &'a Progress,
    /// The longest wait between two polls of the order: well under the silence after
    /// which the exchange counts as stalled.
    pub max_poll_interval: Duration,
    /// How the CA is shown control of the name.
    pub proof: Proof<'a>,
    /// HTTP-01: how long to wait for every live edge to have the challenge in memory
    /// before the CA is told (edges on replicas replay behind the primary).
    pub edge_sync_timeout: Duration,
}

/// How the CA is shown control of a name.
pub enum Proof<'a> {
    /// HTTP-01: the key authorization, served by every edge from PostgreSQL.
    Http01,
    /// DNS-01: a TXT record at `record` (a name in `zone`, where the name's
    /// `_acme-challenge` CNAME points), written over RFC 2136 and seen on the zone's
    /// servers before the CA is told.
    Dns01 {
        updater: &'a crate::dns::update::DnsUpdater,
        zone: hickory_proto::rr::Name,
        record: hickory_proto::rr::Name,
        /// The longest the written record may take to show on the zone's servers.
        propagation: Duration,
    },
}

impl AcmeIssuer {
    /// The directory URL, which keys the CA's budgets in the ledger.
    pub fn directory_url(&self) -> &str {
        &self.directory_url
    }

    /// Restore the shared account from PostgreSQL, or create it (once, cluster-wide).
    pub async fn connect(
        store: &Store,
        key: &MasterKey,
        config: &AcmeConfig,
    ) -> anyhow::Result<Self> {
        let context = landlord_store::acme_account_context(&config.directory_url);
        let builder = || match &config.extra_roots {
            Some(path) => Account::builder_with_root(path),
            None => Account::builder(),
        };
        async fn restore(
            builder: instant_acme::AccountBuilder,
            key: &MasterKey,
            sealed: &[u8],
            context: &str,
        ) -> anyhow::Result<Account> {
            let credentials: AccountCredentials =
                serde_json::from_slice(&key.open(sealed, context)?)?;
            Ok(builder.from_credentials(credentials).await?)
        }
        if let Some(sealed) = store.acme_account(&config.directory_url).await? {
            return Ok(Self {
                account: restore(builder()?, key, &sealed, &context).await?,
                directory_url: config.directory_url.clone(),
            });
        }
        let _lock = store.lock(&context).await?;
        if let Some(sealed) = store.acme_account(&config.directory_url).await? {
            return Ok(Self {
                account: restore(builder()?, key, &sealed, &context).await?,
                directory_url: config.directory_url.clone(),
            });
        }
        let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()?
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                config.directory_url.clone(),
                None,
            )
            .await
            .context("creating the ACME account")?;
        store
            .save_acme_account(
                &config.directory_url,
                &key.seal(&serde_json::to_vec(&credentials)?, &context),
            )
            .await?;
        tracing::info!(directory = %config.directory_url, "ACME account created");
        Ok(Self {
            account,
            directory_url: config.directory_url.clone(),
        })
    }

    /// Run (or resume) the order for one hostname to a certificate chain. Returns the
    /// chain PEM and the PKCS#8 PEM of its key. Each arm handles one order status; the
    /// loop polls the order itself (rather than instant-acme's `poll_*`), so every answer
    /// from the CA marks progress and every write is fenced by the lease.
    pub async fn obtain(&self, ctx: &OrderContext<'_>) -> Result<(String, String), IssueError> {
        let key_context = landlord_store::order_key_context(ctx.hostname.as_str());
        let mut key_pem = stored_order_key(ctx, &key_context);
        let mut order = self.open_order(ctx).await?;
        let deadline = tokio::time::Instant::now() + ORDER_DEADLINE;
        let mut delay = Duration::from_millis(250);
        let mut answered = false;
        loop {
            let status = order.refresh().await.map_err(IssueError::from_acme)?.status;
            ctx.progress.mark();
            match status {
                OrderStatus::Pending if !answered => {
                    self.answer_challenges(&mut order, ctx).await?;
                    answered = true;
                }
                OrderStatus::Pending => wait(&mut delay, ctx.max_poll_interval, deadline).await?,
                OrderStatus::Ready => {
                    key_pem = Some(self.finalize(&mut order, ctx, &key_context).await?);
                }
                OrderStatus::Processing | OrderStatus::Valid if key_pem.is_none() => {
                    // Finalized by a round whose key is gone: the certificate is useless
                    // to us. Drop the order and place a new one now.
                    tracing::warn!(
                        "the order in flight was finalized with a key that is lost; placing a new order"
                    );
                    fenced(
                        ctx.store
                            .forget_order(
                                ctx.domain,
                                ctx.lease,
                                "The order in flight was finalized with a key that is no longer available; placing a new order.",
                            )
                            .await,
                    )?;
                    order = self.new_order(ctx).await?;
                    answered = false;
                }
                OrderStatus::Processing => {
                    wait(&mut delay, ctx.max_poll_interval, deadline).await?
                }
                OrderStatus::Valid => {
                    let Some(chain) = order.certificate().await.map_err(IssueError::from_acme)?
                    else {
                        wait(&mut delay, ctx.max_poll_interval, deadline).await?;
                        continue;
                    };
                    ctx.progress.mark();
                    let key = key_pem
                        .take()
                        .ok_or_else(|| IssueError::internal("no key"))?;
                    return Ok((chain, key));
                }
                OrderStatus::Invalid => return Err(self.why_invalid(&mut order).await),
            }
        }
    }

    /// Finalize a ready order with a new key, persisted (sealed) before the CSR goes out:
    /// a worker taking over a finalized order needs it. Returns the key's PEM.
    async fn finalize(
        &self,
        order: &mut Order,
        ctx: &OrderContext<'_>,
        key_context: &str,
    ) -> Result<String, IssueError> {
        let key = KeyPair::generate().map_err(IssueError::internal)?;
        let pem = key.serialize_pem();
        let sealed = ctx.key.seal(pem.as_bytes(), key_context);
        fenced(
            ctx.store
                .save_order(ctx.domain, ctx.lease, order.url(), Some(&sealed))
                .await,
        )?;
        let mut params =
            CertificateParams::new(vec![ctx.hostname.to_string()]).map_err(IssueError::internal)?;
        params.distinguished_name = DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(IssueError::internal)?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(IssueError::from_acme)?;
        ctx.progress.mark();
        Ok(pem)
    }

    /// Resume the order in flight, or place a new one.
    async fn open_order(&self, ctx: &OrderContext<'_>) -> Result<Order, IssueError> {
        if let Some(url) = ctx.order_url {
            match self.account.order(url.to_owned()).await {
                Ok(mut order) => {
                    ctx.progress.mark();
                    if order.state().status != OrderStatus::Invalid {
                        tracing::info!(hostname = %ctx.hostname, "resuming the order in flight");
                        return Ok(order);
                    }
                }
                Err(e) => {
                    tracing::info!(error = %e, "the order in flight cannot be resumed; placing a new one")
                }
            }
        }
        self.new_order(ctx).await
    }

    /// Reserve a new order against the budgets, place it, and record it.
    async fn new_order(&self, ctx: &OrderContext<'_>) -> Result<Order, IssueError> {
        let request = OrderRequest {
            ca: &self.directory_url,
            tenant_id: ctx.tenant,
            domain_id: ctx.domain,
            hostname: ctx.hostname.as_str(),
            registered_domain: ctx.registered_domain,
            renewal: ctx.renewal,
        };
        match ctx
            .store
            .reserve_order(ctx.budgets, &request)
            .await
            .map_err(IssueError::internal)?
        {
            Reservation::Granted => {}
            Reservation::Queued {
                kind,
                budget,
                used,
                until,
            } => {
                return Err(IssueError::Queued {
                    reason: crate::queued_reason(kind, budget, used, until, &request),
                    until,
                });
            }
        }
        let order = self.place_order(ctx.hostname, ctx.replaces).await?;
        ctx.progress.mark();
        fenced(
            ctx.store
                .record_order_placed(
                    ctx.domain,
                    ctx.lease,
                    order.url(),
                    "Certificate ordered from the CA.",
                )
                .await,
        )?;
        Ok(order)
    }

    /// Place a new order; a renewal names the certificate it `replaces` (exempt from
    /// Let's Encrypt's rate limits) when the CA supports ARI, and falls back to a plain
    /// order when the CA does not or refuses the replacement (e.g. already replaced).
    pub(crate) async fn place_order(
        &self,
        hostname: &Hostname,
        replaces: Option<&str>,
    ) -> Result<Order, IssueError> {
        let identifiers = [Identifier::Dns(hostname.to_string())];
        if let Some(id) = replaces.and_then(crate::ari::parse_certificate_id) {
            match self
                .account
                .new_order(&NewOrder::new(&identifiers).replaces(id))
                .await
            {
                Ok(order) => return Ok(order),
                Err(instant_acme::Error::Unsupported(_)) => {}
                Err(instant_acme::Error::Api(problem))
                    if matches!(
                        problem.r#type.as_deref().and_then(|t| t.rsplit(':').next()),
                        Some("alreadyReplaced" | "malformed" | "conflict")
                    ) =>
                {
                    tracing::info!(
                        %hostname,
                        detail = problem.detail.as_deref().unwrap_or(""),
                        "the CA refused `replaces`; ordering without it"
                    );
                }
                Err(e) => return Err(IssueError::from_acme(e)),
            }
        }
        self.account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(IssueError::from_acme)
    }

    /// The CA's renewal information for a certificate (RFC 9773): the suggested window
    /// and how long to wait before asking again. `Ok(None)` when the CA offers none.
    pub async fn renewal_info(
        &self,
        certificate_id: &str,
    ) -> Result<Option<(instant_acme::RenewalInfo, Duration)>, IssueError> {
        let Some(id) = crate::ari::parse_certificate_id(certificate_id) else {
            return Ok(None);
        };
        match self.account.renewal_info(&id).await {
            Ok(answer) => Ok(Some(answer)),
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(e) => Err(IssueError::from_acme(e)),
        }
    }

    /// Answer every pending authorization the way `ctx.proof` says (published before the
    /// CA is told), then tell the CA to check.
    async fn answer_challenges(
        &self,
        order: &mut Order,
        ctx: &OrderContext<'_>,
    ) -> Result<(), IssueError> {
        let (kind, label) = match &ctx.proof {
            Proof::Http01 => (ChallengeType::Http01, "HTTP-01"),
            Proof::Dns01 { .. } => (ChallengeType::Dns01, "DNS-01"),
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(IssueError::from_acme)?;
            if authz.status != AuthorizationStatus::Pending {
                continue;
            }
            let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| {
                IssueError::Refused(format!(
                    "The CA offered no {label} challenge for this hostname."
                ))
            })?;
            let ready = match &ctx.proof {
                Proof::Http01 => {
                    let token = challenge.token.clone();
                    let key_authorization = challenge.key_authorization().as_str().to_owned();
                    fenced(
                        ctx.store
                            .save_challenge(
                                &token,
                                ctx.domain,
                                ctx.lease,
                                ctx.hostname,
                                &key_authorization,
                            )
                            .await,
                    )?;
                    if challenge.status == ChallengeStatus::Pending {
                        wait_for_edges(ctx).await?;
                    }
                    "HTTP-01 challenge published; the CA is checking it.".to_owned()
                }
                Proof::Dns01 {
                    updater,
                    zone,
                    record,
                    propagation,
                } => {
                    let value = challenge.key_authorization().dns_value();
                    publish_dns01(ctx, updater, (zone, record), &value, *propagation).await?;
                    format!(
                        "DNS-01 record written at {record} and seen on its zone's servers; the CA is checking it."
                    )
                }
            };
            // A resumed order's challenge may already be with the CA.
            if challenge.status != ChallengeStatus::Pending {
                continue;
            }
            challenge.set_ready().await.map_err(IssueError::from_acme)?;
            ctx.progress.mark();
            fenced(
                ctx.store
                    .record_event(
                        ctx.domain,
                        ctx.lease,
                        landlord_store::EventKind::ChallengeReady,
                        &ready,
                    )
                    .await,
            )?;
        }
        Ok(())
    }

    /// Find out why the CA refused: the order's error, or a failed challenge's.
    async fn why_invalid(&self, order: &mut Order) -> IssueError {
        if let Some(problem) = order.state().error.clone() {
            return IssueError::from_problem(&problem);
        }
        let mut authorizations = order.authorizations();
        while let Some(Ok(authz)) = authorizations.next().await {
            for challenge in &authz.challenges {
                if let Some(problem) = &challenge.error {
                    return match challenge.r#type {
                        ChallengeType::Dns01 => IssueError::from_dns01_problem(problem),
                        _ => IssueError::from_problem(problem),
                    };
                }
            }
        }
        IssueError::Refused("The CA marked the order invalid without saying why.".into())
    }
}

/// Wait until every live edge reading a replica has applied what is committed now (the
/// challenge just published): the CA may fetch it from any of them, and one whose replica
/// has not replayed it would answer 404 and fail the validation (spending the CA's
/// failed-validation budget). Edges on the primary look a challenge they have not loaded
/// yet up there, so they are not waited for (no cost in a single region). Bounded: past `edge_sync_timeout` the attempt ends as a
/// transient problem naming the edges that lag, and is retried.
async fn wait_for_edges(ctx: &OrderContext<'_>) -> Result<(), IssueError> {
    let store_error = |e: landlord_store::StoreError| IssueError::internal(e);
    let published = ctx.store.db_now().await.map_err(store_error)?;
    let deadline = tokio::time::Instant::now() + ctx.edge_sync_timeout;
    loop {
        let behind = ctx
            .store
            .edges_behind(published)
            .await
            .map_err(store_error)?;
        if behind.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let names: Vec<String> = behind
                .iter()
                .map(|e| {
                    let region = match e.region.as_str() {
                        "" => String::new(),
                        r => format!(" in {r}"),
                    };
                    let lag = e
                        .replay_lag_seconds
                        .map(|l| format!(", its database replica {l:.0} s behind"))
                        .unwrap_or_default();
                    format!("{}{region}{lag}", e.name)
                })
                .collect();
            metrics::counter!("landlord_worker_edge_sync_timeouts_total").increment(1);
            return Err(IssueError::Transient(format!(
                "The HTTP-01 challenge is published, but {} edge(s) had not loaded it after {} ({}); the CA is not asked to check until every edge can answer it. Retrying.",
                behind.len(),
                crate::schedule::human(ctx.edge_sync_timeout),
                names.join("; ")
            )));
        }
        ctx.progress.mark();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fenced write's answer: `false` means the claim's lease was lost.
/// Write the DNS-01 `value` at `record` (noted first, so a crash leaves nothing a later
/// round does not remove) and wait until the zone's servers show it.
async fn publish_dns01(
    ctx: &OrderContext<'_>,
    updater: &crate::dns::update::DnsUpdater,
    (zone, record): (&hickory_proto::rr::Name, &hickory_proto::rr::Name),
    value: &str,
    propagation: Duration,
) -> Result<(), IssueError> {
    let transient = |e: crate::dns::update::UpdateError| {
        IssueError::Transient(format!("The DNS-01 record could not be written: {e}."))
    };
    fenced(
        ctx.store
            .save_dns_record(
                ctx.domain,
                ctx.lease,
                &zone.to_ascii(),
                &record.to_ascii(),
                value,
            )
            .await,
    )?;
    updater
        .add_txt(zone, record, value)
        .await
        .map_err(transient)?;
    let deadline = tokio::time::Instant::now() + propagation;
    while !updater
        .txt_visible(record, value)
        .await
        .map_err(transient)?
    {
        if tokio::time::Instant::now() >= deadline {
            return Err(IssueError::Transient(format!(
                "The DNS-01 record {record} was written but its zone's servers did not show it within {}.",
                crate::schedule::human(propagation)
            )));
        }
        ctx.progress.mark();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

fn fenced(written: Result<bool, landlord_store::StoreError>) -> Result<(), IssueError> {
    match written {
        Ok(true) => Ok(()),
        Ok(false) => Err(IssueError::LeaseLost),
        Err(e) => Err(IssueError::internal(e)),
    }
}

/// Sleep before polling the order again (backing off to `cap`), unless that would pass
/// `deadline`.
/// The CSR's key, when an earlier round finalized this order. A key that cannot be
/// opened (lost, or sealed under another master key) is as good as missing.
fn stored_order_key(ctx: &OrderContext<'_>, key_context: &str) -> Option<String> {
    let sealed = ctx.order_key_sealed?;
    match ctx.key.open(sealed, key_context).map(String::from_utf8) {
        Ok(Ok(pem)) => Some(pem),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "the stored order key is not PEM");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "the stored order key cannot be opened");
            None
        }
    }
}

async fn wait(
    delay: &mut Duration,
    cap: Duration,
    deadline: tokio::time::Instant,
) -> Result<(), IssueError> {
    if tokio::time::Instant::now() + *delay > deadline {
        return Err(IssueError::Transient(
            "The CA did not finish the order in time; Landlord retries automatically.".into(),
        ));
    }
    tokio::time::sleep(*delay).await;
    *delay = (*delay * 3 / 2).min(cap);
    Ok(())
}

/// The SubjectPublicKeyInfo DER of a PEM key, to match it with the certificate.
pub fn spki_of(key_pem: &str) -> anyhow::Result<(KeyPair, Vec<u8>)> {
    let key = KeyPair::from_pem(key_pem)?;
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    Ok((key, spki))
}

/// The ARI client against recorded RFC 9773 exchanges: instant-acme's real request path
/// with a recorded HTTP transport in place of the network.
#[cfg(test)]
mod recorded {
    use std::collections::VecDeque;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use bytes::Bytes;
    use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

    use super::*;

    const DIRECTORY: &str = "https://ca.test/directory";

    /// Serves queued responses in order and keeps every request (method, URI, body).
    #[derive(Clone, Default)]
    struct Recorded {
        responses: Arc<Mutex<VecDeque<http::Response<Bytes>>>>,
        requests: Arc<Mutex<Vec<Request>>>,
    }

    /// A request as sent: method, URI, body.
    type Request = (String, String, Vec<u8>);

    impl Recorded {
        fn then(self, status: u16, headers: &[(&str, &str)], body: &str) -> Self {
            let mut response = http::Response::builder().status(status);
            for (name, value) in headers {
                response = response.header(*name, *value);
            }
            self.responses
                .lock()
                .unwrap()
                .push_back(response.body(Bytes::from(body.to_owned())).unwrap());
            self
        }
    }

    impl HttpClient for Recorded {
        fn request(
            &self,
            req: http::Request<BodyWrapper<Bytes>>,
        ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>>
        {
            let this = self.clone();
            Box::pin(async move {
                let (parts, body) = req.into_parts();
                let body = http_body_util::BodyExt::collect(body)
                    .await
                    .map(|b| b.to_bytes().to_vec())
                    .unwrap_or_default();
                this.requests.lock().unwrap().push((
                    parts.method.to_string(),
                    parts.uri.to_string(),
                    body,
                ));
                let response = this
                    .responses
                    .lock()
                    .unwrap()
                    .pop_front()
                    .expect("no recorded response left");
                let (parts, body) = response.into_parts();
                Ok(BytesResponse {
                    parts,
                    body: Box::new(body),
                })
            })
        }
    }

    fn directory(with_ari: bool) -> String {
        let mut d = serde_json::json!({
            "newNonce": "https://ca.test/nonce",
            "newAccount": "https://ca.test/account",
            "newOrder": "https://ca.test/order",
        });
        if with_ari {
            d["renewalInfo"] = "https://ca.test/renewal-info".into();
        }
        d.to_string()
    }

    async fn issuer(http: Recorded) -> AcmeIssuer {
        let key = KeyPair::generate().unwrap();
        let credentials: AccountCredentials = serde_json::from_value(serde_json::json!({
            "id": "https://ca.test/account/1",
            "key_pkcs8": URL_SAFE_NO_PAD.encode(key.serialize_der()),
            "directory": DIRECTORY,
        }))
        .unwrap();
        let account = Account::builder_with_http(Box::new(http))
            .from_credentials(credentials)
            .await
            .unwrap();
        AcmeIssuer {
            account,
            directory_url: DIRECTORY.into(),
        }
    }

    const ID: &str = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE";

    #[tokio::test]
    async fn renewal_info_is_fetched_for_the_certificate() {
        let http = Recorded::default()
            .then(200, &[], &directory(true))
            .then(
                200,
                &[("Retry-After", "21600"), ("Content-Type", "application/json")],
                r#"{"suggestedWindow":{"start":"2025-01-02T04:00:00Z","end":"2025-01-03T04:00:00Z"},"explanationURL":"https://acme.example.com/docs/ari"}"#,
            );
        let issuer = issuer(http.clone()).await;
        let (info, retry_after) = issuer.renewal_info(ID).await.unwrap().unwrap();
        assert_eq!(
            info.suggested_window.start,
            time::macros::datetime!(2025-01-02 04:00 UTC)
        );
        assert!(
            retry_after > Duration::from_secs(21_000) && retry_after <= Duration::from_secs(21_600)
        );
        let requests = http.requests.lock().unwrap();
        assert_eq!(requests[1].0, "GET");
        assert_eq!(requests[1].1, format!("https://ca.test/renewal-info/{ID}"));
    }

    #[tokio::test]
    async fn no_renewal_info_without_ari_in_the_directory() {
        let http = Recorded::default().then(200, &[], &directory(false));
        let issuer = issuer(http.clone()).await;
        assert!(issuer.renewal_info(ID).await.unwrap().is_none());
        assert_eq!(
            http.requests.lock().unwrap().len(),
            1,
            "no request beyond the directory"
        );
    }

    #[tokio::test]
    async fn an_ari_error_is_transient() {
        let http = Recorded::default()
            .then(200, &[], &directory(true))
            .then(
                500,
                &[("Retry-After", "60"), ("Content-Type", "application/problem+json")],
                r#"{"type":"urn:ietf:params:acme:error:serverInternal","detail":"try later","status":500}"#,
            );
        let issuer = issuer(http).await;
        assert!(matches!(
            issuer.renewal_info(ID).await,
            Err(IssueError::Transient(_))
        ));
    }

    fn order_response(replaces: Option<&str>) -> String {
        let mut o = serde_json::json!({
            "status": "pending",
            "identifiers": [{"type": "dns", "value": "status.example.com"}],
            "authorizations": [],
            "finalize": "https://ca.test/order/1/finalize",
        });
        if let Some(r) = replaces {
            o["replaces"] = r.into();
        }
        o.to_string()
    }

    /// The payload of a JWS request body.
    fn payload(body: &[u8]) -> serde_json::Value {
        let jws: serde_json::Value = serde_json::from_slice(body).unwrap();
        let raw = URL_SAFE_NO_PAD
            .decode(jws["payload"].as_str().unwrap())
            .unwrap();
        serde_json::from_slice(&raw).unwrap()
    }

    impl Recorded {
        /// The answer to a newNonce request.
        fn nonce(self, nonce: &str) -> Self {
            self.then(200, &[("Replay-Nonce", nonce)], "")
        }

        /// The answer to an accepted newOrder, reflecting `replaces` as RFC 9773 requires.
        fn order_created(self, nonce: &str, replaces: Option<&str>) -> Self {
            self.then(
                201,
                &[
                    ("Replay-Nonce", nonce),
                    ("Location", "https://ca.test/order/1"),
                ],
                &order_response(replaces),
            )
        }
    }

    /// Place a renewal order for the certificate `ID`; the requests the CA received.
    async fn renew(http: Recorded) -> Vec<Request> {
        issuer(http.clone())
            .await
            .place_order(&Hostname::parse("status.example.com").unwrap(), Some(ID))
            .await
            .unwrap();
        http.requests.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn a_renewal_order_names_what_it_replaces() {
        let http = Recorded::default()
            .then(200, &[], &directory(true))
            .nonce("n1")
            .order_created("n2", Some(ID));
        let requests = renew(http).await;
        let (method, uri, body) = requests.last().unwrap();
        assert_eq!(
            (method.as_str(), uri.as_str()),
            ("POST", "https://ca.test/order")
        );
        assert_eq!(payload(body)["replaces"], ID);
    }

    #[tokio::test]
    async fn a_refused_replacement_falls_back_to_a_plain_order() {
        let http = Recorded::default()
            .then(200, &[], &directory(true))
            .nonce("n1")
            .then(
                409,
                &[("Replay-Nonce", "n2"), ("Content-Type", "application/problem+json")],
                r#"{"type":"urn:ietf:params:acme:error:alreadyReplaced","detail":"certificate already replaced","status":409}"#,
            )
            .nonce("n3")
            .order_created("n4", None);
        let requests = renew(http).await;
        let (_, _, body) = requests.last().unwrap();
        assert!(payload(body).get("replaces").is_none());
    }

    #[tokio::test]
    async fn without_ari_a_renewal_is_a_plain_order() {
        let http = Recorded::default()
            .then(200, &[], &directory(false))
            .nonce("n1")
            .order_created("n2", None);
        let requests = renew(http).await;
        assert_eq!(requests.len(), 3);
        assert!(payload(&requests[2].2).get("replaces").is_none());
    }
}
