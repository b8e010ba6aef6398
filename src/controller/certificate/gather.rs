//! Gather what a decision looks at: the Secret as it is now (read live when it exists, so a
//! stale cache cannot cause a second issuance; see [`secret`]) and the oldest other
//! Certificate claiming it. A Secret written for a Certificate that no longer claims it is
//! adopted first.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use tracing::info;

use crate::api::{Certificate, PasswordSecretRef};
use crate::pki::outputs::{self, Passwords};
use crate::pki::{Sensitive, keystore};
use crate::reason::{Problem, Reason};
use crate::secret;

use super::decide::{SecretData, SecretState};
use super::{Context, Error, report};
use crate::controller::certificate_cache::claim_rank;
use crate::controller::watched::Existence;

/// What was found.
pub struct Gathered {
    pub found: Option<Secret>,
    /// An older Certificate in the namespace that names the same Secret.
    pub claimed_by: Option<String>,
    /// The keystore passwords the spec names, or why they cannot be read.
    pub passwords: Result<Passwords, Problem>,
    /// The Certificate's own name and UID.
    me: String,
    uid: String,
}

impl Gathered {
    /// The Secret's data, when it is this Certificate's.
    pub fn data(&self) -> Option<SecretData> {
        self.found
            .as_ref()
            .filter(|s| secret::owner(s) == Some(self.me.as_str()))
            .map(|s| secret_data(s, &self.uid))
    }

    pub fn state<'a>(&'a self, data: Option<&'a SecretData>) -> SecretState<'a> {
        match (&self.found, data) {
            (None, _) => SecretState::Missing,
            (Some(_), Some(d)) => SecretState::Ours(d),
            (Some(s), None) => SecretState::Foreign {
                owner: secret::owner(s),
            },
        }
    }
}

pub async fn gather(ctx: &Context, cert: &Certificate) -> Result<Gathered, Error> {
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &cert.namespace().unwrap_or_default());
    let claimed_by = older_claimant(ctx, cert);
    let mut found = secret(ctx, &secrets, cert).await?;
    if claimed_by.is_none()
        && let Some(s) = &found
        && let Some(owner) = secret::owner(s)
        && owner != cert.name_any()
        && !claims_secret(ctx, cert, owner).await?
    {
        found = Some(adopt(ctx, cert, &secrets, s, owner).await?);
    }
    let passwords = passwords(&secrets, cert).await?;
    Ok(Gathered {
        found,
        claimed_by,
        passwords,
        me: cert.name_any(),
        uid: cert.metadata.uid.clone().unwrap_or_default(),
    })
}

/// The Secret as it is now: read live when it exists (its data is needed), not read when the
/// primed metadata watch does not show it and no write of the operator's is on its way. A
/// Secret missing here that exists after all only makes the write a create, which the API
/// server refuses; the certificate signed is kept for the retry, which reads the Secret.
async fn secret(
    ctx: &Context,
    secrets: &Api<Secret>,
    cert: &Certificate,
) -> Result<Option<Secret>, Error> {
    let namespace = cert.namespace().unwrap_or_default();
    let name = &cert.spec.secret_name;
    let watched = &ctx.shared.watched;
    if watched.existence(&namespace, name) == Existence::Absent {
        return Ok(None);
    }
    let found = secrets.get_opt(name).await?;
    if found.is_none() {
        watched.read_missing(&namespace, name);
    }
    Ok(found)
}

/// The keystore passwords, read live from the Secrets the spec names (only when asked for).
/// A missing Secret or key, or a JKS password JKS cannot take, is a problem for the user; an
/// API error is retried.
async fn passwords(
    secrets: &Api<Secret>,
    cert: &Certificate,
) -> Result<Result<Passwords, Problem>, Error> {
    let stores = cert.spec.keystores.clone().unwrap_or_default();
    let mut out = Passwords::default();
    if let Some(p12) = stores.pkcs12.filter(|p| p.create) {
        match password(secrets, &p12.password_secret_ref, "pkcs12").await? {
            Ok(pw) => out.pkcs12 = Some(pw),
            Err(p) => return Ok(Err(p)),
        }
    }
    if let Some(jks) = stores.jks.filter(|j| j.create) {
        match password(secrets, &jks.password_secret_ref, "jks").await? {
            Ok(pw) if pw.len_chars() < keystore::JKS_MIN_PASSWORD => {
                return Ok(Err(Problem::new(
                    Reason::KeystorePasswordUnavailable,
                    format!(
                        "keystores.jks.passwordSecretRef: the password in Secret {:?} key {:?} is shorter than the {} characters JKS needs",
                        jks.password_secret_ref.name,
                        jks.password_secret_ref.key,
                        keystore::JKS_MIN_PASSWORD
                    ),
                )));
            }
            Ok(pw) => out.jks = Some(pw),
            Err(p) => return Ok(Err(p)),
        }
    }
    Ok(Ok(out))
}

async fn password(
    secrets: &Api<Secret>,
    reference: &PasswordSecretRef,
    store: &str,
) -> Result<Result<Sensitive, Problem>, Error> {
    let missing = |what: String| {
        Ok(Err(Problem::new(
            Reason::KeystorePasswordUnavailable,
            format!("keystores.{store}.passwordSecretRef: {what}; the Secret is left as it is"),
        )))
    };
    let Some(found) = secrets.get_opt(&reference.name).await? else {
        return missing(format!("Secret {:?} not found", reference.name));
    };
    let Some(bytes) = secret::value(&found, &reference.key) else {
        return missing(format!(
            "Secret {:?} has no key {:?}",
            reference.name, reference.key
        ));
    };
    match String::from_utf8(bytes.to_vec()) {
        Ok(text) => Ok(Ok(Sensitive::verbatim(text))),
        Err(_) => missing(format!(
            "the value of Secret {:?} key {:?} is not UTF-8 text",
            reference.name, reference.key
        )),
    }
}

/// The parts of a Secret decisions look at (pure). `certificate_uid`: the Certificate's.
pub fn secret_data(s: &Secret, certificate_uid: &str) -> SecretData {
    let get = |k: &str| secret::value(s, k).map(<[u8]>::to_vec);
    let ann = |k: &str| s.annotations().get(k).cloned();
    SecretData {
        tls_crt: get("tls.crt"),
        tls_key: get("tls.key"),
        ca_crt: get("ca.crt"),
        issuer_name: ann(secret::ISSUER_NAME_ANNOTATION),
        issuer_kind: ann(secret::ISSUER_KIND_ANNOTATION),
        issuer_type: ann(secret::ISSUER_TYPE_ANNOTATION),
        revision: ann(secret::REVISION_ANNOTATION).and_then(|r| r.trim().parse().ok()),
        renew_request: ann(secret::RENEW_REQUEST_ANNOTATION),
        issued_at: ann(secret::ISSUED_AT_ANNOTATION)
            .as_deref()
            .and_then(crate::time::parse),
        outputs: outputs::ALL
            .iter()
            .filter_map(|k| Some((k.to_string(), get(k)?)))
            .collect(),
        owned_by_certificate: s
            .owner_references()
            .iter()
            .any(|o| o.kind == "Certificate" && o.uid == certificate_uid),
    }
}

/// The oldest other Certificate in the namespace that names the same Secret, if it is older
/// than this one (creation time, then name): the first claimant keeps the Secret. Looked up
/// in the index of claimants, not by scanning the cache.
fn older_claimant(ctx: &Context, cert: &Certificate) -> Option<String> {
    ctx.certificates.older_claimant(
        &cert.namespace().unwrap_or_default(),
        &cert.spec.secret_name,
        &claim_rank(&cert.metadata),
    )
}

/// Whether `owner`, the Certificate a Secret says it was written for, still holds it: it
/// exists, still names that Secret, and is older than `cert` (creation time, then name). The
/// cache may lag behind, so an owner missing from it is looked up live before the Secret is
/// taken over.
async fn claims_secret(ctx: &Context, cert: &Certificate, owner: &str) -> Result<bool, Error> {
    let namespace = cert.namespace().unwrap_or_default();
    let (meta, secret_name) = match ctx.certificates.get(&namespace, owner) {
        Some(o) => (o.meta().clone(), o.secret_name().map(str::to_string)),
        None => match Api::<Certificate>::namespaced(ctx.client.clone(), &namespace)
            .get_opt(owner)
            .await?
        {
            Some(c) => (c.metadata, Some(c.spec.secret_name)),
            None => return Ok(false),
        },
    };
    Ok(
        secret_name.as_deref() == Some(cert.spec.secret_name.as_str())
            && claim_rank(&meta) < claim_rank(&cert.metadata),
    )
}

/// Take over a Secret written for `previous`, which no longer holds it: mark it as this
/// Certificate's (only onto the version that was read) and say so in an Event.
async fn adopt(
    ctx: &Context,
    cert: &Certificate,
    secrets: &Api<Secret>,
    found: &Secret,
    previous: &str,
) -> Result<Secret, Error> {
    if !ctx.is_leading() {
        return Err(Error::NotLeading);
    }
    let body = serde_json::json!({"metadata": {
        "resourceVersion": found.resource_version(),
        "annotations": {secret::CERTIFICATE_ANNOTATION: cert.name_any()},
    }});
    let adopted = secrets
        .patch(
            &found.name_any(),
            &PatchParams::default(),
            &Patch::Merge(body),
        )
        .await?;
    let problem = Problem::new(
        Reason::Adopted,
        format!(
            "Secret {:?} was written for Certificate {previous:?}, which no longer claims it; this Certificate manages it now",
            cert.spec.secret_name
        ),
    );
    info!(certificate = %format!("{}/{}", cert.namespace().unwrap_or_default(), cert.name_any()), "{}", problem.message);
    report::publish(ctx, cert, EventType::Normal, &problem).await;
    Ok(adopted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    #[test]
    fn secret_data_reads_what_the_operator_wrote_and_tolerates_the_rest() {
        let mut s = Secret {
            data: Some([("tls.crt".to_string(), ByteString(b"crt".to_vec()))].into()),
            ..Default::default()
        };
        s.metadata.annotations = Some(
            [
                (secret::REVISION_ANNOTATION.to_string(), " 7 ".to_string()),
                (
                    secret::ISSUED_AT_ANNOTATION.to_string(),
                    "garbage".to_string(),
                ),
                (secret::ISSUER_TYPE_ANNOTATION.to_string(), "ca".to_string()),
            ]
            .into(),
        );
        let data = secret_data(&s, "uid");
        assert_eq!(data.tls_crt.as_deref(), Some(&b"crt"[..]));
        assert_eq!(data.tls_key, None);
        assert_eq!(data.revision, Some(7));
        assert_eq!(data.issued_at, None, "an unreadable time is no time");
        assert_eq!(data.backend_type(), Some(crate::issuer::BackendType::Ca));
    }

    #[test]
    fn the_older_claim_wins_then_the_name() {
        let meta = |name: &str, secs: i64| ObjectMeta {
            name: Some(name.into()),
            creation_timestamp: jiff::Timestamp::from_second(secs).ok().map(Time),
            ..Default::default()
        };
        assert!(claim_rank(&meta("b", 1)) < claim_rank(&meta("a", 2)));
        assert!(claim_rank(&meta("a", 1)) < claim_rank(&meta("b", 1)));
    }
}
