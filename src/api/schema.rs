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

pub fn renew_before(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": 32,
        "pattern": DURATION,
        "x-kubernetes-validations": [{"rule": "duration(self) > duration('0s')", "message": "must be positive"}],
    })
}
