//! Reading a TrustBundle's sources, live: an issuer's CA certificates (from its backend),
//! a key of a Secret or ConfigMap, inline PEM. Each failure names the source and says whether
//! it is missing, invalid or unavailable for now.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

use crate::api::{BundleIssuerRef, BundleObjectKey, BundleSource, IssuerKind};
use crate::issuer::IssuerId;
use crate::reason::{Problem, Reason};

use super::super::{Context, issuer};

/// The issuer an `issuerRef` source names.
pub fn issuer_id(reference: &BundleIssuerRef) -> IssuerId {
    match (&reference.kind, &reference.namespace) {
        (IssuerKind::Issuer, Some(ns)) => IssuerId::issuer(ns, &reference.name),
        // Admission requires a namespace for an Issuer; without one, none can be found.
        (IssuerKind::Issuer, None) => IssuerId::issuer("", &reference.name),
        (IssuerKind::ClusterIssuer, _) => IssuerId::cluster_issuer(&reference.name),
    }
}

/// `sources[i] (what)`, for messages.
pub fn describe(index: usize, source: &BundleSource) -> String {
    let what = match source {
        BundleSource {
            issuer_ref: Some(r),
            ..
        } => issuer_id(r).to_string(),
        BundleSource {
            secret: Some(k), ..
        } => format!("Secret {}/{} key {}", k.namespace, k.name, k.key),
        BundleSource {
            config_map: Some(k),
            ..
        } => format!("ConfigMap {}/{} key {}", k.namespace, k.name, k.key),
        _ => "inLine".to_string(),
    };
    format!("sources[{index}] ({what})")
}

/// The PEM text of one source.
pub async fn read(ctx: &Context, name: &str, source: &BundleSource) -> Result<String, Problem> {
    let fail = |reason: Reason, message: String| Problem::new(reason, format!("{name}: {message}"));
    if let Some(reference) = &source.issuer_ref {
        return match issuer::ca_certificates(ctx, &issuer_id(reference)).await {
            Ok(pems) if pems.is_empty() => Err(fail(
                Reason::SourceInvalid,
                "the issuer has no CA certificates to publish (a self-signed issuer's certificates are each their own)".into(),
            )),
            Ok(pems) => Ok(pems.concat()),
            Err(p) => Err(fail(issuer_reason(p.reason), format!("{}: {}", p.reason, p.message))),
        };
    }
    if let Some(key) = &source.secret {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &key.namespace);
        let secret = get(&api, "Secret", key)
            .await
            .map_err(|(r, m)| fail(r, m))?;
        let value = crate::secret::value(&secret, &key.key);
        return text(value, "Secret", key).map_err(|(r, m)| fail(r, m));
    }
    if let Some(key) = &source.config_map {
        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &key.namespace);
        let map = get(&api, "ConfigMap", key)
            .await
            .map_err(|(r, m)| fail(r, m))?;
        let data = map
            .data
            .as_ref()
            .and_then(|d| d.get(&key.key))
            .map(String::as_bytes);
        let binary = map
            .binary_data
            .as_ref()
            .and_then(|d| d.get(&key.key))
            .map(|b| b.0.as_slice());
        return text(data.or(binary), "ConfigMap", key).map_err(|(r, m)| fail(r, m));
    }
    source
        .in_line
        .clone()
        .ok_or_else(|| fail(Reason::InvalidSpec, "no source set".into()))
}

/// Read a Secret or ConfigMap a source names.
async fn get<K>(api: &Api<K>, kind: &str, key: &BundleObjectKey) -> Result<K, (Reason, String)>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(&key.name).await {
        Ok(Some(object)) => Ok(object),
        Ok(None) => Err((
            Reason::SourceMissing,
            format!("{kind} {}/{} not found", key.namespace, key.name),
        )),
        Err(e) => Err((
            Reason::SourceUnavailable,
            format!("reading {kind} {}/{}: {e}", key.namespace, key.name),
        )),
    }
}

fn text(
    value: Option<&[u8]>,
    kind: &str,
    key: &BundleObjectKey,
) -> Result<String, (Reason, String)> {
    let value = value.filter(|v| !v.is_empty()).ok_or_else(|| {
        (
            Reason::SourceMissing,
            format!(
                "{kind} {}/{} has no key {:?}",
                key.namespace, key.name, key.key
            ),
        )
    })?;
    String::from_utf8(value.to_vec()).map_err(|_| {
        (
            Reason::SourceInvalid,
            format!(
                "{kind} {}/{} key {:?} is not text",
                key.namespace, key.name, key.key
            ),
        )
    })
}

/// What an issuer's failure to name its CA certificates means for a bundle.
fn issuer_reason(reason: Reason) -> Reason {
    match reason {
        Reason::IssuerNotFound
        | Reason::CaSecretMissing
        | Reason::VaultCredentialsMissing
        | Reason::AwsCredentialsMissing => Reason::SourceMissing,
        Reason::ApiError | Reason::BackendUnavailable | Reason::AwsThrottled => {
            Reason::SourceUnavailable
        }
        r if r.is_unreachable() => Reason::SourceUnavailable,
        _ => Reason::SourceInvalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_described_by_what_they_name() {
        let source: BundleSource = serde_json::from_value(serde_json::json!(
            {"issuerRef": {"name": "agents-ca", "kind": "ClusterIssuer"}}
        ))
        .unwrap();
        assert_eq!(describe(0, &source), "sources[0] (ClusterIssuer agents-ca)");
        let source: BundleSource = serde_json::from_value(serde_json::json!(
            {"issuerRef": {"name": "vault", "kind": "Issuer", "namespace": "agents"}}
        ))
        .unwrap();
        assert_eq!(describe(1, &source), "sources[1] (Issuer agents/vault)");
        let source: BundleSource = serde_json::from_value(serde_json::json!(
            {"secret": {"namespace": "certsmith", "name": "roots", "key": "ca.crt"}}
        ))
        .unwrap();
        assert_eq!(
            describe(2, &source),
            "sources[2] (Secret certsmith/roots key ca.crt)"
        );
        let source: BundleSource =
            serde_json::from_value(serde_json::json!({"inLine": "pem"})).unwrap();
        assert_eq!(describe(3, &source), "sources[3] (inLine)");
    }

    #[test]
    fn an_issuers_failure_is_missing_unavailable_or_invalid() {
        assert_eq!(issuer_reason(Reason::IssuerNotFound), Reason::SourceMissing);
        assert_eq!(
            issuer_reason(Reason::CaSecretMissing),
            Reason::SourceMissing
        );
        assert_eq!(
            issuer_reason(Reason::VaultUnreachable),
            Reason::SourceUnavailable
        );
        assert_eq!(
            issuer_reason(Reason::AwsUnreachable),
            Reason::SourceUnavailable
        );
        assert_eq!(issuer_reason(Reason::ApiError), Reason::SourceUnavailable);
        assert_eq!(issuer_reason(Reason::NotACa), Reason::SourceInvalid);
        assert_eq!(issuer_reason(Reason::CaExpired), Reason::SourceInvalid);
    }
}
