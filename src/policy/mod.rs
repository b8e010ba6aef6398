//! Identity policy: whether an issuer may sign what a Certificate asks for. Pure: the caller
//! gathers the facts (the namespace's labels, whether a ServiceAccount exists), this module
//! judges them.
//!
//! Without a policy everything is allowed as before, except that a ClusterIssuer never signs
//! `isCA: true` for a Certificate outside the cluster-resource namespace: an intermediate CA
//! in a tenant's hands mints every identity the ClusterIssuer's CA is trusted for.
//!
//! Usage, in the Certificate reconcile before anything is signed:
//!
//! ```ignore
//! let needs = policy::lookups(issuer_policy, kind, namespace, &spec);
//! let labels = if needs.namespace_labels { Some(get_namespace_labels().await?) } else { None };
//! let sa = match &needs.service_account { Some(sa) => Some(sa_exists(sa).await?), None => None };
//! policy::evaluate(issuer_policy, &Request { .., namespace_labels: labels.as_ref(), service_account_exists: sa })?;
//! ```

pub mod pattern;
pub mod spiffe;

use std::collections::BTreeMap;

use crate::api::duration;
use crate::api::policy::Policy;
use crate::api::{CertificateSpec, IssuerKind, KeyAlgorithm, KeyUsage};

use pattern::{
    Cidr, CommonName, CommonNamePattern, DnsName, DnsPattern, Email, EmailPattern, Uri, UriPattern,
    Vars,
};

/// The field a denial is about: a fixed set, the `field` label of
/// `certsmith_policy_denials_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The Certificate's namespace is not served (`policy.namespaces`).
    Namespace,
    IsCa,
    CommonName,
    DnsNames,
    IpAddresses,
    Uris,
    EmailAddresses,
    /// The SVID's ServiceAccount does not exist (`spiffe.requireServiceAccount`).
    ServiceAccount,
    Duration,
    PrivateKey,
    Usages,
    /// The policy itself cannot be applied (a malformed pattern that escaped admission).
    Policy,
}

impl Field {
    pub const ALL: [Field; 12] = [
        Field::Namespace,
        Field::IsCa,
        Field::CommonName,
        Field::DnsNames,
        Field::IpAddresses,
        Field::Uris,
        Field::EmailAddresses,
        Field::ServiceAccount,
        Field::Duration,
        Field::PrivateKey,
        Field::Usages,
        Field::Policy,
    ];

    /// The metric label value: the Certificate field's name (or `namespace`, `policy`).
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Namespace => "namespace",
            Field::IsCa => "isCA",
            Field::CommonName => "commonName",
            Field::DnsNames => "dnsNames",
            Field::IpAddresses => "ipAddresses",
            Field::Uris => "uris",
            Field::EmailAddresses => "emailAddresses",
            Field::ServiceAccount => "serviceAccount",
            Field::Duration => "duration",
            Field::PrivateKey => "privateKey",
            Field::Usages => "usages",
            Field::Policy => "policy",
        }
    }
}

/// Why a Certificate may not be signed: the field, and a message naming the value and the
/// rule, e.g. `uris[0] "spiffe://cluster.local/ns/payments/sa/billing" matches none of
/// spiffe://cluster.local/ns/{namespace}/sa/*`. At most 700 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub field: Field,
    pub message: String,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Denial {}

/// What the evaluator judges. Gather `namespace_labels` and `service_account_exists` as
/// [`lookups`] says; a fact that is needed but `None` is a denial (fail closed).
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub spec: &'a CertificateSpec,
    /// The kind of the issuer whose policy this is.
    pub issuer_kind: IssuerKind,
    /// The Certificate lives in the operator's cluster-resource namespace.
    pub in_cluster_resource_namespace: bool,
    /// The labels of the Certificate's namespace, when [`Lookups::namespace_labels`].
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
    /// Whether [`Lookups::service_account`] exists in the Certificate's namespace.
    pub service_account_exists: Option<bool>,
}

/// The I/O a judgement needs, to be done by the caller before [`evaluate`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lookups {
    /// Read the labels of the Certificate's namespace.
    pub namespace_labels: bool,
    /// Find out whether this ServiceAccount exists in the Certificate's namespace.
    pub service_account: Option<String>,
}

/// What [`evaluate`] will need to know beyond the Certificate.
pub fn lookups(
    policy: Option<&Policy>,
    issuer_kind: IssuerKind,
    namespace: &str,
    spec: &CertificateSpec,
) -> Lookups {
    let Some(policy) = policy else {
        return Lookups::default();
    };
    let namespace_labels = issuer_kind == IssuerKind::ClusterIssuer
        && policy
            .namespaces
            .as_ref()
            .is_some_and(|n| n.selector.is_some());
    let service_account = policy
        .spiffe
        .as_ref()
        .filter(|s| s.require_service_account)
        .and_then(|s| match spec.uris.as_slice() {
            [uri] => spiffe::parse(uri)
                .ok()
                .filter(|svid| svid.trust_domain == s.trust_domain && svid.namespace == namespace)
                .map(|svid| svid.service_account.to_string()),
            _ => None,
        });
    Lookups {
        namespace_labels,
        service_account,
    }
}

/// Whether the issuer whose policy this is may sign the Certificate: `Ok`, or the first
/// denial (in the order of [`denials`]).
pub fn evaluate(policy: Option<&Policy>, request: &Request<'_>) -> Result<(), Denial> {
    match denials(policy, request).into_iter().next() {
        Some(denial) => Err(denial),
        None => Ok(()),
    }
}

/// Every denial, in a fixed order: namespace, isCA, the names (commonName, dnsNames,
/// ipAddresses, uris, emailAddresses), serviceAccount, duration, privateKey, usages.
pub fn denials(policy: Option<&Policy>, request: &Request<'_>) -> Vec<Denial> {
    let mut out = Vec::new();
    let cluster_issuer = request.issuer_kind == IssuerKind::ClusterIssuer;
    let spec = request.spec;
    let Some(policy) = policy else {
        if cluster_issuer && spec.is_ca && !request.in_cluster_resource_namespace {
            out.push(deny(
                Field::IsCa,
                "isCA: a ClusterIssuer without a policy signs CA certificates only in the cluster-resource namespace (set policy.isCA: true to allow them elsewhere)",
            ));
        }
        return out;
    };
    check_namespace(policy, request, &mut out);
    if spec.is_ca && !policy.is_ca {
        out.push(deny(
            Field::IsCa,
            "isCA: the issuer's policy does not allow CA certificates (policy.isCA is false)",
        ));
    }
    check_names(policy, request, &mut out);
    check_duration(policy, spec, &mut out);
    check_key(policy, spec, &mut out);
    check_usages(policy, spec, &mut out);
    out
}

fn deny(field: Field, message: impl Into<String>) -> Denial {
    Denial {
        field,
        message: message.into(),
    }
}

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A requested value quoted (escaped like a Rust string: no newline or control character
/// reaches an Event) for a message, at most 160 bytes of it.
fn quote(value: &str) -> String {
    cut(&format!("{value:?}"), 160)
}

/// A pattern list for a message: patterns cut to 128 bytes, at most about 400 bytes in all.
fn list<T: std::fmt::Display>(items: &[T]) -> String {
    const BUDGET: usize = 400;
    let mut text = String::new();
    for (i, item) in items.iter().enumerate() {
        let shown = cut(&item.to_string(), 128);
        if i > 0 && text.len() + shown.len() > BUDGET {
            text.push_str(&format!(" (and {} more)", items.len() - i));
            break;
        }
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(&shown);
    }
    text
}

fn check_namespace(policy: &Policy, request: &Request<'_>, out: &mut Vec<Denial>) {
    let Some(namespaces) = &policy.namespaces else {
        return;
    };
    if request.issuer_kind == IssuerKind::Issuer {
        out.push(deny(
            Field::Namespace,
            "policy.namespaces is only for ClusterIssuers (an Issuer serves its own namespace); remove it",
        ));
        return;
    }
    let ns = request.namespace;
    if !namespaces.match_names.is_empty() && !namespaces.match_names.iter().any(|n| n == ns) {
        out.push(deny(
            Field::Namespace,
            format!(
                "namespace {} is not one of the ClusterIssuer's namespaces ({})",
                quote(ns),
                list(&namespaces.match_names)
            ),
        ));
        return;
    }
    if let Some(selector) = &namespaces.selector {
        match request.namespace_labels {
            None => out.push(deny(
                Field::Namespace,
                format!(
                    "the labels of namespace {} are unknown, so policy.namespaces.selector cannot be checked",
                    quote(ns)
                ),
            )),
            Some(labels) => {
                if let Some(unmet) = selector.unmet(labels) {
                    out.push(deny(
                        Field::Namespace,
                        format!(
                            "namespace {} does not match the ClusterIssuer's namespace selector: {unmet}",
                            quote(ns)
                        ),
                    ));
                }
            }
        }
    }
}

/// Parse every pattern; one that does not parse denies (field `policy`) rather than being
/// skipped, since skipping could widen or narrow the policy silently.
fn compile<T>(
    patterns: &[String],
    parse: impl Fn(&str) -> Result<T, String>,
    what: &str,
    out: &mut Vec<Denial>,
) -> Option<Vec<T>> {
    let mut compiled = Vec::with_capacity(patterns.len());
    for pattern in patterns {
        match parse(pattern) {
            Ok(p) => compiled.push(p),
            Err(e) => {
                out.push(deny(
                    Field::Policy,
                    format!("the issuer's policy has an invalid {what} pattern: {e}"),
                ));
                return None;
            }
        }
    }
    Some(compiled)
}

/// Judge each requested value of one kind: parse it, then look for a matching pattern (no
/// patterns: the kind is not allowed).
fn check_kind<'v, P: std::fmt::Display, V>(
    field: Field,
    values: &'v [String],
    patterns: &[P],
    parse: impl Fn(&'v str) -> Result<V, String>,
    matches: impl Fn(&P, &V) -> bool,
    out: &mut Vec<Denial>,
) {
    let name = field.as_str();
    for (i, value) in values.iter().enumerate() {
        let label = if field == Field::CommonName {
            name.to_string()
        } else {
            format!("{name}[{i}]")
        };
        let parsed = match parse(value) {
            Ok(v) => v,
            Err(e) => {
                out.push(deny(field, format!("{label} {} {e}", quote(value))));
                return;
            }
        };
        if patterns.is_empty() {
            out.push(deny(
                field,
                format!(
                    "{label} {}: the issuer's policy allows no {name}",
                    quote(value)
                ),
            ));
            return;
        }
        if !patterns.iter().any(|p| matches(p, &parsed)) {
            out.push(deny(
                field,
                format!(
                    "{label} {} matches none of {}",
                    quote(value),
                    list(patterns)
                ),
            ));
            return;
        }
    }
}

fn check_names(policy: &Policy, request: &Request<'_>, out: &mut Vec<Denial>) {
    let allowed = policy.allowed.as_ref();
    // Without `allowed` and `spiffe`, names are not restricted.
    if allowed.is_none() && policy.spiffe.is_none() {
        return;
    }
    let spec = request.spec;
    let vars = Vars {
        namespace: request.namespace,
        name: request.name,
    };
    let empty = crate::api::policy::AllowedNames::default();
    let allowed = allowed.unwrap_or(&empty);

    let cn = compile(
        &allowed.common_name,
        CommonNamePattern::parse,
        "commonName",
        out,
    );
    let dns = compile(&allowed.dns_names, DnsPattern::parse, "dnsNames", out);
    let ips = compile(&allowed.ip_addresses, Cidr::parse, "ipAddresses", out);
    let uris = compile(&allowed.uris, UriPattern::parse, "uris", out);
    let emails = compile(
        &allowed.email_addresses,
        EmailPattern::parse,
        "emailAddresses",
        out,
    );
    let (Some(cn), Some(dns), Some(ips), Some(uris), Some(emails)) = (cn, dns, ips, uris, emails)
    else {
        return;
    };

    if let Some(common_name) = &spec.common_name {
        check_kind(
            Field::CommonName,
            std::slice::from_ref(common_name),
            &cn,
            CommonName::parse,
            |p, v| p.matches(v, vars),
            out,
        );
    }
    check_kind(
        Field::DnsNames,
        &spec.dns_names,
        &dns,
        DnsName::parse,
        |p, v| p.matches(v, vars),
        out,
    );
    check_kind(
        Field::IpAddresses,
        &spec.ip_addresses,
        &ips,
        pattern::parse_ip,
        |p, v| p.contains(*v),
        out,
    );
    match &policy.spiffe {
        Some(s) => {
            let svid_ok = check_svid(&s.trust_domain, s.require_service_account, request, out);
            // `allowed.uris`, when also given, narrows the SVID further.
            if svid_ok && !allowed.uris.is_empty() {
                check_kind(
                    Field::Uris,
                    &spec.uris,
                    &uris,
                    Uri::parse,
                    |p, v| p.matches(v, vars),
                    out,
                );
            }
        }
        None => check_kind(
            Field::Uris,
            &spec.uris,
            &uris,
            Uri::parse,
            |p, v| p.matches(v, vars),
            out,
        ),
    }
    check_kind(
        Field::EmailAddresses,
        &spec.email_addresses,
        &emails,
        Email::parse,
        |p, v| p.matches(v, vars),
        out,
    );
}

/// Whether the URIs are exactly the namespace's SVID (the ServiceAccount's existence is
/// reported separately).
fn check_svid(
    trust_domain: &str,
    require_service_account: bool,
    request: &Request<'_>,
    out: &mut Vec<Denial>,
) -> bool {
    let expected = spiffe::svid(trust_domain, request.namespace, "<service account>");
    let uri = match request.spec.uris.as_slice() {
        [uri] => uri,
        uris => {
            out.push(deny(
                Field::Uris,
                format!(
                    "uris: the issuer's policy requires exactly one URI SAN, the SVID {expected}; the Certificate has {}",
                    uris.len()
                ),
            ));
            return false;
        }
    };
    let svid = match spiffe::parse(uri) {
        Ok(svid) => svid,
        Err(e) => {
            out.push(deny(
                Field::Uris,
                format!("uris[0] {} {e}; expected {expected}", quote(uri)),
            ));
            return false;
        }
    };
    if svid.trust_domain != trust_domain || svid.namespace != request.namespace {
        out.push(deny(
            Field::Uris,
            format!("uris[0] {} matches none of {expected}", quote(uri)),
        ));
        return false;
    }
    if require_service_account {
        match request.service_account_exists {
            Some(true) => {}
            Some(false) => out.push(deny(
                Field::ServiceAccount,
                format!(
                    "uris[0] {}: ServiceAccount {}/{} does not exist (the issuer's policy requires it)",
                    quote(uri),
                    request.namespace,
                    svid.service_account
                ),
            )),
            None => out.push(deny(
                Field::ServiceAccount,
                format!(
                    "uris[0] {}: whether ServiceAccount {}/{} exists was not checked (the issuer's policy requires it)",
                    quote(uri),
                    request.namespace,
                    svid.service_account
                ),
            )),
        }
    }
    true
}

fn check_duration(policy: &Policy, spec: &CertificateSpec, out: &mut Vec<Denial>) {
    let Some(max_text) = &policy.max_duration else {
        return;
    };
    let max = match duration::parse(max_text) {
        Ok(max) => max,
        Err(e) => {
            out.push(deny(
                Field::Policy,
                format!("the issuer's policy has an invalid maxDuration: {e}"),
            ));
            return;
        }
    };
    let requested = match spec.duration() {
        Ok(d) => d,
        Err(e) => {
            out.push(deny(Field::Duration, format!("duration: {e}")));
            return;
        }
    };
    if requested > max {
        let shown = match &spec.duration {
            Some(d) => quote(d),
            None => format!(
                "(default {})",
                duration::format(crate::api::certificate::DEFAULT_DURATION)
            ),
        };
        out.push(deny(
            Field::Duration,
            format!("duration {shown} exceeds the issuer's maxDuration {max_text}"),
        ));
    }
}

fn algorithm_name(algorithm: KeyAlgorithm) -> &'static str {
    match algorithm {
        KeyAlgorithm::Ecdsa => "ECDSA",
        KeyAlgorithm::Rsa => "RSA",
        KeyAlgorithm::Ed25519 => "Ed25519",
    }
}

fn render_algorithms(policy: &Policy) -> Option<String> {
    let allowed = policy.key_algorithms.as_ref()?;
    let parts: Vec<String> = allowed
        .iter()
        .map(|a| {
            let name = algorithm_name(a.algorithm);
            let allowed = a.allowed_sizes();
            if allowed.is_empty() {
                name.to_string()
            } else {
                let sizes: Vec<String> = allowed.iter().map(u32::to_string).collect();
                format!("{name} {}", sizes.join("/"))
            }
        })
        .collect();
    Some(if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    })
}

fn check_key(policy: &Policy, spec: &CertificateSpec, out: &mut Vec<Denial>) {
    let Some(allowed) = &policy.key_algorithms else {
        return;
    };
    let algorithm = spec.key_algorithm();
    let size = spec.key_size();
    let ok = allowed.iter().any(|a| {
        let sizes = a.allowed_sizes();
        a.algorithm == algorithm
            && (sizes.is_empty() || algorithm == KeyAlgorithm::Ed25519 || sizes.contains(&size))
    });
    if !ok {
        let requested = match algorithm {
            KeyAlgorithm::Ed25519 => "Ed25519".to_string(),
            other => format!("{} {size}", algorithm_name(other)),
        };
        out.push(deny(
            Field::PrivateKey,
            format!(
                "privateKey {requested} is not among the issuer's keyAlgorithms ({})",
                render_algorithms(policy).unwrap_or_default()
            ),
        ));
    }
}

fn usage_name(usage: KeyUsage) -> String {
    serde_json::to_value(usage)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{usage:?}"))
}

fn check_usages(policy: &Policy, spec: &CertificateSpec, out: &mut Vec<Denial>) {
    let Some(allowed) = &policy.usages else {
        return;
    };
    let mut requested = spec.usages();
    if spec.is_ca {
        // Implied by isCA, which has its own rule.
        requested.retain(|u| !matches!(u, KeyUsage::CertSign | KeyUsage::CrlSign));
    }
    let refused: Vec<String> = requested
        .iter()
        .filter(|u| !allowed.contains(u))
        .map(|u| usage_name(*u))
        .collect();
    if !refused.is_empty() {
        let allowed: Vec<String> = allowed.iter().map(|u| usage_name(*u)).collect();
        let defaulted = if spec.usages.is_none() {
            " (the default usages)"
        } else {
            ""
        };
        out.push(deny(
            Field::Usages,
            format!(
                "usages {}{defaulted} not allowed by the issuer's policy (allowed: {})",
                refused.join(", "),
                allowed.join(", ")
            ),
        ));
    }
}

/// The SVID a Pod's certificate gets under this policy: `spiffe://<trustDomain>/ns/<namespace>/sa/<service account>`,
/// or None when the policy has no `spiffe`.
pub fn svid_for(policy: &Policy, namespace: &str, service_account: &str) -> Option<String> {
    policy
        .spiffe
        .as_ref()
        .map(|s| spiffe::svid(&s.trust_domain, namespace, service_account))
}

/// The longest summary [`summary`] renders, in bytes.
pub const MAX_SUMMARY_BYTES: usize = 512;

/// One line for an issuer's `status.policy` (and `kubectl get clusterissuer -o wide`):
/// what a tenant may ask for.
pub fn summary(policy: Option<&Policy>, issuer_kind: IssuerKind) -> String {
    let Some(policy) = policy else {
        return match issuer_kind {
            IssuerKind::ClusterIssuer => {
                "none: any names; isCA only in the cluster-resource namespace".into()
            }
            IssuerKind::Issuer => "none: any names".into(),
        };
    };
    let mut parts = Vec::new();
    if let Some(ns) = &policy.namespaces {
        let mut which = Vec::new();
        if !ns.match_names.is_empty() {
            which.push(ns.match_names.join(","));
        }
        if let Some(selector) = &ns.selector {
            which.push(format!("selector {}", selector.render()));
        }
        parts.push(format!("namespaces {}", which.join(" and ")));
    }
    let names_closed = policy.allowed.is_some() || policy.spiffe.is_some();
    if names_closed {
        let mut names = Vec::new();
        if let Some(a) = &policy.allowed {
            for (label, patterns) in [
                ("CN", &a.common_name),
                ("DNS", &a.dns_names),
                ("IP", &a.ip_addresses),
                ("URI", &a.uris),
                ("email", &a.email_addresses),
            ] {
                if !patterns.is_empty() {
                    names.push(format!("{label} {}", patterns.join(" ")));
                }
            }
        }
        if let Some(s) = &policy.spiffe {
            let sa = if s.require_service_account {
                "<existing service account>"
            } else {
                "<service account>"
            };
            names.push(format!(
                "SVID {}",
                spiffe::svid(&s.trust_domain, "{namespace}", sa)
            ));
        }
        if names.is_empty() {
            parts.push("names: none".into());
        } else {
            parts.push(format!("names {}", names.join(", ")));
        }
    } else {
        parts.push("any names".into());
    }
    if let Some(max) = &policy.max_duration {
        parts.push(format!("maxDuration {max}"));
    }
    if let Some(keys) = render_algorithms(policy) {
        parts.push(format!("keys {keys}"));
    }
    if let Some(usages) = &policy.usages {
        let names: Vec<String> = usages.iter().map(|u| usage_name(*u)).collect();
        parts.push(format!("usages {}", names.join(",")));
    }
    parts.push(
        if policy.is_ca {
            "isCA allowed"
        } else {
            "no isCA"
        }
        .into(),
    );
    cut(&parts.join("; "), MAX_SUMMARY_BYTES)
}

#[cfg(test)]
mod tests;
