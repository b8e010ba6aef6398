//! Hand-written schema fragments for fields whose validation schemars cannot express:
//! per-item patterns, bounded lengths (CEL's cost budget needs them) and CEL rules.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Longest list of names of one kind a Certificate may request.
const MAX_NAMES: u32 = 100;

/// A DNS-1123 subdomain, optionally with a leading `*.` wildcard label.
const DNS_NAME: &str = r"^(\*\.)?([A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$";

/// An RFC 5322 addr-spec, simplified the way cert-manager and browsers do.
const EMAIL: &str = r"^[^@\s]+@[^@\s]+$";

/// A Go duration such as `2160h`, `90m` or `1h30m`.
pub const DURATION: &str = r"^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$";

fn string_list(item: serde_json::Value, description: &str) -> Schema {
    json_schema!({
        "type": "array",
        "description": description,
        "maxItems": MAX_NAMES,
        "items": item,
    })
}

pub fn dns_names(_: &mut SchemaGenerator) -> Schema {
    string_list(
        serde_json::json!({"type": "string", "maxLength": 253, "pattern": DNS_NAME}),
        "DNS subject alternative names. A leading `*.` requests a wildcard.",
    )
}

pub fn ip_addresses(_: &mut SchemaGenerator) -> Schema {
    string_list(
        serde_json::json!({
            "type": "string", "maxLength": 45,
            "x-kubernetes-validations": [{"rule": "isIP(self)", "message": "must be an IPv4 or IPv6 address"}],
        }),
        "IP address subject alternative names (IPv4 or IPv6).",
    )
}

pub fn uris(_: &mut SchemaGenerator) -> Schema {
    string_list(
        serde_json::json!({
            "type": "string", "maxLength": 2048,
            "x-kubernetes-validations": [{"rule": "isURL(self)", "message": "must be an absolute URI such as spiffe://cluster.local/ns/a/sa/b"}],
        }),
        "URI subject alternative names, SPIFFE IDs (spiffe://trust-domain/path) included.",
    )
}

pub fn email_addresses(_: &mut SchemaGenerator) -> Schema {
    string_list(
        serde_json::json!({"type": "string", "maxLength": 254, "pattern": EMAIL}),
        "Email address subject alternative names.",
    )
}

/// A list of short subject attribute values (organization, locality ...).
pub fn subject_values(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 20,
        "items": {"type": "string", "maxLength": 128},
    })
}

pub fn duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": 32,
        "pattern": DURATION,
        "x-kubernetes-validations": [{"rule": "duration(self) >= duration('5m')", "message": "must be at least 5m"}],
    })
}

/// A Go duration without the 5-minute floor of certificate lifetimes (rotation settings,
/// which tests and demos set to seconds).
pub fn short_duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": 32,
        "pattern": DURATION,
    })
}

pub fn renew_before(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": 32,
        "pattern": DURATION,
        "x-kubernetes-validations": [{"rule": "duration(self) > duration('0s')", "message": "must be positive"}],
    })
}

/// A label or annotation key: a qualified name (`[prefix/]name`, the prefix a DNS subdomain of
/// at most 253 characters, the name at most 63), as the API server requires.
const QUALIFIED_KEY: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";

/// A label value: empty, or at most 63 characters of alphanumerics, `-`, `_` and `.`,
/// beginning and ending with an alphanumeric.
const LABEL_VALUE: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";

/// Most entries a secretTemplate map may have.
const MAX_TEMPLATE_ENTRIES: u32 = 64;

/// What the operator's own annotations may take of the API server's 256 KiB (262144 bytes)
/// limit on a Secret's annotations.
const RESERVED_ANNOTATION_BYTES: u32 = 4096;

/// The CEL rules every template map's keys obey: qualified names, not under `certsmith.dev/`.
fn template_key_rules() -> serde_json::Value {
    serde_json::json!([
        {
            "rule": format!("self.all(k, k.size() <= 317 && k.matches('{}') && (!k.contains('/') || k.indexOf('/') <= 253))", QUALIFIED_KEY),
            "message": "keys must be qualified names: [prefix/]name, the prefix a DNS subdomain of at most 253 characters, the name at most 63 alphanumerics, '-', '_' or '.'",
        },
        {
            "rule": "self.all(k, !k.startsWith('certsmith.dev/'))",
            "message": "keys under certsmith.dev/ are reserved for the operator",
        },
    ])
}

pub fn template_labels(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": MAX_TEMPLATE_ENTRIES,
        "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE},
        "x-kubernetes-validations": template_key_rules(),
    })
}

pub fn template_annotations(_: &mut SchemaGenerator) -> Schema {
    let mut rules = template_key_rules();
    if let Some(list) = rules.as_array_mut() {
        list.push(serde_json::json!({
            "rule": format!("self.map(k, k.size() + self[k].size()).sum() <= {}", 262_144 - RESERVED_ANNOTATION_BYTES),
            "message": format!("annotations may take at most {} bytes in all (the API server's limit is 256 KiB, and the operator adds its own)", 262_144 - RESERVED_ANNOTATION_BYTES),
        }));
    }
    json_schema!({
        "type": "object",
        "maxProperties": MAX_TEMPLATE_ENTRIES,
        "additionalProperties": {"type": "string", "maxLength": 262_144},
        "x-kubernetes-validations": rules,
    })
}

// ----- TrustBundle -----

/// A DNS-1123 label: a namespace name.
const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// A DNS-1123 subdomain: the name of a Secret or ConfigMap.
const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

pub fn namespace_name(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "minLength": 1, "maxLength": 63, "pattern": DNS_LABEL})
}

pub fn object_name(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "minLength": 1, "maxLength": 253, "pattern": DNS_SUBDOMAIN})
}

/// A key of a Secret's or ConfigMap's data, as the API server accepts them.
pub fn data_key(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "minLength": 1, "maxLength": 253, "pattern": r"^[-._a-zA-Z0-9]+$"})
}

/// A Kubernetes signer name: `<DNS subdomain>/<path>`.
pub fn signer_name(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": 128,
        "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
    })
}

pub fn label_key(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": 317,
        "pattern": QUALIFIED_KEY,
    })
}

pub fn label_values(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 64,
        "items": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE},
    })
}

/// `matchLabels` of a label selector.
pub fn selector_labels(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 32,
        "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE},
        "x-kubernetes-validations": [{
            "rule": format!("self.all(k, k.size() <= 317 && k.matches('{}'))", QUALIFIED_KEY),
            "message": "keys must be qualified names: [prefix/]name, the prefix a DNS subdomain, the name at most 63 alphanumerics, '-', '_' or '.'",
        }],
    })
}
