//! `spec.policy` of an Issuer or ClusterIssuer: which Certificates it signs. Plain data; the
//! evaluator is `crate::policy`.
//!
//! Admission (schema patterns and CEL) refuses malformed patterns, CIDRs and trust domains;
//! the evaluator parses them again and denies, fail-closed, anything it cannot parse (a
//! policy stored before a CRD upgrade, or written around admission).

use kube::KubeSchema;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::certificate::{KeyAlgorithm, KeyUsage};
use super::schema::DURATION;
pub use super::selector::LabelSelector;

/// Most patterns per name kind.
pub const MAX_PATTERNS: u32 = 64;

/// What an issuer signs. Each omitted field leaves that aspect as without a policy, except
/// `isCA` (default false) and the names: once `allowed` or `spiffe` is set, a Certificate may
/// carry only names they permit.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// ClusterIssuer only: the namespaces whose Certificates it signs. Omitted: every namespace.
    /// An Issuer serves only its own namespace and may not set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<NamespacePolicy>,

    /// The names a Certificate may request, per kind, as patterns. A kind that is not listed
    /// is not allowed. Patterns may use `{namespace}` and `{name}` (the Certificate's) and `*`
    /// (one or more characters within one DNS label or URI path segment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<AllowedNames>,

    /// SPIFFE: every Certificate carries exactly one URI SAN,
    /// `spiffe://<trustDomain>/ns/<its namespace>/sa/<service account>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe: Option<SpiffePolicy>,

    /// Longest `duration` a Certificate may request (Go duration, e.g. `24h`; at least `5m`).
    /// A Certificate without `duration` requests the default, 2160h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "max_duration")]
    pub max_duration: Option<String>,

    /// Allowed private key algorithms and sizes, e.g. `[{algorithm: ECDSA, sizes: [256, 384]},
    /// {algorithm: Ed25519}]`. Omitted: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 3), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["algorithm"]))]
    pub key_algorithms: Option<Vec<AllowedKeyAlgorithm>>,

    /// Allowed key usages; every usage a Certificate requests (its defaults included: digital
    /// signature, server auth, client auth, plus key encipherment for RSA) must be listed.
    /// The CA usages implied by `isCA` are governed by `isCA`. Omitted: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 13), extend("x-kubernetes-list-type" = "set"))]
    pub usages: Option<Vec<KeyUsage>>,

    /// Whether CA certificates (`isCA: true`) may be signed. Default false.
    #[serde(default, rename = "isCA", skip_serializing_if = "std::ops::Not::not")]
    pub is_ca: bool,
}

/// Which namespaces a ClusterIssuer serves: a namespace must satisfy every criterion given.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("(has(self.matchNames) && size(self.matchNames) > 0) || has(self.selector)").message("set matchNames, selector or both"))]
#[serde(rename_all = "camelCase")]
pub struct NamespacePolicy {
    /// Namespace names (exact).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "namespace_names")]
    pub match_names: Vec<String>,
    /// A label selector on the namespace's labels (`{}` selects every namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Name patterns per kind. A kind without patterns is not allowed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedNames {
    /// Patterns for the subject common name, e.g. `{name}`; `*` stays within a dot-separated
    /// part. Compared case-sensitively.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "common_name_patterns")]
    pub common_name: Vec<String>,
    /// DNS name patterns, e.g. `*.{namespace}.svc`, `{name}.{namespace}.svc.cluster.local`.
    /// Matched label by label, case-insensitively; a requested wildcard `*.a.svc` needs a
    /// pattern whose label there is exactly `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "dns_patterns")]
    pub dns_names: Vec<String>,
    /// CIDRs the IP address SANs must lie in, e.g. `10.0.0.0/8`, `fd00::/64` (one address:
    /// `/32` or `/128`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "cidrs")]
    pub ip_addresses: Vec<String>,
    /// URI patterns `scheme://host[:port][/path]`, e.g.
    /// `spiffe://cluster.local/ns/{namespace}/sa/*`. Requested URIs with user info, a query,
    /// a fragment, percent-encoding or `.`/`..` segments are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "uri_patterns")]
    pub uris: Vec<String>,
    /// Email address patterns `local@domain`, e.g. `{name}@{namespace}.example.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "email_patterns")]
    pub email_addresses: Vec<String>,
}

/// SVID rules.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpiffePolicy {
    /// The SPIFFE trust domain, a lower-case DNS name such as `cluster.local`.
    #[schemars(
        length(min = 1, max = 253),
        regex(
            pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
        )
    )]
    pub trust_domain: String,
    /// The ServiceAccount named in the SVID must exist in the Certificate's namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_service_account: bool,
}

/// One allowed key algorithm and, optionally, its sizes.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(
    validation = Rule::new("!has(self.sizes) || (self.algorithm == 'RSA' ? self.sizes.all(s, s in [2048, 3072, 4096, 8192]) : (self.algorithm == 'ECDSA' ? self.sizes.all(s, s in [256, 384, 521]) : size(self.sizes) == 0))").message("sizes must be 256, 384 or 521 for ECDSA, 2048, 3072, 4096 or 8192 for RSA, and unset for Ed25519"),
    validation = Rule::new("!has(self.size) || (self.algorithm == 'RSA' ? self.size in [2048, 3072, 4096, 8192] : (self.algorithm == 'ECDSA' ? self.size in [256, 384, 521] : false))").message("size must be 256, 384 or 521 for ECDSA, 2048, 3072, 4096 or 8192 for RSA, and unset for Ed25519"),
)]
#[serde(rename_all = "camelCase")]
pub struct AllowedKeyAlgorithm {
    /// `ECDSA`, `RSA` or `Ed25519`.
    pub algorithm: KeyAlgorithm,
    /// Allowed sizes (ECDSA curve size, RSA modulus). Omitted: every size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4), extend("x-kubernetes-list-type" = "set"))]
    pub sizes: Vec<u32>,
    /// One allowed size, as a Certificate's `privateKey.size` is written; adds to `sizes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
}

impl AllowedKeyAlgorithm {
    /// The allowed sizes (`sizes` and `size`); empty: every size.
    pub fn allowed_sizes(&self) -> Vec<u32> {
        let mut sizes = self.sizes.clone();
        sizes.extend(self.size.filter(|s| !sizes.contains(s)));
        sizes
    }
}

// ---- schema fragments ----

/// Within a pattern: the two placeholders, or one literal character from `chars`. A part
/// (label, segment) is one or more of them with single `*` between or around, never `**`.
fn part(chars: &str) -> String {
    let unit = format!(r"([{chars}]|\{{namespace\}}|\{{name\}})");
    format!(r"(\*|\*?({unit}+\*?)+)")
}

/// A DNS name pattern: parts of letters, digits and `-` separated by dots, no trailing dot.
fn dns_pattern() -> String {
    let label = part("a-zA-Z0-9-");
    format!(r"{label}(\.{label})*")
}

/// A list of patterns, each a string of at most `max_length` characters matching `regex`,
/// checked by CEL so that a refusal says what a pattern looks like (a schema `pattern`
/// would print the regex).
fn pattern_list(max_length: u32, regex: &str, message: &str, description: &str) -> Schema {
    // A CEL raw string: backslashes stay as they are; the grammars contain no `"`.
    let rule = format!("self.matches(r\"{regex}\")");
    json_schema!({
        "type": "array",
        "description": description,
        "maxItems": MAX_PATTERNS,
        "items": {
            "type": "string", "minLength": 1, "maxLength": max_length,
            "x-kubernetes-validations": [{"rule": rule, "message": message}],
        },
    })
}

/// The pattern grammar of each kind, anchored.
pub fn common_name_regex() -> String {
    format!("^{}$", part(r"^{}*\x00-\x1f\x7f"))
}

pub fn dns_regex() -> String {
    format!("^{}$", dns_pattern())
}

pub fn uri_regex() -> String {
    let host = format!(r"({}|\[[0-9a-fA-F:.]+\])", dns_pattern());
    let segment = part(r"A-Za-z0-9._~!$&'()+,;=:@-");
    format!(r"^[a-z][a-z0-9+.-]*://{host}(:[0-9]{{1,5}})?((/{segment})+|/)?$")
}

pub fn email_regex() -> String {
    let local = part(r"A-Za-z0-9!#$%&'+/=?^_`|~.-");
    format!("^{local}@{}$", dns_pattern())
}

fn common_name_patterns(_: &mut SchemaGenerator) -> Schema {
    pattern_list(
        64,
        &common_name_regex(),
        "must be a common name pattern: text with `*` and the placeholders {namespace} and {name}; no `**`, no other braces",
        "Patterns for the subject common name, e.g. `{name}`; `*` stays within a dot-separated part. Compared case-sensitively.",
    )
}

fn dns_patterns(_: &mut SchemaGenerator) -> Schema {
    pattern_list(
        253,
        &dns_regex(),
        "must be a DNS name pattern: dot-separated labels of letters, digits, `-`, `*`, {namespace} and {name}; no `**`, no empty label, no trailing dot",
        "DNS name patterns, e.g. `*.{namespace}.svc`, `{name}.{namespace}.svc.cluster.local`. Matched label by label, case-insensitively; a requested wildcard `*.a.svc` needs a pattern whose label there is exactly `*`.",
    )
}

fn cidrs(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "description": "CIDRs the IP address SANs must lie in, e.g. `10.0.0.0/8`, `fd00::/64` (one address: `/32` or `/128`).",
        "maxItems": MAX_PATTERNS,
        "items": {
            "type": "string", "maxLength": 49,
            "x-kubernetes-validations": [{
                "rule": "isCIDR(self) && cidr(self) == cidr(self).masked()",
                "message": "must be a CIDR without host bits, such as 10.0.0.0/8, 10.1.2.3/32 or fd00::/64",
            }],
        },
    })
}

fn uri_patterns(_: &mut SchemaGenerator) -> Schema {
    let mut schema = pattern_list(
        1024,
        &uri_regex(),
        "must be a URI pattern scheme://host[:port][/path] with `*`, {namespace} and {name} within labels and segments; no user info, query, fragment, percent-encoding, `**` or empty segment",
        "URI patterns `scheme://host[:port][/path]`, e.g. `spiffe://cluster.local/ns/{namespace}/sa/*`. Requested URIs with user info, a query, a fragment, percent-encoding or `.`/`..` segments are refused.",
    );
    if let Some(rules) = schema
        .get_mut("items")
        .and_then(|items| items.get_mut("x-kubernetes-validations"))
        .and_then(|rules| rules.as_array_mut())
    {
        rules.push(serde_json::json!({
            "rule": "!self.matches('/[.][.]?(/|$)')",
            "message": "path segments may not be . or ..",
        }));
    }
    schema
}

fn email_patterns(_: &mut SchemaGenerator) -> Schema {
    pattern_list(
        254,
        &email_regex(),
        "must be an email pattern local@domain with `*`, {namespace} and {name}; no `**`, no trailing dot",
        "Email address patterns `local@domain`, e.g. `{name}@{namespace}.example.com`.",
    )
}

fn namespace_names(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "description": "Namespace names (exact).",
        "maxItems": 256,
        "x-kubernetes-list-type": "set",
        "items": {"type": "string", "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
    })
}

fn max_duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "description": "Longest `duration` a Certificate may request (Go duration, e.g. `24h`; at least `5m`). A Certificate without `duration` requests the default, 2160h.",
        "maxLength": 32,
        "pattern": DURATION,
        "x-kubernetes-validations": [{"rule": "duration(self) >= duration('5m')", "message": "must be at least 5m"}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::pattern::{CommonNamePattern, DnsPattern, EmailPattern, UriPattern};

    fn admits(regex: &str, text: &str) -> bool {
        regex::Regex::new(regex).unwrap().is_match(text)
    }

    /// Admission and the evaluator's parser agree: what admission lets through parses, and
    /// what the parser refuses for its grammar admission refuses too (checked on the API
    /// server by the integration tests as well).
    #[test]
    fn admission_grammar_agrees_with_the_parser() {
        let dns = dns_regex();
        for (text, ok) in [
            ("*.{namespace}.svc", true),
            ("{name}.{namespace}.svc.cluster.local", true),
            ("web-*.x", true),
            ("*x*.y", true),
            ("*", true),
            ("**.a", false),
            ("a.**", false),
            ("*.{ns}.svc", false),
            ("{namespace", false),
            ("a}.b", false),
            ("a..b", false),
            (".a", false),
            ("a.", false),
            ("a_b", false),
            ("a/b", false),
            ("", false),
        ] {
            assert_eq!(admits(&dns, text), ok, "admission {text:?}");
            assert_eq!(DnsPattern::parse(text).is_ok(), ok, "parser {text:?}");
        }
        let uri = uri_regex();
        for (text, ok) in [
            ("spiffe://cluster.local/ns/{namespace}/sa/*", true),
            ("https://*.{namespace}.example:8443/api/{name}", true),
            ("https://[::1]:8443/", true),
            ("https://x.example", true),
            ("spiffe://x/a?b", false),
            ("spiffe://u@x/a", false),
            ("spiffe://x/a%2Fb", false),
            ("spiffe://x/a#b", false),
            ("spiffe://x/a//b", false),
            ("spiffe://x/a/", false),
            ("spiffe://x/**", false),
            ("spiffe:/x", false),
            ("Spiffe://x/a", false),
            ("spiffe://x/a b", false),
        ] {
            assert_eq!(admits(&uri, text), ok, "admission {text:?}");
            assert_eq!(UriPattern::parse(text).is_ok(), ok, "parser {text:?}");
        }
        let email = email_regex();
        for (text, ok) in [
            ("{name}@{namespace}.example.com", true),
            ("*@x.example", true),
            ("a.b+c@x", true),
            ("{name}", false),
            ("@x", false),
            ("a@b@x", false),
            ("a@x.", false),
            ("**@x", false),
        ] {
            assert_eq!(admits(&email, text), ok, "admission {text:?}");
            assert_eq!(EmailPattern::parse(text).is_ok(), ok, "parser {text:?}");
        }
        let cn = common_name_regex();
        for (text, ok) in [
            ("{name}", true),
            ("certsmith agents root CA", true),
            ("*.{namespace}.svc", true),
            ("Acme Inc.", true),
            ("**", false),
            ("{nom}", false),
            ("a}", false),
            ("a\nb", false),
        ] {
            assert_eq!(admits(&cn, text), ok, "admission {text:?}");
            assert_eq!(
                CommonNamePattern::parse(text).is_ok(),
                ok,
                "parser {text:?}"
            );
        }
    }

    #[test]
    fn cel_rules_quote_the_grammar_as_raw_strings() {
        let mut generator = SchemaGenerator::default();
        for schema in [
            common_name_patterns(&mut generator),
            dns_patterns(&mut generator),
            uri_patterns(&mut generator),
            email_patterns(&mut generator),
        ] {
            let rule = schema.as_value()["items"]["x-kubernetes-validations"][0]["rule"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                rule.starts_with("self.matches(r\"^") && rule.ends_with("$\")"),
                "{rule}"
            );
            assert_eq!(rule.matches('"').count(), 2, "{rule}");
        }
    }
}
