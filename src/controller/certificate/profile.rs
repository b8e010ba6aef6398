//! Does the certificate in the Secret match the spec? One small named comparison per field
//! that shapes a certificate; the first difference, in words, re-issues.
//!
//! Remote CAs decide the certificate profile (subject attributes, usages, the CA flag, a
//! common name where none was asked) through their own roles and templates
//! (`BackendType::decides_profile`); for their certificates only the requested names and the key are compared, or a
//! difference the CA imposes would re-issue forever.

use std::collections::BTreeSet;

use crate::api::{CertificateSpec, KeyAlgorithm};
use crate::pki::inspect::CertInfo;

/// One comparison: a field's name and how it differs, if it does.
pub struct Comparison {
    pub field: &'static str,
    /// Compared also when the CA decides the profile.
    names_or_key: bool,
    differs: fn(&CertificateSpec, &CertInfo, bool) -> Option<String>,
}

pub const COMPARISONS: &[Comparison] = &[
    Comparison {
        field: "commonName",
        names_or_key: true,
        differs: common_name,
    },
    Comparison {
        field: "dnsNames",
        names_or_key: true,
        differs: dns_names,
    },
    Comparison {
        field: "ipAddresses",
        names_or_key: true,
        differs: ip_addresses,
    },
    Comparison {
        field: "uris",
        names_or_key: true,
        differs: uris,
    },
    Comparison {
        field: "emailAddresses",
        names_or_key: true,
        differs: email_addresses,
    },
    Comparison {
        field: "privateKey",
        names_or_key: true,
        differs: key,
    },
    Comparison {
        field: "subject",
        names_or_key: false,
        differs: subject,
    },
    Comparison {
        field: "isCA",
        names_or_key: false,
        differs: is_ca,
    },
    Comparison {
        field: "usages",
        names_or_key: false,
        differs: usages,
    },
];

/// The first way the certificate differs from the spec, in words; None when it matches.
/// `issuer_decides_profile`: the certificate came from a remote CA (see the module doc).
pub fn mismatch(
    spec: &CertificateSpec,
    cert: &CertInfo,
    issuer_decides_profile: bool,
) -> Option<String> {
    COMPARISONS
        .iter()
        .filter(|c| c.names_or_key || !issuer_decides_profile)
        .find_map(|c| (c.differs)(spec, cert, issuer_decides_profile))
}

fn set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

fn common_name(spec: &CertificateSpec, cert: &CertInfo, remote: bool) -> Option<String> {
    let matters = !remote || spec.common_name.is_some();
    (matters && spec.common_name != cert.common_name).then(|| {
        format!(
            "commonName is {:?}, spec wants {:?}",
            cert.common_name, spec.common_name
        )
    })
}

fn dns_names(spec: &CertificateSpec, cert: &CertInfo, _: bool) -> Option<String> {
    let want = set(&spec.dns_names);
    (want != cert.dns_names)
        .then(|| format!("dnsNames are {:?}, spec wants {want:?}", cert.dns_names))
}

fn ip_addresses(spec: &CertificateSpec, cert: &CertInfo, _: bool) -> Option<String> {
    let want: BTreeSet<std::net::IpAddr> = spec
        .ip_addresses
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    (want != cert.ip_addresses).then(|| {
        format!(
            "ipAddresses are {:?}, spec wants {want:?}",
            cert.ip_addresses
        )
    })
}

fn uris(spec: &CertificateSpec, cert: &CertInfo, _: bool) -> Option<String> {
    let want = set(&spec.uris);
    (want != cert.uris).then(|| format!("uris are {:?}, spec wants {want:?}", cert.uris))
}

fn email_addresses(spec: &CertificateSpec, cert: &CertInfo, _: bool) -> Option<String> {
    let want = set(&spec.email_addresses);
    (want != cert.emails)
        .then(|| format!("emailAddresses are {:?}, spec wants {want:?}", cert.emails))
}

fn key(spec: &CertificateSpec, cert: &CertInfo, _: bool) -> Option<String> {
    let (algorithm, size) = (spec.key_algorithm(), spec.key_size());
    match cert.key {
        Some(k)
            if k.algorithm == algorithm
                && (algorithm == KeyAlgorithm::Ed25519 || k.size == size) =>
        {
            None
        }
        other => Some(format!("key is {other:?}, spec wants {algorithm:?} {size}")),
    }
}

fn subject(spec: &CertificateSpec, cert: &CertInfo, _: bool) -> Option<String> {
    let subject = spec.subject.clone().unwrap_or_default();
    [
        ("organizations", &subject.organizations, &cert.organizations),
        (
            "organizationalUnits",
            &subject.organizational_units,
            &cert.organizational_units,
        ),
        ("countries", &subject.countries, &cert.countries),
        ("localities", &subject.localities, &cert.localities),
        ("provinces", &subject.provinces, &cert.provinces),
    ]
    .into_iter()
    .find(|(_, want, have)| set(want) != set(have))
    .map(|(field, want, have)| format!("subject {field} are {have:?}, spec wants {want:?}"))
}

fn is_ca(spec: &CertificateSpec, cert: &CertInfo, _: bool) -> Option<String> {
    (spec.is_ca != cert.is_ca).then(|| format!("isCA is {}, spec wants {}", cert.is_ca, spec.is_ca))
}

fn usages(spec: &CertificateSpec, cert: &CertInfo, _: bool) -> Option<String> {
    let want: BTreeSet<_> = spec.usages().into_iter().collect();
    (want != cert.usages).then(|| format!("usages are {:?}, spec wants {want:?}", cert.usages))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_comparison_names_a_spec_field_once() {
        let fields: BTreeSet<&str> = COMPARISONS.iter().map(|c| c.field).collect();
        assert_eq!(fields.len(), COMPARISONS.len());
        // What a remote CA may impose is not compared for its certificates.
        let remote: Vec<&str> = COMPARISONS
            .iter()
            .filter(|c| c.names_or_key)
            .map(|c| c.field)
            .collect();
        assert!(!remote.contains(&"usages") && !remote.contains(&"subject"));
        assert!(remote.contains(&"dnsNames") && remote.contains(&"privateKey"));
    }
}
