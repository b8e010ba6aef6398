//! Store: check what a backend returned against the key, then write the Secret, conditional
//! on what the decision saw, so a replica that lost its lease (or any other writer that got
//! there first) cannot have an old decision overwrite a newer one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, ResourceExt};

use crate::api::Certificate;
use crate::pki::outputs;

use crate::issuer::{BackendType, SignedChain};
use crate::pki::inspect::{self, CertInfo};
use crate::pki::keys::PrivateKey;
use crate::pki::renewal;
use crate::reason::{Problem, Reason};
use crate::secret;

use super::Context;
use super::decide::{self, Current, Observed, SecretData, SecretState};
use super::issue::{Issuance, IssueError};

/// How the Secret is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteTarget {
    /// The Secret did not exist: create it (refused if it exists by now).
    Create,
    /// The Secret was seen at this resourceVersion: apply only onto that version.
    Replace(String),
}

impl WriteTarget {
    /// The write that follows a decision made on `found`.
    pub fn after(found: Option<&Secret>) -> Self {
        match found {
            None => WriteTarget::Create,
            Some(s) => WriteTarget::Replace(s.resource_version().unwrap_or_default()),
        }
    }
}

/// Why a signed certificate did not reach the Secret.
pub enum StoreError {
    /// The API server refused the Secret; `leaf` is the certificate that was to be written.
    Refused {
        problem: Problem,
        leaf: Box<CertInfo>,
    },
    /// A create found the Secret there: `leaf` is the certificate that was to be written.
    Exists {
        leaf: Box<CertInfo>,
    },
    Issue(IssueError),
}

impl From<Problem> for StoreError {
    fn from(p: Problem) -> Self {
        StoreError::Issue(IssueError::Problem(p))
    }
}

/// Check what a backend returned against the key, write the Secret, describe the result.
pub async fn store(
    ctx: &Context,
    issuance: &Issuance<'_>,
    signed: &SignedChain,
    key: &PrivateKey,
    revision: i64,
    backend: BackendType,
) -> Result<Current, StoreError> {
    let Issuance {
        cert,
        observed,
        secrets,
        target,
        ..
    } = issuance;
    let leaf = usable_leaf(signed, key, backend)?;
    let key_pem = key
        .to_pem(cert.spec.key_encoding())
        .map_err(|e| Problem::new(Reason::KeyGenerationFailed, e.to_string()))?;
    let source = outputs::Source {
        key_pem: key_pem.as_bytes(),
        chain_pem: signed.chain_pem.as_bytes(),
        ca_pem: signed.ca_pem.as_bytes(),
        not_before: leaf.not_before,
    };
    let mut extra = render_outputs(cert, observed, &source)?;
    if cert.spec.is_ca
        && let SecretState::Ours(data) = observed.secret
        && let Some((crt, key)) = replaced_ca(data, observed.now)
    {
        extra.insert(secret::PREVIOUS_CA_CRT.into(), crt);
        extra.insert(secret::PREVIOUS_CA_KEY.into(), key);
    }
    let contents = secret::Contents {
        chain_pem: &signed.chain_pem,
        key_pem: &key_pem,
        ca_pem: &signed.ca_pem,
        leaf: &leaf,
        revision,
        issuer_type: backend.as_str(),
        renew_request: observed.renew_requested,
        issued_at: observed.now,
        outputs: extra,
    };
    if !ctx.is_leading() {
        return Err(StoreError::Issue(IssueError::NotLeading));
    }
    let built = secret::build(cert, &contents);
    let written = match target {
        WriteTarget::Create => {
            let params = PostParams {
                field_manager: Some(secret::FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            secrets.create(&params, &built).await
        }
        WriteTarget::Replace(version) => secret::apply_at(secrets, &built, version).await,
    };
    let namespace = cert.namespace().unwrap_or_default();
    match written {
        // Its watch event is the operator's own and needs no reconcile.
        Ok(s) => ctx.shared.watched.wrote_secret(
            &namespace,
            &cert.spec.secret_name,
            s.resource_version(),
        ),
        // The Secret exists after all (the metadata watch had not shown it yet, so nothing
        // was read): keep the certificate for the retry, which reads the Secret and decides
        // on what is there; nothing was written, so nothing is issued into it twice.
        Err(kube::Error::Api(e)) if e.code == 409 && *target == WriteTarget::Create => {
            ctx.shared
                .watched
                .unsure(&namespace, &cert.spec.secret_name);
            return Err(StoreError::Exists {
                leaf: Box::new(leaf),
            });
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            return Err(StoreError::Issue(IssueError::Conflict));
        }
        Err(e) => {
            let problem = Problem::new(
                Reason::SecretWriteFailed,
                format!(
                    "the API server refused Secret {:?}: {}",
                    cert.spec.secret_name,
                    api_message(&e)
                ),
            );
            return Err(StoreError::Refused {
                problem,
                leaf: Box::new(leaf),
            });
        }
    }
    let renewal_time = renewal::renewal_time(
        observed.identity,
        leaf.not_before,
        leaf.not_after,
        decide::renew_before(&cert.spec),
        Some(observed.now),
    );
    Ok(Current {
        leaf,
        renewal_time,
        revision: Some(revision),
        renew_request: observed.renew_requested.map(str::to_string),
        ca_fingerprint: inspect::issuer_fingerprint(
            signed.chain_pem.as_bytes(),
            signed.ca_pem.as_bytes(),
        ),
    })
}

/// The extra outputs and keystores the spec asks for, from the Secret's own material.
fn render_outputs(
    cert: &Certificate,
    observed: &Observed<'_>,
    source: &outputs::Source<'_>,
) -> Result<BTreeMap<String, Vec<u8>>, Problem> {
    let passwords = observed.passwords.map_err(Clone::clone)?;
    outputs::render(&cert.spec, source, passwords).map_err(|e| {
        Problem::new(
            Reason::InvalidData,
            format!("encoding the Secret's outputs: {e}"),
        )
    })
}

/// Why a Secret could not be written again.
pub enum RewriteError {
    NotLeading,
    /// The Secret changed since it was read.
    Conflict,
    Failed(Problem),
}

/// Write the Secret again around the certificate it holds (same key, chain and annotations),
/// with the outputs and owner reference the spec asks for. Nothing is signed.
pub async fn rewrite(
    ctx: &Context,
    cert: &Certificate,
    observed: &Observed<'_>,
    data: &SecretData,
    secrets: &Api<Secret>,
    read: &Secret,
) -> Result<(), RewriteError> {
    let text = |v: &Option<Vec<u8>>| String::from_utf8(v.clone().unwrap_or_default()).ok();
    let (Some(chain_pem), Some(key_pem), Some(ca_pem)) =
        (text(&data.tls_crt), text(&data.tls_key), text(&data.ca_crt))
    else {
        return Err(RewriteError::Conflict);
    };
    let leaf = inspect::parse_chain(chain_pem.as_bytes())
        .ok()
        .and_then(|c| c.into_iter().next())
        .ok_or(RewriteError::Conflict)?;
    let source = outputs::Source {
        key_pem: key_pem.as_bytes(),
        chain_pem: chain_pem.as_bytes(),
        ca_pem: ca_pem.as_bytes(),
        not_before: leaf.not_before,
    };
    let extra = render_outputs(cert, observed, &source).map_err(RewriteError::Failed)?;
    let contents = secret::Contents {
        chain_pem: &chain_pem,
        key_pem: &key_pem,
        ca_pem: &ca_pem,
        leaf: &leaf,
        revision: data.revision.unwrap_or(1),
        issuer_type: data.issuer_type.as_deref().unwrap_or_default(),
        renew_request: data.renew_request.as_deref(),
        issued_at: data.issued_at.unwrap_or(leaf.not_before),
        outputs: extra,
    };
    if !ctx.is_leading() {
        return Err(RewriteError::NotLeading);
    }
    let ours: Vec<&str> = ["tls.crt", "tls.key", "ca.crt"]
        .into_iter()
        .chain(outputs::ALL)
        .collect();
    let uid = cert.metadata.uid.as_deref().unwrap_or_default();
    let desired = secret::build(cert, &contents);
    match secret::replace_at(secrets, read, &desired, &ours, uid).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Err(RewriteError::Conflict),
        Err(e) => Err(RewriteError::Failed(Problem::new(
            Reason::SecretWriteFailed,
            format!(
                "the API server refused Secret {:?}: {}",
                cert.spec.secret_name,
                api_message(&e)
            ),
        ))),
    }
}

/// The CA key pair a renewal of a CA certificate replaces, kept in the Secret so a CA issuer
/// signs with it until the new CA is published (see `issuer::ca`): only a usable one (a CA,
/// its key, not expired). Written only by issuances, so it is always the pair just replaced.
fn replaced_ca(data: &SecretData, now: i64) -> Option<(Vec<u8>, Vec<u8>)> {
    let (crt, key) = (data.tls_crt.clone()?, data.tls_key.clone()?);
    crate::issuer::ca::CaSigner::load(Some(&crt), Some(&key), None, now).ok()?;
    Some((crt, key))
}

/// The leaf of what a backend returned, if it is readable and for `key` (pure).
fn usable_leaf(
    signed: &SignedChain,
    key: &PrivateKey,
    backend: BackendType,
) -> Result<CertInfo, Problem> {
    let leaf = inspect::parse_chain(signed.chain_pem.as_bytes())
        .map_err(|e| {
            Problem::new(
                Reason::SigningFailed,
                format!(
                    "{} issuer returned an unreadable certificate: {e}",
                    backend.as_str()
                ),
            )
        })?
        .remove(0);
    if leaf.public_key_info != key.public_key_info() {
        return Err(Problem::new(
            Reason::SigningFailed,
            "issuer returned a certificate for a different key",
        ));
    }
    Ok(leaf)
}

/// The API server's own words for a failed request.
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CertificateSpec, KeyAlgorithm};
    use crate::issuer::selfsigned;
    use crate::pki::request::sign_request;

    #[test]
    fn the_write_follows_what_the_decision_saw() {
        assert_eq!(WriteTarget::after(None), WriteTarget::Create);
        let mut s = Secret::default();
        s.metadata.resource_version = Some("17".into());
        assert_eq!(
            WriteTarget::after(Some(&s)),
            WriteTarget::Replace("17".into())
        );
    }

    #[test]
    fn a_certificate_for_another_key_or_garbage_is_not_stored() {
        let spec: CertificateSpec = serde_json::from_value(serde_json::json!({
            "secretName": "s", "issuerRef": {"name": "i"}, "dnsNames": ["a.example"],
        }))
        .expect("spec");
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).expect("key");
        let other = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).expect("key");
        let signed = selfsigned::sign(
            &sign_request(&spec, &key).expect("csr"),
            &key,
            1_800_000_000,
        )
        .expect("signed");
        assert!(usable_leaf(&signed, &key, BackendType::Ca).is_ok());
        let wrong = usable_leaf(&signed, &other, BackendType::Ca).map_err(|p| p.reason);
        assert_eq!(wrong.err(), Some(Reason::SigningFailed));
        let garbage = SignedChain {
            chain_pem: "junk".into(),
            ca_pem: String::new(),
        };
        let unreadable = usable_leaf(&garbage, &key, BackendType::SelfSigned).unwrap_err();
        assert!(
            unreadable.message.starts_with("selfSigned issuer"),
            "{unreadable}"
        );
    }
}
