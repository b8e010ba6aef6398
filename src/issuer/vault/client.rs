//! The Vault HTTP client: one per issuer (and credentials) for the life of the process, so
//! its token (see `auth`) is shared. Every request goes through [`VaultClient::call`]: joined
//! onto the server's base URL, at most one same-origin redirect, answers read up to 1 MiB,
//! timed and counted in the backend metrics. Hand-written on reqwest rather than vaultrs: see
//! the README (Vault issuer) for why.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde_json::{Value, json};

use crate::api::conditions::bounded_message;
use crate::metrics::Metrics;
use crate::pki::request::SignRequest;
use crate::reason::{Problem, Reason};

use crate::issuer::SignedChain;
use crate::pki::Sensitive;

use super::auth::{Login, Token};

/// Address, trust and namespace of a Vault server, plus the login method and the cached token.
pub struct VaultClient {
    http: reqwest::Client,
    /// The server as shown in messages, without a trailing slash.
    server: String,
    /// The server with a trailing slash: every request URL is joined onto it.
    base: Url,
    namespace: Option<String>,
    pub(super) token: tokio::sync::Mutex<Option<Token>>,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultClient")
            .field("server", &self.server)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// Requests to Vault give up after this long, so a hung server cannot hold a worker.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest Vault answer read, whatever its Content-Length says: a sign response with a
/// long chain is tens of KiB, and a server a tenant controls could otherwise stream forever.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

impl VaultClient {
    pub fn new(
        server: &str,
        namespace: Option<String>,
        ca_bundle: Option<&[u8]>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Problem> {
        let base = base_url(server)
            .map_err(|e| Problem::new(Reason::InvalidSpec, format!("vault.server: {e}")))?;
        Ok(VaultClient {
            http: http_client(ca_bundle)?,
            server: base.as_str().trim_end_matches('/').to_string(),
            base,
            namespace: namespace.filter(|n| !n.is_empty()),
            token: tokio::sync::Mutex::new(None),
            metrics,
        })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// `<server>/v1/<path>`, built segment by segment: `.` and `..` are dropped and `?`, `#`
    /// and `%` escaped, so no path from a spec (a mount, a signing path) leaves `/v1/`.
    pub(super) fn endpoint(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        // A base URL (http or https with a host) always has path segments.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .push("v1")
                .extend(path.split('/').filter(|s| !s.is_empty()));
        }
        url
    }

    /// One call to the Vault HTTP API. Errors carry Vault's own messages, never credentials.
    pub(super) async fn call(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        url: Url,
        token: Option<&Sensitive>,
        body: Option<Value>,
    ) -> Result<(u16, Value), Problem> {
        let mut request = self.http.request(method, url);
        if let Some(ns) = &self.namespace {
            request = request.header("X-Vault-Namespace", ns);
        }
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token.expose());
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let started = Instant::now();
        let result = self.exchange(request).await;
        let outcome = match &result {
            Err(_) => "unreachable",
            Ok((status, _)) if *status < 400 => "success",
            Ok(_) => "error",
        };
        self.metrics.backend_request(
            crate::issuer::BackendType::Vault.as_str(),
            operation,
            outcome,
            started.elapsed(),
        );
        result
    }

    /// Send `request` and read the answer: its status and JSON body (Null when not JSON).
    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<(u16, Value), Problem> {
        let unreachable = |e: reqwest::Error| {
            Problem::new(
                Reason::VaultUnreachable,
                format!(
                    "Vault {} unreachable: {}",
                    self.server,
                    describe_http_error(&e)
                ),
            )
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        // Chunk by chunk, so a body is cut at the cap however long it claims to be.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Problem::new(
                    Reason::VaultUnreachable,
                    format!(
                        "Vault {} answered with more than 1 MiB; not read further",
                        self.server
                    ),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    /// A PKI mount's CA chain (`<mount>/cert/ca_chain`, the issuing CA first), as PEM blocks.
    pub async fn ca_chain(&self, mount: &str) -> Result<Vec<String>, Problem> {
        let path = format!("{mount}/cert/ca_chain");
        let (status, body) = self
            .call(
                "ca_chain",
                reqwest::Method::GET,
                self.endpoint(&path),
                None,
                None,
            )
            .await?;
        if status >= 400 {
            return Err(Problem::new(
                Reason::VaultUnreachable,
                format!("Vault {path}: {status}: {}", vault_errors(&body)),
            ));
        }
        let text = body["data"]["certificate"].as_str().unwrap_or_default();
        let blocks = pem::parse_many(text).map_err(|e| {
            Problem::new(
                Reason::SigningFailed,
                format!("Vault {path}: the CA chain is not PEM: {e}"),
            )
        })?;
        Ok(blocks
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| crate::pki::pem_lf("CERTIFICATE", b.contents().to_vec()))
            .collect())
    }

    /// `sys/health`: is the server initialized, unsealed and answering?
    pub async fn health(&self) -> Result<(), Problem> {
        let mut url = self.endpoint("sys/health");
        url.query_pairs_mut()
            .append_pair("standbyok", "true")
            .append_pair("perfstandbyok", "true");
        let (status, body) = self
            .call("health", reqwest::Method::GET, url, None, None)
            .await?;
        match status {
            200..=299 | 429 | 472 | 473 => Ok(()),
            501 => Err(Problem::new(
                Reason::VaultUninitialized,
                format!("Vault {} is not initialized", self.server),
            )),
            503 => Err(Problem::new(
                Reason::VaultSealed,
                format!("Vault {} is sealed", self.server),
            )),
            other => Err(Problem::new(
                Reason::VaultUnreachable,
                format!(
                    "Vault {} health check answered {other}: {}",
                    self.server,
                    vault_errors(&body)
                ),
            )),
        }
    }

    /// Revoke a serial at a PKI mount (`<mount>/revoke`; the token's policy needs `update` on
    /// that path). Revoking a revoked certificate again is accepted by Vault.
    pub async fn revoke(&self, login: &Login, mount: &str, serial: &str) -> Result<(), Problem> {
        let path = format!("{mount}/revoke");
        let body = serde_json::json!({"serial_number": colon_serial(serial)});
        let token = self.token(login).await?;
        let (mut status, mut response) = self
            .call(
                "revoke",
                reqwest::Method::POST,
                self.endpoint(&path),
                Some(&token),
                Some(body.clone()),
            )
            .await?;
        if status == 403 {
            self.forget_token().await;
            let token = self.token(login).await?;
            (status, response) = self
                .call(
                    "revoke",
                    reqwest::Method::POST,
                    self.endpoint(&path),
                    Some(&token),
                    Some(body),
                )
                .await?;
        }
        if status >= 400 {
            return Err(Problem::new(
                Reason::RevocationFailed,
                format!("Vault {path}: {status}: {}", vault_errors(&response)),
            ));
        }
        Ok(())
    }

    /// POST the CSR to the signing path and assemble `tls.crt` and `ca.crt`.
    pub async fn sign(
        &self,
        login: &Login,
        sign_path: &str,
        request: &SignRequest,
    ) -> Result<SignedChain, Problem> {
        let body = sign_body(sign_path, request);
        let token = self.token(login).await?;
        let (mut status, mut response) = self
            .call(
                "sign",
                reqwest::Method::POST,
                self.endpoint(sign_path),
                Some(&token),
                Some(body.clone()),
            )
            .await?;
        if status == 403 {
            // The token may have been revoked or expired early: log in once more and retry.
            self.forget_token().await;
            let token = self.token(login).await?;
            (status, response) = self
                .call(
                    "sign",
                    reqwest::Method::POST,
                    self.endpoint(sign_path),
                    Some(&token),
                    Some(body),
                )
                .await?;
        }
        if status >= 400 {
            return Err(Problem::new(
                Reason::SigningFailed,
                format!("Vault {sign_path}: {status}: {}", vault_errors(&response)),
            ));
        }
        chain_from_response(&response["data"])
            .map_err(|e| Problem::new(Reason::SigningFailed, format!("Vault {sign_path}: {e}")))
    }
}

/// A hex serial as Vault writes serials: colon-separated byte pairs (`0a:1b:...`).
pub fn colon_serial(serial: &str) -> String {
    let digits: String = serial.chars().filter(char::is_ascii_hexdigit).collect();
    let digits = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits
    };
    digits
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_lowercase())
        .collect::<Vec<_>>()
        .join(":")
}

/// `server` as the base every request URL is joined onto: http or https, a host, an
/// optional port and path prefix, and a trailing slash. A query, fragment or user info could
/// steer requests elsewhere (with `http://host/admin#`, `<server>/v1/…` is a fragment of
/// `/admin`), so they are refused, textually too: the URL parser forgives some (`http://@host`).
pub fn base_url(server: &str) -> Result<Url, String> {
    if let Some(c) = server
        .chars()
        .find(|c| matches!(c, '?' | '#' | '@') || c.is_whitespace())
    {
        return Err(format!(
            "{server:?} is not a base URL: {c:?} is not allowed (no query, fragment or user info)"
        ));
    }
    let mut url = Url::parse(server).map_err(|e| format!("{server:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{server:?}: the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{server:?} names no host"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A Vault URL prefix that namespaced Issuers' servers must fall under
/// (`--issuer-vault-servers`), compared as URLs: the same scheme, host and port, and a path
/// under the prefix's path at a `/` boundary. So `https://vault.example:8200` admits
/// `https://vault.example:8200/team-a` but not `https://vault.example.evil.com:8200`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPrefix(Url);

impl std::str::FromStr for ServerPrefix {
    type Err = String;

    fn from_str(prefix: &str) -> Result<Self, String> {
        base_url(prefix).map(ServerPrefix)
    }
}

impl fmt::Display for ServerPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl ServerPrefix {
    /// Whether `server` (a [`base_url`]) falls under this prefix. Both paths end with `/`,
    /// so a string prefix of the path is a prefix at a segment boundary.
    pub fn admits(&self, server: &Url) -> bool {
        let prefix = &self.0;
        prefix.scheme() == server.scheme()
            && prefix.host() == server.host()
            && prefix.port_or_known_default() == server.port_or_known_default()
            && server.path().starts_with(prefix.path())
    }
}

/// The HTTP client for one Vault server: its trust, timeouts and redirect rule.
fn http_client(ca_bundle: Option<&[u8]>) -> Result<reqwest::Client, Problem> {
    let invalid = |m: String| Problem::new(Reason::InvalidSpec, m);
    let mut builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::custom(
            |attempt| match redirect_refusal(attempt.previous(), attempt.url()) {
                None => attempt.follow(),
                Some(why) => attempt.error(why),
            },
        ));
    if let Some(pem) = ca_bundle {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| invalid(format!("Vault CA bundle is not PEM: {e}")))?;
        if certs.is_empty() {
            return Err(invalid("Vault CA bundle holds no certificate".into()));
        }
        // The bundle is the whole trust, as with cert-manager: a server that only the
        // system roots vouch for is refused.
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| invalid(format!("building the Vault HTTP client: {e}")))
}

/// Why a redirect from `previous` (the original request first) to `next` is not followed
/// (None: it is). A redirect resends `X-Vault-Token` (reqwest strips only `Authorization`
/// across hosts) and, for a 307 or 308, the login body with the secret ID or JWT. Vault's own
/// client follows at most one redirect and never from https to http; this one also stays on
/// the original scheme, host and port. (A standby that redirects to the active node is
/// refused: point `server` at the active node or a load balancer; standbys forward requests
/// by default.)
fn redirect_refusal(previous: &[Url], next: &Url) -> Option<String> {
    let origin = |u: &Url| u.origin().ascii_serialization();
    match previous {
        [original] if origin(original) == origin(next) => None,
        [original] => Some(format!(
            "refused a redirect from {} to another origin, {}",
            origin(original),
            origin(next)
        )),
        _ => Some("refused a second redirect".into()),
    }
}

/// Vault's `errors` array as one line (these never contain the request's credentials),
/// bounded like any condition message: the server may be one a tenant controls.
pub(super) fn vault_errors(body: &Value) -> String {
    match body["errors"].as_array() {
        Some(errors) if !errors.is_empty() => bounded_message(
            &errors
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => "no error detail".into(),
    }
}

/// reqwest errors print the URL and cause chain; keep the useful part.
fn describe_http_error(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_redirect() {
        "redirect refused".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// Whether a signing path is `sign-verbatim` (Vault then ignores names in the body).
fn is_verbatim(sign_path: &str) -> bool {
    sign_path.split('/').any(|part| part == "sign-verbatim")
}

/// The request body for `sign` (names as Vault expects them) or `sign-verbatim`.
pub fn sign_body(sign_path: &str, request: &SignRequest) -> Value {
    let ttl = format!("{}s", request.duration.as_secs());
    if is_verbatim(sign_path) {
        return json!({"csr": request.csr_pem, "ttl": ttl, "format": "pem"});
    }
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    let mut uris = Vec::new();
    for san in &request.params.subject_alt_names {
        match san {
            rcgen::SanType::DnsName(n) => dns.push(n.as_str().to_string()),
            rcgen::SanType::Rfc822Name(e) => dns.push(e.as_str().to_string()),
            rcgen::SanType::IpAddress(ip) => ips.push(ip.to_string()),
            rcgen::SanType::URI(u) => uris.push(u.as_str().to_string()),
            _ => {}
        }
    }
    let common_name = request.common_name.clone();
    // Without a CN Vault wants one of the SANs as common name; with a CN that is not among
    // the DNS names, Vault would add it as a SAN unless told not to.
    let (common_name, exclude_cn) = match common_name {
        Some(cn) => {
            let exclude = !dns.contains(&cn);
            (cn, exclude)
        }
        None => (dns.first().cloned().unwrap_or_default(), false),
    };
    json!({
        "csr": request.csr_pem,
        "common_name": common_name,
        "alt_names": dns.join(","),
        "ip_sans": ips.join(","),
        "uri_sans": uris.join(","),
        "ttl": ttl,
        "format": "pem",
        "exclude_cn_from_sans": exclude_cn,
    })
}

/// `tls.crt` = leaf then intermediates (no roots, no duplicates); `ca.crt` = the root when
/// Vault returns one, else the top of the chain.
pub fn chain_from_response(data: &Value) -> Result<SignedChain, String> {
    let leaf = data["certificate"]
        .as_str()
        .ok_or("response has no certificate")?;
    let mut chain_pems: Vec<String> = data["ca_chain"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if chain_pems.is_empty()
        && let Some(issuing) = data["issuing_ca"].as_str()
    {
        chain_pems.push(issuing.to_string());
    }
    crate::issuer::assemble_chain(leaf, &chain_pems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CertificateSpec, KeyAlgorithm};
    use crate::issuer::selfsigned;
    use crate::pki::inspect;
    use crate::pki::keys::PrivateKey;
    use crate::pki::request::sign_request;

    fn request(spec: serde_json::Value) -> SignRequest {
        let mut base = json!({"secretName": "s", "issuerRef": {"name": "v"}, "duration": "2h"});
        for (k, v) in spec.as_object().unwrap() {
            base[k] = v.clone();
        }
        let spec: CertificateSpec = serde_json::from_value(base).unwrap();
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        sign_request(&spec, &key).unwrap()
    }

    #[test]
    fn sign_body_passes_names_as_vault_expects() {
        let r = request(
            json!({"commonName": "orders", "dnsNames": ["orders.svc"], "ipAddresses": ["10.0.0.1"],
                               "uris": ["spiffe://td/orders"], "emailAddresses": ["o@example.com"]}),
        );
        let body = sign_body("pki_int/sign/agents", &r);
        assert_eq!(body["common_name"], "orders");
        assert_eq!(body["alt_names"], "orders.svc,o@example.com");
        assert_eq!(body["ip_sans"], "10.0.0.1");
        assert_eq!(body["uri_sans"], "spiffe://td/orders");
        assert_eq!(body["ttl"], "7200s");
        assert_eq!(
            body["exclude_cn_from_sans"], true,
            "a CN that is not a DNS name must not become one"
        );
        assert!(
            body["csr"]
                .as_str()
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE REQUEST-----")
        );
        assert!(body.get("private_key").is_none());
    }

    #[test]
    fn without_a_common_name_the_first_dns_name_stands_in() {
        let body = sign_body(
            "pki/sign/r",
            &request(json!({"dnsNames": ["a.example", "b.example"]})),
        );
        assert_eq!(body["common_name"], "a.example");
        assert_eq!(body["exclude_cn_from_sans"], false);
    }

    #[test]
    fn sign_verbatim_sends_only_the_csr_and_ttl() {
        let body = sign_body(
            "pki/sign-verbatim/r",
            &request(json!({"dnsNames": ["a.example"]})),
        );
        assert!(body.get("common_name").is_none() && body.get("alt_names").is_none());
        assert_eq!(body["ttl"], "7200s");
    }

    fn cert(spec: serde_json::Value) -> String {
        let mut base = json!({"secretName": "s", "issuerRef": {"name": "v"}});
        for (k, v) in spec.as_object().unwrap() {
            base[k] = v.clone();
        }
        let spec: CertificateSpec = serde_json::from_value(base).unwrap();
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        selfsigned::sign(&sign_request(&spec, &key).unwrap(), &key, 1_800_000_000)
            .unwrap()
            .chain_pem
    }

    #[test]
    fn chain_is_leaf_then_intermediates_and_ca_is_the_root() {
        // Stand-ins: what matters here is self-signed (root) or not, and duplicates.
        let root = cert(json!({"commonName": "root", "isCA": true}));
        let leaf = cert(json!({"commonName": "leaf"}));
        let data = json!({"certificate": leaf, "issuing_ca": root, "ca_chain": [root, root]});
        let chain = chain_from_response(&data).unwrap();
        let parsed = inspect::parse_chain(chain.chain_pem.as_bytes()).unwrap();
        assert_eq!(
            parsed.len(),
            1,
            "the self-signed root is not repeated in tls.crt"
        );
        assert_eq!(chain.ca_pem.trim(), root.trim());
        assert!(chain_from_response(&json!({})).is_err());
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn the_server_must_be_a_base_url() {
        let client = |server: &str| {
            VaultClient::new(server, None, None, Arc::new(Metrics::default())).map(|_| ())
        };
        for bad in [
            "http://host/admin#",
            "http://host/admin#/x",
            "http://user@host",
            "http://@host",
            "http://user:pass@host/",
            "http://host?x=1",
            "http://host/v1?",
            "ftp://host",
            "https://",
            "host:8200",
        ] {
            let refused = client(bad).expect_err(bad);
            assert_eq!(refused.reason, Reason::InvalidSpec, "{bad}: {refused}");
        }
        for good in [
            "http://127.0.0.1:8200",
            "https://vault.example",
            "https://vault.example:8200/prefix/",
            "https://[::1]:8200",
        ] {
            client(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }

    #[test]
    fn request_urls_stay_under_the_server_v1() {
        let client = |server: &str| {
            VaultClient::new(server, None, None, Arc::new(Metrics::default())).unwrap()
        };
        let prefixed = client("https://vault.example:8200/prefix");
        assert_eq!(
            prefixed.endpoint("pki_int/sign/agents").as_str(),
            "https://vault.example:8200/prefix/v1/pki_int/sign/agents"
        );
        assert_eq!(prefixed.server(), "https://vault.example:8200/prefix");
        let plain = client("http://127.0.0.1:8200/");
        for (path, expected) in [
            (
                "auth/approle/login",
                "http://127.0.0.1:8200/v1/auth/approle/login",
            ),
            // A mount or signing path from a spec cannot climb out of /v1/ nor add a query.
            (
                "auth/../../admin/login",
                "http://127.0.0.1:8200/v1/auth/admin/login",
            ),
            ("../../sys/sign/r", "http://127.0.0.1:8200/v1/sys/sign/r"),
            (
                "auth/x?y#z/login",
                "http://127.0.0.1:8200/v1/auth/x%3Fy%23z/login",
            ),
            ("auth//k8s/login", "http://127.0.0.1:8200/v1/auth/k8s/login"),
        ] {
            assert_eq!(plain.endpoint(path).as_str(), expected, "{path}");
        }
    }

    #[test]
    fn an_allowed_server_prefix_matches_as_a_url() {
        let prefix: ServerPrefix = "https://vault.example:8200".parse().unwrap();
        let team: ServerPrefix = "https://vault2.example/team-a".parse().unwrap();
        let admitted =
            |prefix: &ServerPrefix, server: &str| prefix.admits(&base_url(server).unwrap());
        assert!(admitted(&prefix, "https://vault.example:8200"));
        assert!(admitted(&prefix, "https://VAULT.example:8200/"));
        assert!(admitted(&prefix, "https://vault.example:8200/any/path"));
        assert!(admitted(&team, "https://vault2.example:443/team-a/"));
        assert!(admitted(&team, "https://vault2.example/team-a/sub"));
        for (prefix, server) in [
            (&prefix, "https://vault.example:8200.evil.com"),
            (&prefix, "https://vault.example.evil.com:8200"),
            (&prefix, "http://vault.example:8200"),
            (&prefix, "https://vault.example:8201"),
            (&prefix, "https://vault.example"),
            (&team, "https://vault2.example/team-ab"),
            (&team, "https://vault2.example/"),
            (&team, "https://vault2.example/x/../team-b/"),
        ] {
            let admitted = base_url(server).is_ok_and(|s| prefix.admits(&s));
            assert!(!admitted, "{prefix} must not admit {server}");
        }
        assert!("https://vault.example/?x".parse::<ServerPrefix>().is_err());
    }

    #[test]
    fn one_redirect_within_the_same_origin_is_followed_nothing_else() {
        let first = url("https://vault.example:8200/v1/auth/approle/login");
        let same = url("https://vault.example:8200/v1/other");
        assert_eq!(redirect_refusal(std::slice::from_ref(&first), &same), None);
        assert_eq!(
            redirect_refusal(&[first.clone(), same.clone()], &same),
            Some("refused a second redirect".into())
        );
        for elsewhere in [
            "http://vault.example:8200/v1/other",  // https -> http
            "https://vault.example:8201/v1/other", // another port
            "https://evil.example:8200/v1/other",  // another host
            "https://vault.example/v1/other",      // the default port is another port
        ] {
            let refusal = redirect_refusal(std::slice::from_ref(&first), &url(elsewhere));
            assert!(
                refusal
                    .as_deref()
                    .is_some_and(|r| r.contains("another origin")),
                "{elsewhere}: {refusal:?}"
            );
        }
        // The default port written out is the same origin.
        let implicit = url("https://vault.example/v1/x");
        assert_eq!(
            redirect_refusal(
                std::slice::from_ref(&implicit),
                &url("https://vault.example:443/v1/y")
            ),
            None
        );
    }

    #[test]
    fn vault_errors_are_bounded() {
        let errors: Vec<String> = (0..10_000).map(|i| format!("error {i}")).collect();
        let text = vault_errors(&json!({ "errors": errors }));
        assert!(text.len() <= crate::api::conditions::MAX_MESSAGE_BYTES);
        assert!(text.starts_with("error 0; error 1"));
    }
}
