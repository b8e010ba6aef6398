//! The Vault PKI backend (Vault or OpenBao): only a CSR goes to `<mount>/sign/<role>`.
//!
//! - `client`: the HTTP client (one per issuer), every request through one `call`;
//! - `auth`: logging in (token, AppRole, Kubernetes) and the shared token.
//!
//! Building the backend reads the issuer's Secrets (its Secret namespace only) and reuses one
//! client per issuer, so its token is reused across issuances until shortly before it
//! expires, renewed when renewable, and concurrent issuances share one login.

mod auth;
mod client;

use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};

pub use auth::{Jwt, Login};
pub use client::{
    ServerPrefix, VaultClient, base_url, chain_from_response, colon_serial, sign_body,
};

use crate::api::{SecretKeySelector, VaultIssuer};
use crate::pki::Sensitive;
use crate::pki::request::SignRequest;
use crate::reason::{Problem, Reason};

use super::{Env, IssuerId, SignedChain};

/// Default audience of minted ServiceAccount tokens.
const DEFAULT_AUDIENCE: &str = "vault";

/// A ready Vault backend: a shared client, how to log in, where to sign.
#[derive(Debug)]
pub struct VaultBackend {
    pub client: Arc<VaultClient>,
    pub login: Login,
    pub sign_path: String,
}

impl VaultBackend {
    pub async fn build(vault: &VaultIssuer, env: &Env<'_>) -> Result<Self, Problem> {
        if !env.id.is_cluster_issuer() {
            server_allowed(&env.settings.issuer_vault_servers, &vault.server)?;
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
                env.secrets
                    .text(reference, Reason::InvalidSpec)
                    .await?
                    .into_bytes(),
            ),
            (None, None) => None,
        };
        let login = login(vault, env).await?;
        let client = shared_client(env, vault, ca_bundle.as_deref(), &login)?;
        Ok(VaultBackend {
            client,
            login,
            sign_path: vault.path.trim_matches('/').to_string(),
        })
    }

    pub async fn sign(&self, request: &SignRequest) -> Result<SignedChain, Problem> {
        self.client
            .sign(&self.login, &self.sign_path, request)
            .await
    }

    /// Issuer readiness: the server is healthy and the login works.
    pub async fn check(&self) -> Result<String, Problem> {
        self.client.health().await?;
        self.client.token(&self.login).await?;
        Ok(format!(
            "Vault at {} is healthy and the login works; signing with {}",
            self.client.server(),
            self.sign_path
        ))
    }

    /// Revoke a serial at the signing mount (`<mount>/revoke`).
    pub async fn revoke(&self, serial: &str) -> Result<(), Problem> {
        self.client
            .revoke(&self.login, mount_of(&self.sign_path), serial)
            .await
    }

    /// The signing mount's CA chain (`<mount>/cert/ca_chain`).
    pub async fn ca_certificates(&self) -> Result<Vec<String>, Problem> {
        self.client.ca_chain(mount_of(&self.sign_path)).await
    }
}

/// The PKI mount of a signing path: everything before `/sign/` or `/sign-verbatim`.
fn mount_of(sign_path: &str) -> &str {
    let parts: Vec<&str> = sign_path.split('/').collect();
    let at = parts
        .iter()
        .rposition(|p| *p == "sign" || *p == "sign-verbatim")
        .unwrap_or(parts.len());
    let end = parts[..at].iter().map(|p| p.len() + 1).sum::<usize>();
    sign_path[..end.saturating_sub(1)].trim_end_matches('/')
}

/// How to log in, with the credentials read from the issuer's Secrets.
async fn login(vault: &VaultIssuer, env: &Env<'_>) -> Result<Login, Problem> {
    let auth = &vault.auth;
    if let Some(reference) = &auth.token_secret_ref {
        return Ok(Login::Token(credential(env, reference).await?));
    }
    if let Some(app_role) = &auth.app_role {
        return Ok(Login::AppRole {
            mount: app_role.path.clone().unwrap_or_else(|| "approle".into()),
            role_id: app_role.role_id.clone(),
            secret_id: credential(env, &app_role.secret_ref).await?,
        });
    }
    let Some(k8s) = &auth.kubernetes else {
        return Err(Problem::new(
            Reason::InvalidSpec,
            "vault.auth needs tokenSecretRef, appRole or kubernetes",
        ));
    };
    let jwt = match (&k8s.service_account_ref, &k8s.secret_ref) {
        (Some(sa), _) => Jwt::Minted {
            client: env.client.clone(),
            namespace: env.secrets.namespace().to_string(),
            service_account: sa.name.clone(),
            audiences: token_audiences(&sa.audiences, env.id),
        },
        (None, Some(reference)) => Jwt::Stored(credential(env, reference).await?),
        (None, None) => {
            return Err(Problem::new(
                Reason::InvalidSpec,
                "vault.auth.kubernetes needs serviceAccountRef or secretRef",
            ));
        }
    };
    Ok(Login::Kubernetes {
        mount: k8s
            .mount_path
            .clone()
            .unwrap_or_else(|| "kubernetes".into()),
        role: k8s.role.clone(),
        jwt,
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
fn token_audiences(requested: &[String], issuer: &IssuerId) -> Vec<String> {
    let mut audiences = if requested.is_empty() {
        vec![DEFAULT_AUDIENCE.to_string()]
    } else {
        requested.to_vec()
    };
    let own = issuer.vault_audience();
    if !audiences.contains(&own) {
        audiences.push(own);
    }
    audiences
}

/// The client for this issuer, reused while its server, namespace, CA bundle and login
/// method stay the same (a new token is obtained when they change).
fn shared_client(
    env: &Env<'_>,
    vault: &VaultIssuer,
    ca_bundle: Option<&[u8]>,
    login: &Login,
) -> Result<Arc<VaultClient>, Problem> {
    let mut hasher = Sha256::new();
    hasher.update(vault.server.as_bytes());
    hasher.update([0]);
    hasher.update(vault.namespace.as_deref().unwrap_or("").as_bytes());
    hasher.update([0]);
    hasher.update(ca_bundle.unwrap_or_default());
    hasher.update([0]);
    hasher.update(login.fingerprint().as_bytes());
    let fingerprint: [u8; 32] = hasher.finalize().into();
    if let Some(client) = env.caches.vault.get(env.id, &fingerprint) {
        return Ok(client);
    }
    let client = Arc::new(VaultClient::new(
        &vault.server,
        vault.namespace.clone(),
        ca_bundle,
        env.metrics.clone(),
    )?);
    env.caches.vault.insert(env.id, fingerprint, client.clone());
    Ok(client)
}

/// A credential (token, secret ID, JWT) from a Secret key.
async fn credential(env: &Env<'_>, reference: &SecretKeySelector) -> Result<Sensitive, Problem> {
    env.secrets
        .text(reference, Reason::VaultCredentialsMissing)
        .await
        .map(Sensitive::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_always_name_their_issuer() {
        assert_eq!(
            token_audiences(&[], &IssuerId::issuer("agents", "vault")),
            ["vault", "vault://agents/vault"]
        );
        assert_eq!(
            token_audiences(
                &["https://vault.example".into()],
                &IssuerId::cluster_issuer("vault")
            ),
            ["https://vault.example", "vault://vault"]
        );
        assert_eq!(
            token_audiences(
                &["vault://vault".into()],
                &IssuerId::cluster_issuer("vault")
            ),
            ["vault://vault"],
            "named once"
        );
    }

    #[test]
    fn the_mount_is_what_comes_before_sign() {
        assert_eq!(mount_of("pki_int/sign/agents"), "pki_int");
        assert_eq!(mount_of("team/pki/sign-verbatim"), "team/pki");
        assert_eq!(mount_of("pki/sign-verbatim/agents"), "pki");
        assert_eq!(mount_of("pki/issuer/x/sign/r"), "pki/issuer/x");
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
