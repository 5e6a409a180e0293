//! The local issuer (`LANDLORD_ISSUER=local`): a CA of our own, created once per
//! database and kept (key sealed) in PostgreSQL, signing leaf certificates directly.
//! For development and tests; browsers trust it only after `landlord ca export`.

use std::time::Duration;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

use landlord_store::{MasterKey, Store};

use landlord_store::LOCAL_CA_CONTEXT as KEY_CONTEXT;

pub struct LocalCa {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    validity: Duration,
}

impl LocalCa {
    /// Load the CA, creating it if this database has none (under a cluster-wide lock, so
    /// two workers starting together create one).
    pub async fn load_or_create(
        store: &Store,
        key: &MasterKey,
        validity: Duration,
    ) -> anyhow::Result<Self> {
        if let Some(ca) = Self::load(store, key, validity).await? {
            return Ok(ca);
        }
        let _lock = store.lock("landlord:local-ca").await?;
        if let Some(ca) = Self::load(store, key, validity).await? {
            return Ok(ca);
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Landlord local CA");
        dn.push(DnType::OrganizationName, "Landlord (development)");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = OffsetDateTime::now_utc() - time::Duration::hours(1);
        params.not_after = OffsetDateTime::now_utc() + time::Duration::days(3650);
        let ca_key = KeyPair::generate()?;
        let cert = params.self_signed(&ca_key)?;
        store
            .save_local_ca(
                &cert.pem(),
                &key.seal(ca_key.serialize_pem().as_bytes(), KEY_CONTEXT),
            )
            .await?;
        tracing::info!("created the local CA");
        Self::load(store, key, validity)
            .await?
            .context("local CA vanished after creation")
    }

    async fn load(
        store: &Store,
        key: &MasterKey,
        validity: Duration,
    ) -> anyhow::Result<Option<Self>> {
        let Some((cert_pem, sealed)) = store.local_ca().await? else {
            return Ok(None);
        };
        let key_pem = String::from_utf8(key.open(&sealed, KEY_CONTEXT)?)?;
        let ca_key = KeyPair::from_pem(&key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, ca_key)?;
        Ok(Some(Self {
            issuer,
            cert_pem,
            validity,
        }))
    }

    /// A leaf certificate for `hostname` signed with `leaf_key`: the chain PEM.
    pub fn issue(&self, hostname: &str, leaf_key: &KeyPair) -> anyhow::Result<String> {
        let mut params = CertificateParams::new(vec![hostname.to_owned()])?;
        params.distinguished_name = DistinguishedName::new();
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + self.validity;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(
            uuid::Uuid::new_v4().as_bytes(),
        ));
        let cert = params.signed_by(leaf_key, &self.issuer)?;
        Ok(format!("{}{}", cert.pem(), self.cert_pem))
    }
}
