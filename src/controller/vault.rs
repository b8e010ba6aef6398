//! Turn a `vault` issuer spec into a [`VaultSigner`]: read its Secrets (from the issuer's
//! Secret namespace only), and reuse one client per issuer so tokens are shared.

use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::api::{SecretKeySelector, VaultIssuer};
use crate::issuer::vault::{
    Jwt, Login, Sensitive, ServerPrefix, VaultClient, VaultSigner, base_url,
};
use crate::reason::{Problem, Reason};

use super::Context;

/// Default audience of minted ServiceAccount tokens.
const DEFAULT_AUDIENCE: &str = "vault";

/// `identity` is `Issuer/<namespace>/<name>` or `ClusterIssuer//<name>`
/// (controller::issuer::identity).
pub async fn build(
    ctx: &Context,
    vault: &VaultIssuer,
    secret_namespace: &str,
    identity: &str,
) -> Result<VaultSigner, Problem> {
    if !identity.starts_with("ClusterIssuer/") {
        server_allowed(&ctx.settings.issuer_vault_servers, &vault.server)?;
    }
    let ca_bundle = match (&vault.ca_bundle, &vault.ca_bundle_secret_ref) {
        (Some(b64), _) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| {
                    Problem::new(
                        Reason::InvalidSpec,
                        format!("vault.caBundle is not base64: {e}"),
                    )
                })?,
        ),
        (None, Some(reference)) => Some(
            secret_key(ctx, secret_namespace, reference, Reason::InvalidSpec)
                .await?
                .into_bytes(),
        ),
        (None, None) => None,
    };
    let auth = &vault.auth;
    let login = if let Some(reference) = &auth.token_secret_ref {
        Login::Token(credential(ctx, secret_namespace, reference).await?)
    } else if let Some(app_role) = &auth.app_role {
        Login::AppRole {
            mount: app_role.path.clone().unwrap_or_else(|| "approle".into()),
            role_id: app_role.role_id.clone(),
            secret_id: credential(ctx, secret_namespace, &app_role.secret_ref).await?,
        }
    } else if let Some(k8s) = &auth.kubernetes {
        let jwt = match (&k8s.service_account_ref, &k8s.secret_ref) {
            (Some(sa), _) => Jwt::Minted {
                client: ctx.client.clone(),
                namespace: secret_namespace.to_string(),
                service_account: sa.name.clone(),
                audiences: token_audiences(&sa.audiences, identity),
            },
            (None, Some(reference)) => {
                Jwt::Stored(credential(ctx, secret_namespace, reference).await?)
            }
            (None, None) => {
                return Err(Problem::new(
                    Reason::InvalidSpec,
                    "vault.auth.kubernetes needs serviceAccountRef or secretRef",
                ));
            }
        };
        Login::Kubernetes {
            mount: k8s
                .mount_path
                .clone()
                .unwrap_or_else(|| "kubernetes".into()),
            role: k8s.role.clone(),
            jwt,
        }
    } else {
        return Err(Problem::new(
            Reason::InvalidSpec,
            "vault.auth needs tokenSecretRef, appRole or kubernetes",
        ));
    };
    let client = shared_client(ctx, vault, ca_bundle.as_deref(), &login, identity)?;
    Ok(VaultSigner {
        client,
        login,
        sign_path: vault.path.trim_matches('/').to_string(),
    })
}

/// Whether a namespaced Issuer may use `server`: any when `allowed` is empty, else one under
/// an allowed prefix. ClusterIssuers are not asked: only cluster admins create them.
fn server_allowed(allowed: &[ServerPrefix], server: &str) -> Result<(), Problem> {
    let url = base_url(server)
        .map_err(|e| Problem::new(Reason::InvalidSpec, format!("vault.server: {e}")))?;
    if allowed.is_empty() || allowed.iter().any(|prefix| prefix.admits(&url)) {
        return Ok(());
    }
    let list: Vec<String> = allowed.iter().map(ToString::to_string).collect();
    Err(Problem::new(
        Reason::VaultServerNotAllowed,
        format!(
            "Vault server {server} is not one namespaced Issuers may use: the operator's \
             --issuer-vault-servers allows {}",
            list.join(", ")
        ),
    ))
}

/// Audiences of the tokens minted for an issuer: those of the spec (default `vault`), and
/// always the issuer's own, as cert-manager does, so that a Vault role can require tokens
/// minted for this issuer (`vault://<namespace>/<name>`, `vault://<name>` for a ClusterIssuer).
fn token_audiences(requested: &[String], identity: &str) -> Vec<String> {
    let mut audiences = if requested.is_empty() {
        vec![DEFAULT_AUDIENCE.to_string()]
    } else {
        requested.to_vec()
    };
    let issuer = identity
        .strip_prefix("ClusterIssuer//")
        .or_else(|| identity.strip_prefix("Issuer/"))
        .unwrap_or(identity);
    let own = format!("vault://{issuer}");
    if !audiences.contains(&own) {
        audiences.push(own);
    }
    audiences
}

/// The client for this issuer, reused while its server, namespace, CA bundle and login
/// method stay the same (a new token is obtained when they change).
fn shared_client(
    ctx: &Context,
    vault: &VaultIssuer,
    ca_bundle: Option<&[u8]>,
    login: &Login,
    identity: &str,
) -> Result<Arc<VaultClient>, Problem> {
    let mut hasher = Sha256::new();
    hasher.update(vault.server.as_bytes());
    hasher.update([0]);
    hasher.update(vault.namespace.as_deref().unwrap_or("").as_bytes());
    hasher.update([0]);
    hasher.update(ca_bundle.unwrap_or_default());
    hasher.update([0]);
    hasher.update(login_fingerprint(login).as_bytes());
    let fingerprint: [u8; 32] = hasher.finalize().into();
    let mut clients = ctx
        .backends
        .vault
        .lock()
        .map_err(|_| Problem::new(Reason::ApiError, "Vault client cache poisoned"))?;
    if let Some((known, client)) = clients.get(identity)
        && *known == fingerprint
    {
        return Ok(client.clone());
    }
    let client = Arc::new(VaultClient::new(
        &vault.server,
        vault.namespace.clone(),
        ca_bundle,
        ctx.metrics.clone(),
    )?);
    clients.insert(identity.to_string(), (fingerprint, client.clone()));
    Ok(client)
}

/// What identifies a login method, credentials included (hashed, never stored in clear).
fn login_fingerprint(login: &Login) -> String {
    match login {
        Login::Token(t) => format!("token:{}", t.fingerprint()),
        Login::AppRole {
            mount,
            role_id,
            secret_id,
        } => format!("approle:{mount}:{role_id}:{}", secret_id.fingerprint()),
        Login::Kubernetes {
            mount,
            role,
            jwt: Jwt::Stored(t),
        } => format!("kubernetes:{mount}:{role}:{}", t.fingerprint()),
        Login::Kubernetes { mount, role, jwt } => format!("kubernetes:{mount}:{role}:{jwt:?}"),
    }
}

/// A credential (token, secret ID, JWT) from a Secret key.
async fn credential(
    ctx: &Context,
    namespace: &str,
    reference: &SecretKeySelector,
) -> Result<Sensitive, Problem> {
    secret_key(ctx, namespace, reference, Reason::VaultCredentialsMissing)
        .await
        .map(Sensitive::new)
}

/// One key of a Secret in the issuer's Secret namespace, as text.
async fn secret_key(
    ctx: &Context,
    namespace: &str,
    reference: &SecretKeySelector,
    missing: Reason,
) -> Result<String, Problem> {
    let secret = super::issuer_secret::read(ctx, namespace, &reference.name, missing, "").await?;
    super::issuer_secret::text(&secret, &reference.key, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_always_name_their_issuer() {
        assert_eq!(
            token_audiences(&[], "Issuer/agents/vault"),
            ["vault", "vault://agents/vault"]
        );
        assert_eq!(
            token_audiences(&["https://vault.example".into()], "ClusterIssuer//vault"),
            ["https://vault.example", "vault://vault"]
        );
        assert_eq!(
            token_audiences(&["vault://vault".into()], "ClusterIssuer//vault"),
            ["vault://vault"],
            "named once"
        );
    }

    #[test]
    fn namespaced_issuers_use_only_allowed_servers() {
        let allowed: Vec<ServerPrefix> = vec![
            "https://vault.example:8200".parse().unwrap(),
            "https://vault2.example/team-a".parse().unwrap(),
        ];
        assert!(server_allowed(&[], "http://anything.example").is_ok());
        assert!(server_allowed(&allowed, "https://vault.example:8200/").is_ok());
        assert!(server_allowed(&allowed, "https://vault2.example/team-a/x").is_ok());
        let refused = server_allowed(&allowed, "https://vault.example:8200.evil.com").unwrap_err();
        assert_eq!(refused.reason, Reason::InvalidSpec);
        let refused = server_allowed(&allowed, "https://vault2.example/team-b").unwrap_err();
        assert_eq!(refused.reason, Reason::VaultServerNotAllowed);
        assert!(
            refused.message.contains("--issuer-vault-servers"),
            "{refused}"
        );
    }
}
