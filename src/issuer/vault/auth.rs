//! Logging in to Vault: a fixed token, AppRole, or Kubernetes auth with a ServiceAccount
//! token minted for the purpose. The token is cached in the client until 80% of its TTL,
//! renewed when renewable, and concurrent issuances wait for one login. Tokens, secret IDs and
//! JWTs are held in [`Sensitive`], which never prints its value.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::pki::Sensitive;
use crate::reason::{Problem, Reason};

use super::client::{VaultClient, vault_errors};

/// How to obtain a Vault token.
#[derive(Clone, Debug)]
pub enum Login {
    /// A fixed token.
    Token(Sensitive),
    AppRole {
        mount: String,
        role_id: String,
        secret_id: Sensitive,
    },
    /// Kubernetes auth; the JWT is obtained only when a login is needed.
    Kubernetes {
        mount: String,
        role: String,
        jwt: Jwt,
    },
}

impl Login {
    /// What identifies a login method, credentials included (hashed, never kept in clear):
    /// a changed credential gets a new client, and so a new login.
    pub fn fingerprint(&self) -> String {
        match self {
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
            Login::Kubernetes { mount, role, jwt } => {
                format!("kubernetes:{mount}:{role}:{jwt:?}")
            }
        }
    }
}

/// Where a Kubernetes-auth JWT comes from.
#[derive(Clone)]
pub enum Jwt {
    /// A token stored in a Secret.
    Stored(Sensitive),
    /// A short-lived token minted for a ServiceAccount with the TokenRequest API.
    Minted {
        client: kube::Client,
        namespace: String,
        service_account: String,
        audiences: Vec<String>,
    },
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Jwt::Stored(_) => f.write_str("Jwt::Stored(<redacted>)"),
            Jwt::Minted {
                namespace,
                service_account,
                audiences,
                ..
            } => {
                write!(
                    f,
                    "Jwt::Minted({namespace}/{service_account}, audiences {audiences:?})"
                )
            }
        }
    }
}

/// Lifetime requested for minted ServiceAccount tokens: they are used once, to log in.
const MINTED_TOKEN_SECONDS: i64 = 600;

impl Jwt {
    async fn get(&self) -> Result<Sensitive, Problem> {
        match self {
            Jwt::Stored(token) => Ok(token.clone()),
            Jwt::Minted {
                client,
                namespace,
                service_account,
                audiences,
            } => {
                // A request naming no audience gets the API server's own.
                let own = token_request(client, namespace, service_account, &[])
                    .await?
                    .spec
                    .audiences;
                if let Some(refusal) = api_audience_refusal(audiences, &own) {
                    return Err(Problem::new(
                        Reason::InvalidSpec,
                        format!(
                            "serviceAccountRef {namespace}/{service_account}: {refusal}; the \
                             operator mints no such token for Vault"
                        ),
                    ));
                }
                let minted = token_request(client, namespace, service_account, audiences).await?;
                let token = minted.status.map(|s| s.token).unwrap_or_default();
                Ok(Sensitive::new(token))
            }
        }
    }
}

/// A short-lived token for `service_account` with `audiences` (none: the API server's own).
async fn token_request(
    client: &kube::Client,
    namespace: &str,
    service_account: &str,
    audiences: &[String],
) -> Result<k8s_openapi::api::authentication::v1::TokenRequest, Problem> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audiences.to_vec(),
            expiration_seconds: Some(MINTED_TOKEN_SECONDS),
            ..Default::default()
        },
        ..Default::default()
    };
    api.create_token_request(service_account, &Default::default(), &request)
        .await
        .map_err(|e| {
            Problem::new(
                Reason::VaultCredentialsMissing,
                format!("TokenRequest for ServiceAccount {namespace}/{service_account}: {e}"),
            )
        })
}

/// Audiences that in-cluster API servers commonly accept (kubeadm, EKS and most
/// distributions), refused even when this API server did not name them: in an HA control
/// plane another replica may have been started with different flags.
const WELL_KNOWN_API_AUDIENCES: [&str; 2] = [
    "https://kubernetes.default.svc",
    "https://kubernetes.default.svc.cluster.local",
];

/// Why a token with `requested` audiences must not be minted for Vault, given the API
/// server's own audiences `api` (None: it may be).
///
/// A token with an audience the API server accepts is a credential for the cluster itself:
/// sent to a Vault server, which any namespace can point an Issuer at, it would let that
/// server act as the ServiceAccount. The API server's audiences (`--api-audiences`, by
/// default the `--service-account-issuer` values) are learned from the API server itself: it
/// fills them into a TokenRequest that names none, for the same ServiceAccount the operator
/// may already mint for; that token is dropped unused. The issuer in
/// `/.well-known/openid-configuration` would not do: `--api-audiences` can differ from it
/// (EKS accepts `https://kubernetes.default.svc`, AKS the API server's host name).
/// cert-manager adds the issuer-specific audience but makes no such check; it relies on RBAC
/// naming the ServiceAccounts, which the chart does too.
fn api_audience_refusal(requested: &[String], api: &[String]) -> Option<String> {
    if api.is_empty() {
        // Without audiences of its own the API server accepts a token whatever its audience.
        return Some(
            "the API server names no audiences of its own, so it would accept any token".into(),
        );
    }
    requested
        .iter()
        .find(|a| api.contains(a) || WELL_KNOWN_API_AUDIENCES.contains(&a.as_str()))
        .map(|a| {
            format!(
                "audience {a:?} is one the Kubernetes API server accepts: a token for it would \
                 let the Vault server act as this ServiceAccount in the cluster"
            )
        })
}

/// A token and when to stop trusting it.
pub(super) struct Token {
    value: Sensitive,
    /// None: no TTL (root or periodic without TTL).
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
    renewable: bool,
}

/// The longest token lifetime believed from a Vault answer: Vault's default maximum TTL
/// (768h). A server may claim any TTL, up to u64::MAX seconds (which overflows an
/// `Instant`); a token claimed to live longer is simply looked up or renewed again after this.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(768 * 3600);

impl VaultClient {
    /// A valid token: the cached one, renewed, or a fresh login. The lock makes concurrent
    /// callers wait for one login instead of each logging in.
    pub async fn token(&self, login: &Login) -> Result<Sensitive, Problem> {
        let mut cached = self.token.lock().await;
        let now = Instant::now();
        if let Some(token) = cached.as_ref() {
            let fresh = token.refresh_at.is_none_or(|t| now < t);
            if fresh {
                return Ok(token.value.clone());
            }
            let alive = token.expires_at.is_none_or(|t| now < t);
            if alive
                && token.renewable
                && let Ok(renewed) = self.renew(&token.value).await
            {
                let value = renewed.value.clone();
                *cached = Some(renewed);
                return Ok(value);
            }
        }
        let token = self.login(login).await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    /// Forget the cached token (after Vault refused it).
    pub async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    async fn login(&self, login: &Login) -> Result<Token, Problem> {
        let (path, body) = match login {
            Login::Token(token) => {
                // A fixed token: look it up to learn its TTL, which also proves it works.
                let (status, body) = self
                    .call(
                        "lookup",
                        reqwest::Method::GET,
                        self.endpoint("auth/token/lookup-self"),
                        Some(token),
                        None,
                    )
                    .await?;
                if status >= 400 {
                    return Err(auth_failed("token lookup", status, &body));
                }
                let ttl = body["data"]["ttl"].as_u64().unwrap_or(0);
                let renewable = body["data"]["renewable"].as_bool().unwrap_or(false);
                return Ok(token_with_ttl(token.clone(), ttl, renewable));
            }
            Login::AppRole {
                mount,
                role_id,
                secret_id,
            } => (
                format!("auth/{}/login", mount.trim_matches('/')),
                json!({"role_id": role_id, "secret_id": secret_id.expose()}),
            ),
            Login::Kubernetes { mount, role, jwt } => {
                let jwt = jwt.get().await?;
                (
                    format!("auth/{}/login", mount.trim_matches('/')),
                    json!({"role": role, "jwt": jwt.expose()}),
                )
            }
        };
        let (status, body) = self
            .call(
                "login",
                reqwest::Method::POST,
                self.endpoint(&path),
                None,
                Some(body),
            )
            .await?;
        if status >= 400 {
            return Err(auth_failed(&path, status, &body));
        }
        let auth = &body["auth"];
        let value = auth["client_token"].as_str().ok_or_else(|| {
            Problem::new(
                Reason::VaultAuthFailed,
                format!("Vault {path}: no client_token in the response"),
            )
        })?;
        Ok(token_with_ttl(
            Sensitive::new(value),
            auth["lease_duration"].as_u64().unwrap_or(0),
            auth["renewable"].as_bool().unwrap_or(false),
        ))
    }

    async fn renew(&self, token: &Sensitive) -> Result<Token, Problem> {
        let (status, body) = self
            .call(
                "renew",
                reqwest::Method::POST,
                self.endpoint("auth/token/renew-self"),
                Some(token),
                Some(json!({})),
            )
            .await?;
        if status >= 400 {
            return Err(auth_failed("auth/token/renew-self", status, &body));
        }
        let auth = &body["auth"];
        Ok(token_with_ttl(
            token.clone(),
            auth["lease_duration"].as_u64().unwrap_or(0),
            auth["renewable"].as_bool().unwrap_or(false),
        ))
    }
}

/// A token Vault says lives `ttl_secs` (0: no TTL), believed up to [`MAX_TOKEN_TTL`].
fn token_with_ttl(value: Sensitive, ttl_secs: u64, renewable: bool) -> Token {
    if ttl_secs == 0 {
        return Token {
            value,
            refresh_at: None,
            expires_at: None,
            renewable,
        };
    }
    let now = Instant::now();
    let ttl = Duration::from_secs(ttl_secs).min(MAX_TOKEN_TTL);
    // Refresh once 80% of the TTL has passed, and at least 5 s before expiry.
    let margin = (ttl / 5).max(Duration::from_secs(5)).min(ttl);
    // Below the cap this cannot overflow; were it to, the token is refreshed at once.
    let after = |d: Duration| now.checked_add(d).unwrap_or(now);
    Token {
        value,
        refresh_at: Some(after(ttl - margin)),
        expires_at: Some(after(ttl)),
        renewable,
    }
}

fn auth_failed(path: &str, status: u16, body: &Value) -> Problem {
    Problem::new(
        Reason::VaultAuthFailed,
        format!("Vault {path}: {status}: {}", vault_errors(body)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ttl_near_u64_max_is_capped_not_an_overflow() {
        let token = token_with_ttl(Sensitive::new("t"), u64::MAX, true);
        let expires_at = token.expires_at.expect("an expiry");
        assert!(expires_at <= Instant::now() + MAX_TOKEN_TTL);
        assert!(token.refresh_at.expect("a refresh time") < expires_at);
    }

    #[test]
    fn audiences_of_the_api_server_are_refused() {
        let api = vec!["https://issuer.example".to_string()];
        let requested = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            api_audience_refusal(&requested(&["vault", "vault://ns/v"]), &api),
            None
        );
        for audience in [
            "https://issuer.example",
            "https://kubernetes.default.svc",
            "https://kubernetes.default.svc.cluster.local",
        ] {
            let refusal = api_audience_refusal(&requested(&["vault", audience]), &api);
            assert!(
                refusal.as_deref().is_some_and(|r| r.contains(audience)),
                "{audience}: {refusal:?}"
            );
        }
        assert!(
            api_audience_refusal(&requested(&["vault"]), &[]).is_some(),
            "an API server without audiences accepts any token"
        );
    }

    #[test]
    fn credentials_never_print() {
        let secret = Sensitive::new("s.supersecret");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        let login = Login::AppRole {
            mount: "approle".into(),
            role_id: "r".into(),
            secret_id: secret.clone(),
        };
        assert!(!format!("{login:?}").contains("supersecret"));
    }
}
