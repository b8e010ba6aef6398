//! The Secrets an issuer names (CA key pairs, Vault and AWS credentials), read from the
//! issuer's Secret namespace only, with one wording for every failure.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::reason::{Problem, Reason};

use super::Context;

/// Read `namespace/name`; `missing` is the reason when it does not exist, `what` names it in
/// the message ("CA ", "AWS credentials ", or "").
pub async fn read(
    ctx: &Context,
    namespace: &str,
    name: &str,
    missing: Reason,
    what: &str,
) -> Result<Secret, Problem> {
    Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| {
            Problem::new(
                Reason::ApiError,
                format!("reading {what}Secret {namespace}/{name}: {e}"),
            )
        })?
        .ok_or_else(|| {
            Problem::new(
                missing,
                format!("{what}Secret {namespace}/{name} not found"),
            )
        })
}

/// One key of a Secret as text: an absent or empty key and non-UTF-8 bytes are `missing`.
pub fn text(secret: &Secret, key: &str, missing: Reason) -> Result<String, Problem> {
    let (namespace, name) = (
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default(),
    );
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .filter(|v| !v.0.is_empty())
        .ok_or_else(|| {
            Problem::new(
                missing,
                format!("Secret {namespace}/{name} has no key {key:?}"),
            )
        })?;
    String::from_utf8(value.0.clone()).map_err(|_| {
        Problem::new(
            missing,
            format!("Secret {namespace}/{name} key {key:?} is not text"),
        )
    })
}
