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
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, Order, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};

use landlord_store::{MasterKey, Store};

use crate::IssueError;

pub struct AcmeIssuer {
    account: Account,
}

#[derive(Debug, Clone)]
pub struct AcmeConfig {
    pub directory_url: String,
    pub extra_roots: Option<PathBuf>,
    pub contact: Option<String>,
}

/// The part of a claimed domain the order flow needs.
pub struct OrderContext<'a> {
    pub store: &'a Store,
    pub key: &'a MasterKey,
    pub owner: &'a str,
    pub domain: uuid::Uuid,
    pub hostname: &'a str,
    pub order_url: Option<&'a str>,
    pub order_key_sealed: Option<&'a [u8]>,
}

impl AcmeIssuer {
    /// Restore the shared account from PostgreSQL, or create it (once, cluster-wide).
    pub async fn connect(
        store: &Store,
        key: &MasterKey,
        config: &AcmeConfig,
    ) -> anyhow::Result<Self> {
        let context = format!("acme-account:{}", config.directory_url);
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
            });
        }
        let _lock = store.lock(&context).await?;
        if let Some(sealed) = store.acme_account(&config.directory_url).await? {
            return Ok(Self {
                account: restore(builder()?, key, &sealed, &context).await?,
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
        Ok(Self { account })
    }

    /// Run (or resume) the order for one hostname to a certificate chain. Returns the
    /// chain PEM and the PKCS#8 PEM of its key.
    pub async fn obtain(&self, ctx: &OrderContext<'_>) -> Result<(String, String), IssueError> {
        let mut order = self.open_order(ctx).await?;
        let key_context = format!("order-key:{}", ctx.hostname);
        let mut key_pem: Option<String> = match ctx.order_key_sealed {
            Some(sealed) => Some(
                String::from_utf8(
                    ctx.key
                        .open(sealed, &key_context)
                        .map_err(IssueError::internal)?,
                )
                .map_err(IssueError::internal)?,
            ),
            None => None,
        };
        let poll = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(Duration::from_secs(90));
        loop {
            let status = order.refresh().await.map_err(IssueError::from_acme)?.status;
            match status {
                OrderStatus::Pending => {
                    self.answer_challenges(&mut order, ctx).await?;
                    order
                        .poll_ready(&poll)
                        .await
                        .map_err(IssueError::from_acme)?;
                }
                OrderStatus::Ready => {
                    let key = KeyPair::generate().map_err(IssueError::internal)?;
                    let pem = key.serialize_pem();
                    // Persist the key before finalizing: a worker taking over a finalized
                    // order needs it to use the certificate.
                    let sealed = ctx.key.seal(pem.as_bytes(), &key_context);
                    ctx.store
                        .save_order(ctx.domain, ctx.owner, order.url(), Some(&sealed))
                        .await
                        .map_err(IssueError::internal)?;
                    let mut params = CertificateParams::new(vec![ctx.hostname.to_owned()])
                        .map_err(IssueError::internal)?;
                    params.distinguished_name = DistinguishedName::new();
                    let csr = params
                        .serialize_request(&key)
                        .map_err(IssueError::internal)?;
                    order
                        .finalize_csr(csr.der())
                        .await
                        .map_err(IssueError::from_acme)?;
                    key_pem = Some(pem);
                }
                OrderStatus::Processing | OrderStatus::Valid => {
                    let chain = order
                        .poll_certificate(&poll)
                        .await
                        .map_err(IssueError::from_acme)?;
                    let key = key_pem.ok_or_else(|| {
                        IssueError::Transient("the order was finalized by a worker whose key is lost; starting a new order".into())
                    })?;
                    return Ok((chain, key));
                }
                OrderStatus::Invalid => return Err(self.why_invalid(&mut order).await),
            }
        }
    }

    async fn open_order(&self, ctx: &OrderContext<'_>) -> Result<Order, IssueError> {
        if let Some(url) = ctx.order_url {
            match self.account.order(url.to_owned()).await {
                Ok(mut order) => {
                    if order.state().status != OrderStatus::Invalid {
                        tracing::info!(hostname = ctx.hostname, "resuming the order in flight");
                        return Ok(order);
                    }
                }
                Err(e) => {
                    tracing::info!(error = %e, "the order in flight cannot be resumed; placing a new one")
                }
            }
        }
        let identifiers = [Identifier::Dns(ctx.hostname.to_owned())];
        let order = self
            .account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(IssueError::from_acme)?;
        ctx.store
            .record_order_placed(
                ctx.domain,
                ctx.owner,
                order.url(),
                "Certificate ordered from the CA.",
            )
            .await
            .map_err(IssueError::internal)?;
        Ok(order)
    }

    /// Publish every pending HTTP-01 response in PostgreSQL, then tell the CA to check.
    async fn answer_challenges(
        &self,
        order: &mut Order,
        ctx: &OrderContext<'_>,
    ) -> Result<(), IssueError> {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(IssueError::from_acme)?;
            if authz.status != AuthorizationStatus::Pending {
                continue;
            }
            let mut challenge = authz.challenge(ChallengeType::Http01).ok_or_else(|| {
                IssueError::Refused("The CA offered no HTTP-01 challenge for this hostname.".into())
            })?;
            let token = challenge.token.clone();
            let key_authorization = challenge.key_authorization().as_str().to_owned();
            ctx.store
                .save_challenge(&token, ctx.domain, ctx.hostname, &key_authorization)
                .await
                .map_err(IssueError::internal)?;
            challenge.set_ready().await.map_err(IssueError::from_acme)?;
            ctx.store
                .record_event(
                    ctx.domain,
                    ctx.owner,
                    "challenge_ready",
                    "HTTP-01 challenge published; the CA is checking it.",
                )
                .await
                .map_err(IssueError::internal)?;
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
                    return IssueError::from_problem(problem);
                }
            }
        }
        IssueError::Refused("The CA marked the order invalid without saying why.".into())
    }
}

/// The SubjectPublicKeyInfo DER of a PEM key, to match it with the certificate.
pub fn spki_of(key_pem: &str) -> anyhow::Result<(KeyPair, Vec<u8>)> {
    let key = KeyPair::from_pem(key_pem)?;
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    Ok((key, spki))
}
