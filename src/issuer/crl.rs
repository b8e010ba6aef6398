//! The CA issuer's certificate revocation list: one per CA issuer, signed by the CA key, with
//! a CRL number and a `nextUpdate`, kept as PEM (`ca.crl`) in the ConfigMap
//! `certsmith-crl-<kind>-<name>` in the CA Secret's namespace. The ConfigMap is the only
//! record: the revoked entries are read back from the CRL it holds, so nothing else has to
//! be kept in step with it.
//!
//! Writes for one issuer are serialised in this process and batched: revocations that arrive
//! while a write is under way go out together in the next one, and each of them then returns
//! on the CRL this process last published, without asking the API server again (an emergency
//! rotation revokes hundreds at once; one read and write per revocation made them queue
//! behind one another).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use rcgen::{CertificateRevocationListParams, Issuer, KeyIdMethod, RevokedCertParams};

use crate::api::RevocationReason;
use crate::pki::keys::PrivateKey;
use crate::reason::{Problem, Reason};

use super::IssuerId;

/// How long a CRL is valid (its `nextUpdate` is this long after its `thisUpdate`).
pub const VALIDITY_SECS: i64 = 24 * 3600;
/// A CRL is signed again once it is this old: a third of its validity, so two refreshes can
/// fail before relying parties see it expire.
pub const REFRESH_AFTER_SECS: i64 = 8 * 3600;
/// The ConfigMap key holding the PEM CRL.
pub const KEY: &str = "ca.crl";
/// The label on every CRL ConfigMap (value `true`), and the annotation naming whose CRL it
/// is (`Issuer.<namespace>.<name>` or `ClusterIssuer.<name>`). A ConfigMap without both is
/// never written nor served.
pub const LABEL: &str = "certsmith.dev/crl";
pub const ISSUER_ANNOTATION: &str = "certsmith.dev/crl-issuer";

/// One revoked certificate as the CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The serial number's big-endian bytes, without sign padding.
    pub serial: Vec<u8>,
    pub revoked_at: i64,
    pub reason: Option<RevocationReason>,
}

/// What a CRL says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrlState {
    pub number: u64,
    pub this_update: i64,
    pub next_update: i64,
    pub entries: Vec<Entry>,
}

/// The serial's bytes from the hex the status and Secrets show (`0a1b...`, or with colons).
pub fn serial_bytes(hex: &str) -> Result<Vec<u8>, String> {
    let digits: String = hex.chars().filter(|c| *c != ':').collect();
    let digits = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits
    };
    if digits.is_empty() || digits.len() > 42 {
        return Err(format!("{hex:?} is not a serial number"));
    }
    let bytes = (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| format!("{hex:?} is not a hexadecimal serial number"))?;
    Ok(trim(&bytes).to_vec())
}

fn trim(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|b| *b != 0) {
        Some(i) => &bytes[i..],
        None => &bytes[bytes.len().saturating_sub(1)..],
    }
}

fn reason_code(reason: RevocationReason) -> rcgen::RevocationReason {
    use rcgen::RevocationReason as R;
    match reason {
        RevocationReason::Unspecified => R::Unspecified,
        RevocationReason::KeyCompromise => R::KeyCompromise,
        RevocationReason::CaCompromise => R::CaCompromise,
        RevocationReason::AffiliationChanged => R::AffiliationChanged,
        RevocationReason::Superseded => R::Superseded,
        RevocationReason::CessationOfOperation => R::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
    }
}

fn reason_of(code: u8) -> Option<RevocationReason> {
    Some(match code {
        0 => RevocationReason::Unspecified,
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        9 => RevocationReason::PrivilegeWithdrawn,
        _ => return None,
    })
}

/// Read a PEM CRL back (its signature is not checked: the operator wrote it, and it is signed
/// again with the CA key before anything of it is published).
pub fn parse(pem_text: &str) -> Result<CrlState, String> {
    let block = pem::parse(pem_text).map_err(|e| format!("not PEM: {e}"))?;
    if block.tag() != "X509 CRL" {
        return Err(format!("a PEM {:?} block, not an X509 CRL", block.tag()));
    }
    let (_, crl) = x509_parser::parse_x509_crl(block.contents()).map_err(|e| e.to_string())?;
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    let entries = crl
        .iter_revoked_certificates()
        .map(|r| Entry {
            serial: trim(r.raw_serial()).to_vec(),
            revoked_at: r.revocation_date.timestamp(),
            reason: r.reason_code().and_then(|(_, c)| reason_of(c.0)),
        })
        .collect();
    Ok(CrlState {
        number,
        this_update: crl.last_update().timestamp(),
        next_update: crl.next_update().map_or(0, |t| t.timestamp()),
        entries,
    })
}

/// Sign `state` with the CA: a PEM CRL.
pub fn sign(issuer: &Issuer<'_, PrivateKey>, state: &CrlState) -> Result<String, String> {
    let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).map_err(|e| e.to_string());
    let revoked_certs = state
        .entries
        .iter()
        .map(|e| {
            Ok(RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(&e.serial),
                revocation_time: at(e.revoked_at)?,
                reason_code: e.reason.map(reason_code),
                invalidity_date: None,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let params = CertificateRevocationListParams {
        this_update: at(state.this_update)?,
        next_update: at(state.next_update)?,
        crl_number: rcgen::SerialNumber::from_slice(&state.number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(issuer).map_err(|e| match e {
        rcgen::Error::IssuerNotCrlSigner => {
            "the CA certificate's key usage does not include cRLSign".to_string()
        }
        other => other.to_string(),
    })?;
    crl.pem().map_err(|e| e.to_string())
}

/// The next CRL: `previous` (if any) with `added` entries not already listed, a new number and
/// a fresh validity window from `now` (pure).
pub fn next(previous: Option<&CrlState>, added: &[Entry], now: i64) -> CrlState {
    let mut entries = previous.map(|p| p.entries.clone()).unwrap_or_default();
    for entry in added {
        if !entries.iter().any(|e| e.serial == entry.serial) {
            entries.push(entry.clone());
        }
    }
    CrlState {
        number: previous.map_or(1, |p| p.number.saturating_add(1)),
        this_update: now,
        next_update: now.saturating_add(VALIDITY_SECS),
        entries,
    }
}

/// The name of an issuer's CRL ConfigMap: `certsmith-crl-issuer-<name>` or
/// `certsmith-crl-clusterissuer-<name>` (names too long for a ConfigMap are cut and suffixed
/// with a hash of the whole).
pub fn object_name(id: &IssuerId) -> String {
    let kind = if id.is_cluster_issuer() {
        "clusterissuer"
    } else {
        "issuer"
    };
    let name = format!("certsmith-crl-{kind}-{}", id.name);
    if name.len() <= 253 {
        return name;
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(name.as_bytes());
    let suffix: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{suffix}", &name[..240])
}

/// The [`ISSUER_ANNOTATION`] value of an issuer's CRL.
pub fn label_value(id: &IssuerId) -> String {
    match &id.namespace {
        Some(ns) => format!("Issuer.{ns}.{}", id.name),
        None => format!("ClusterIssuer.{}", id.name),
    }
}

/// Whether `cm` is the CRL ConfigMap certsmith wrote for `id`.
pub fn is_crl_of(cm: &ConfigMap, id: &IssuerId) -> bool {
    cm.labels().get(LABEL).map(String::as_str) == Some("true")
        && cm.annotations().get(ISSUER_ANNOTATION) == Some(&label_value(id))
}

/// Where one issuer's CRL lives.
#[derive(Clone)]
pub struct CrlTarget {
    pub api: Api<ConfigMap>,
    pub namespace: String,
    pub id: IssuerId,
}

/// The CRL as published after a write or a check.
#[derive(Debug, Clone)]
pub struct Published {
    pub state: CrlState,
}

/// Serialises and batches the CRL writes of every CA issuer in the process.
#[derive(Default)]
pub struct CrlPublisher {
    locks: Mutex<HashMap<IssuerId, Arc<tokio::sync::Mutex<()>>>>,
    waiting: Mutex<HashMap<IssuerId, Vec<Entry>>>,
    /// The serials of the CRL this process last wrote, per issuer.
    published: Mutex<HashMap<IssuerId, std::collections::HashSet<Vec<u8>>>>,
}

impl std::fmt::Debug for CrlPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CrlPublisher")
    }
}

fn write_failed(target: &CrlTarget, e: impl std::fmt::Display) -> Problem {
    Problem::new(
        Reason::CrlWriteFailed,
        format!(
            "writing the CRL ConfigMap {}/{}: {e}",
            target.namespace,
            object_name(&target.id)
        ),
    )
}

impl CrlPublisher {
    fn lock_of(&self, id: &IssuerId) -> Arc<tokio::sync::Mutex<()>> {
        match self.locks.lock() {
            Ok(mut locks) => locks.entry(id.clone()).or_default().clone(),
            // A poisoned map only loses the serialisation, never a write.
            Err(_) => Arc::default(),
        }
    }

    fn take_waiting(&self, id: &IssuerId) -> Vec<Entry> {
        self.waiting
            .lock()
            .ok()
            .and_then(|mut w| w.remove(id))
            .unwrap_or_default()
    }

    fn remember(&self, id: &IssuerId, state: &CrlState) {
        if let Ok(mut p) = self.published.lock() {
            p.insert(
                id.clone(),
                state.entries.iter().map(|e| e.serial.clone()).collect(),
            );
        }
    }

    fn published_lists(&self, id: &IssuerId, serial: &[u8]) -> bool {
        self.published
            .lock()
            .is_ok_and(|p| p.get(id).is_some_and(|s| s.contains(serial)))
    }

    fn put_back(&self, id: &IssuerId, entries: Vec<Entry>) {
        if let Ok(mut w) = self.waiting.lock() {
            w.entry(id.clone()).or_default().extend(entries);
        }
    }

    /// Add `entry` to the issuer's CRL and publish it. Returns once a CRL listing the serial
    /// is stored.
    pub async fn revoke(
        &self,
        target: &CrlTarget,
        issuer: &Issuer<'_, PrivateKey>,
        entry: Entry,
        now: i64,
    ) -> Result<(), Problem> {
        let serial = entry.serial.clone();
        self.put_back(&target.id, vec![entry]);
        let lock = self.lock_of(&target.id);
        let _held = lock.lock().await;
        // Written by the batch of another revocation while this one waited.
        if self.published_lists(&target.id, &serial) {
            return Ok(());
        }
        let (existing, previous) = read(target).await?;
        if let Some(state) = &previous
            && state.entries.iter().any(|e| e.serial == serial)
        {
            self.remember(&target.id, state);
            return Ok(());
        }
        let added = self.take_waiting(&target.id);
        let state = next(previous.as_ref(), &added, now);
        match write(target, issuer, existing, &state).await {
            Ok(()) => {
                self.remember(&target.id, &state);
                Ok(())
            }
            Err(p) => {
                self.put_back(&target.id, added);
                Err(p)
            }
        }
    }

    /// Keep the issuer's CRL fresh: signed again once older than [`REFRESH_AFTER_SECS`] (or
    /// when it cannot be read). A CRL that does not exist yet is created only when `create`
    /// (the issuer names distribution points); otherwise the first revocation creates it, so
    /// an issuer that never revokes costs no write. Returns the CRL as published, if any.
    pub async fn refresh(
        &self,
        target: &CrlTarget,
        issuer: &Issuer<'_, PrivateKey>,
        now: i64,
        create: bool,
    ) -> Result<Option<Published>, Problem> {
        let lock = self.lock_of(&target.id);
        let _held = lock.lock().await;
        let (existing, previous) = read(target).await?;
        let added = self.take_waiting(&target.id);
        if existing.is_none() && added.is_empty() && !create {
            return Ok(None);
        }
        if let Some(state) = &previous
            && added.is_empty()
            && now < state.this_update.saturating_add(REFRESH_AFTER_SECS)
            && now >= state.this_update
        {
            return Ok(Some(Published {
                state: state.clone(),
            }));
        }
        let state = next(previous.as_ref(), &added, now);
        match write(target, issuer, existing, &state).await {
            Ok(()) => {
                self.remember(&target.id, &state);
                Ok(Some(Published { state }))
            }
            Err(p) => {
                self.put_back(&target.id, added);
                Err(p)
            }
        }
    }
}

/// The CRL ConfigMap, and the CRL it holds when readable. A ConfigMap of that name not
/// written by certsmith is never taken over.
async fn read(target: &CrlTarget) -> Result<(Option<ConfigMap>, Option<CrlState>), Problem> {
    let name = object_name(&target.id);
    let found = target.api.get_opt(&name).await.map_err(|e| {
        Problem::new(
            Reason::ApiError,
            format!("reading the CRL ConfigMap {}/{name}: {e}", target.namespace),
        )
    })?;
    let Some(cm) = found else {
        return Ok((None, None));
    };
    if !is_crl_of(&cm, &target.id) {
        return Err(write_failed(
            target,
            format!(
                "it exists and is not the CRL of {} written by certsmith; it is left alone",
                target.id
            ),
        ));
    }
    let state = cm
        .data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .and_then(|pem| parse(pem).ok());
    if state.is_none() {
        tracing::warn!(configmap = %name, "the CRL ConfigMap holds no readable CRL: starting a new one");
    }
    Ok((Some(cm), state))
}

async fn write(
    target: &CrlTarget,
    issuer: &Issuer<'_, PrivateKey>,
    existing: Option<ConfigMap>,
    state: &CrlState,
) -> Result<(), Problem> {
    let pem = sign(issuer, state).map_err(|e| {
        Problem::new(
            Reason::CrlWriteFailed,
            format!("signing the CRL of {}: {e}", target.id),
        )
    })?;
    let name = object_name(&target.id);
    let params = PostParams {
        field_manager: Some(crate::secret::FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let data = BTreeMap::from([(KEY.to_string(), pem)]);
    let result = match existing {
        Some(mut cm) => {
            cm.data = Some(data);
            target.api.replace(&name, &params, &cm).await
        }
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(target.namespace.clone()),
                    annotations: Some(BTreeMap::from([(
                        ISSUER_ANNOTATION.to_string(),
                        label_value(&target.id),
                    )])),
                    labels: Some(BTreeMap::from([
                        (LABEL.to_string(), "true".to_string()),
                        (
                            "app.kubernetes.io/managed-by".to_string(),
                            "certsmith".to_string(),
                        ),
                    ])),
                    ..ObjectMeta::default()
                },
                data: Some(data),
                ..ConfigMap::default()
            };
            target.api.create(&params, &cm).await
        }
    };
    result.map(|_| ()).map_err(|e| match e {
        kube::Error::Api(s) => write_failed(target, format!("{} ({})", s.message, s.code)),
        other => write_failed(target, other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CertificateSpec, KeyAlgorithm};
    use crate::issuer::selfsigned;
    use crate::pki::request::sign_request;

    const T0: i64 = 1_800_000_000;

    fn ca(is_ca: bool, usages: serde_json::Value) -> Issuer<'static, PrivateKey> {
        let spec: CertificateSpec = serde_json::from_value(serde_json::json!({
            "secretName": "s", "issuerRef": {"name": "i"}, "commonName": "ca", "isCA": is_ca,
            "usages": usages,
        }))
        .expect("spec");
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).expect("key");
        let signed =
            selfsigned::sign(&sign_request(&spec, &key).expect("csr"), &key, T0).expect("signed");
        let der = pem::parse(&signed.chain_pem).expect("pem").into_contents();
        Issuer::from_ca_cert_der(&der.into(), key).expect("issuer")
    }

    #[test]
    fn a_crl_reads_back_as_it_was_signed_and_grows_by_number() {
        let issuer = ca(true, serde_json::json!(["cert sign", "crl sign"]));
        let first = next(
            None,
            &[Entry {
                serial: serial_bytes("8a0b").expect("serial"),
                revoked_at: T0,
                reason: Some(RevocationReason::KeyCompromise),
            }],
            T0,
        );
        assert_eq!(first.number, 1);
        let pem = sign(&issuer, &first).expect("signed");
        assert!(pem.starts_with("-----BEGIN X509 CRL-----"));
        let read = parse(&pem).expect("parsed");
        assert_eq!(read, first);
        // The same serial again adds nothing; another is appended, the number grows.
        let again = next(
            Some(&read),
            &[
                first.entries[0].clone(),
                Entry {
                    serial: vec![1],
                    revoked_at: T0 + 5,
                    reason: None,
                },
            ],
            T0 + 10,
        );
        assert_eq!(again.number, 2);
        assert_eq!(again.entries.len(), 2);
        assert_eq!(again.next_update, T0 + 10 + VALIDITY_SECS);
        assert_eq!(
            parse(&sign(&issuer, &again).expect("signed")).expect("parsed"),
            again
        );
    }

    #[test]
    fn a_ca_without_crl_sign_is_named_as_such() {
        // (An isCA certificate always has cRLSign: a key pair that lacks it.)
        let issuer = ca(false, serde_json::json!(["digital signature"]));
        let err = sign(&issuer, &next(None, &[], T0)).unwrap_err();
        assert!(err.contains("cRLSign"), "{err}");
    }

    #[test]
    fn serials_are_read_in_every_spelling_and_garbage_is_refused() {
        assert_eq!(serial_bytes("0a:1B").expect("serial"), vec![0x0a, 0x1b]);
        assert_eq!(serial_bytes("00ff").expect("serial"), vec![0xff]);
        assert_eq!(serial_bytes("abc").expect("serial"), vec![0x0a, 0xbc]);
        assert!(serial_bytes("").is_err());
        assert!(serial_bytes("xyz").is_err());
        assert!(serial_bytes(&"f".repeat(100)).is_err());
        assert!(parse("junk").is_err());
        assert!(parse("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
    }

    #[test]
    fn object_names_fit_and_differ_per_kind() {
        let a = object_name(&IssuerId::issuer("ns", "x"));
        let b = object_name(&IssuerId::cluster_issuer("x"));
        assert_ne!(a, b);
        let long = object_name(&IssuerId::cluster_issuer(&"n".repeat(253)));
        assert!(long.len() <= 253);
    }
}
