//! The pure heart of the Certificate reconciler: given what was observed and the time, decide
//! whether to issue and why. An ordered chain of checks; the first that fires wins.

use crate::api::{CertificateSpec, KeyAlgorithm};
use crate::pki::inspect::{self, CertInfo};
use crate::pki::keys::PrivateKey;
use crate::pki::renewal::{self, RenewBefore};
use crate::reason::{Problem, Reason};

/// The Secret as the operator found it.
#[derive(Debug, Clone, Copy)]
pub enum SecretState<'a> {
    Missing,
    /// Exists but was not written for this Certificate (`owner` names the Certificate it was
    /// written for, if any).
    Foreign {
        owner: Option<&'a str>,
    },
    Ours(&'a SecretData),
}

/// The parts of an owned Secret that decisions look at.
#[derive(Debug, Clone, Default)]
pub struct SecretData {
    pub tls_crt: Option<Vec<u8>>,
    pub tls_key: Option<Vec<u8>>,
    pub issuer_name: Option<String>,
    pub issuer_kind: Option<String>,
}

/// Everything `decide` needs.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// `namespace/name`, which seeds the renewal jitter.
    pub identity: &'a str,
    pub spec: &'a CertificateSpec,
    pub secret: SecretState<'a>,
    /// An older Certificate in the namespace that already claims the same secretName.
    pub claimed_by: Option<&'a str>,
    /// The renew annotation's value, and the value last acted upon.
    pub renew_requested: Option<&'a str>,
    pub renew_handled: Option<&'a str>,
    pub now: i64,
}

/// The valid certificate currently in the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub leaf: CertInfo,
    pub renewal_time: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do until `current.renewal_time`.
    UpToDate(Current),
    /// Issue a certificate. `current` is the still-valid certificate being replaced, if any:
    /// while it exists the Certificate stays Ready.
    Issue {
        why: Problem,
        current: Option<Current>,
    },
    /// Issuing would be wrong; a user must change something.
    Refuse(Problem),
}

/// Run the ordered chain of checks.
pub fn decide(o: &Observed<'_>) -> Decision {
    if let Some(other) = o.claimed_by {
        return Decision::Refuse(Problem::new(
            Reason::DuplicateSecretName,
            format!(
                "Secret {:?} is already used by Certificate {other:?}; choose another secretName",
                o.spec.secret_name
            ),
        ));
    }
    let data = match o.secret {
        SecretState::Missing => {
            return issue(
                Reason::DoesNotExist,
                format!("Secret {:?} does not exist", o.spec.secret_name),
                None,
            );
        }
        SecretState::Foreign { owner: Some(owner) } => {
            return Decision::Refuse(Problem::new(
                Reason::DuplicateSecretName,
                format!(
                    "Secret {:?} is managed for Certificate {owner:?}; choose another secretName",
                    o.spec.secret_name
                ),
            ));
        }
        SecretState::Foreign { owner: None } => {
            return Decision::Refuse(Problem::new(
                Reason::SecretConflict,
                format!(
                    "Secret {:?} exists and was not created by certsmith; it is left untouched. Delete it or choose another secretName",
                    o.spec.secret_name
                ),
            ));
        }
        SecretState::Ours(data) => data,
    };
    let (Some(crt), Some(key)) = (nonempty(&data.tls_crt), nonempty(&data.tls_key)) else {
        return issue(
            Reason::MissingData,
            "Secret is missing tls.crt or tls.key",
            None,
        );
    };
    let leaf = match inspect::parse_chain(crt) {
        Ok(mut chain) => chain.remove(0),
        Err(e) => {
            return issue(
                Reason::InvalidData,
                format!("tls.crt cannot be parsed: {e}"),
                None,
            );
        }
    };
    let Some(key) = std::str::from_utf8(key)
        .ok()
        .and_then(|k| PrivateKey::from_pem(k).ok())
    else {
        return issue(
            Reason::InvalidData,
            "tls.key cannot be parsed as a PEM private key",
            None,
        );
    };
    if key.public_key_info() != leaf.public_key_info {
        return issue(
            Reason::KeyMismatch,
            "tls.key does not match the certificate in tls.crt",
            None,
        );
    }
    if data.issuer_name.as_deref() != Some(o.spec.issuer_ref.name.as_str())
        || data.issuer_kind.as_deref() != Some(o.spec.issuer_ref.kind.as_str())
    {
        return issue(
            Reason::IssuerChanged,
            format!(
                "issued by {} {:?}, spec names {} {:?}",
                data.issuer_kind.as_deref().unwrap_or("unknown kind"),
                data.issuer_name.as_deref().unwrap_or(""),
                o.spec.issuer_ref.kind.as_str(),
                o.spec.issuer_ref.name
            ),
            None,
        );
    }
    if let Some(diff) = spec_mismatch(o.spec, &leaf) {
        return issue(
            Reason::SpecMismatch,
            format!("certificate does not match spec: {diff}"),
            None,
        );
    }
    if o.now >= leaf.not_after {
        return issue(
            Reason::Expired,
            format!("certificate expired at {}", rfc3339(leaf.not_after)),
            None,
        );
    }
    let renewal_time = renewal::renewal_time(
        o.identity,
        leaf.not_before,
        leaf.not_after,
        renew_before(o.spec),
    );
    let current = Current { leaf, renewal_time };
    if let Some(request) = o.renew_requested.filter(|r| Some(*r) != o.renew_handled) {
        return issue(
            Reason::ManualTrigger,
            format!("renewal requested at {request}"),
            Some(current),
        );
    }
    if o.now >= renewal_time {
        let message = format!("renewal time {} reached", rfc3339(renewal_time));
        return issue(Reason::Renewing, message, Some(current));
    }
    Decision::UpToDate(current)
}

fn issue(reason: Reason, message: impl Into<String>, current: Option<Current>) -> Decision {
    Decision::Issue {
        why: Problem::new(reason, message),
        current,
    }
}

fn nonempty(v: &Option<Vec<u8>>) -> Option<&[u8]> {
    v.as_deref().filter(|b| !b.is_empty())
}

/// The renew-window setting of a spec.
pub fn renew_before(spec: &CertificateSpec) -> RenewBefore {
    if let Some(p) = spec.renew_before_percentage {
        return RenewBefore::Percentage(p);
    }
    match spec
        .renew_before
        .as_deref()
        .map(crate::api::duration::parse)
    {
        Some(Ok(d)) => RenewBefore::Duration(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        _ => RenewBefore::Default,
    }
}

/// The first way the certificate differs from the spec, in words; None when it matches.
pub fn spec_mismatch(spec: &CertificateSpec, cert: &CertInfo) -> Option<String> {
    use std::collections::BTreeSet;
    if spec.common_name != cert.common_name {
        return Some(format!(
            "commonName is {:?}, spec wants {:?}",
            cert.common_name, spec.common_name
        ));
    }
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    if set(&spec.dns_names) != cert.dns_names {
        return Some(format!(
            "dnsNames are {:?}, spec wants {:?}",
            cert.dns_names,
            set(&spec.dns_names)
        ));
    }
    let ips: BTreeSet<std::net::IpAddr> = spec
        .ip_addresses
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if ips != cert.ip_addresses {
        return Some(format!(
            "ipAddresses are {:?}, spec wants {:?}",
            cert.ip_addresses, ips
        ));
    }
    if set(&spec.uris) != cert.uris {
        return Some(format!(
            "uris are {:?}, spec wants {:?}",
            cert.uris,
            set(&spec.uris)
        ));
    }
    if set(&spec.email_addresses) != cert.emails {
        return Some(format!(
            "emailAddresses are {:?}, spec wants {:?}",
            cert.emails,
            set(&spec.email_addresses)
        ));
    }
    let subject = spec.subject.clone().unwrap_or_default();
    for (field, want, have) in [
        ("organizations", &subject.organizations, &cert.organizations),
        (
            "organizationalUnits",
            &subject.organizational_units,
            &cert.organizational_units,
        ),
        ("countries", &subject.countries, &cert.countries),
        ("localities", &subject.localities, &cert.localities),
        ("provinces", &subject.provinces, &cert.provinces),
    ] {
        if set(want) != set(have) {
            return Some(format!("subject {field} are {have:?}, spec wants {want:?}"));
        }
    }
    let (algorithm, size) = (spec.key_algorithm(), spec.key_size());
    match cert.key {
        Some(k)
            if k.algorithm == algorithm
                && (algorithm == KeyAlgorithm::Ed25519 || k.size == size) => {}
        other => {
            return Some(format!("key is {other:?}, spec wants {algorithm:?} {size}"));
        }
    }
    if spec.is_ca != cert.is_ca {
        return Some(format!("isCA is {}, spec wants {}", cert.is_ca, spec.is_ca));
    }
    let usages: BTreeSet<_> = spec.usages().into_iter().collect();
    if usages != cert.usages {
        return Some(format!(
            "usages are {:?}, spec wants {:?}",
            cert.usages, usages
        ));
    }
    None
}

/// Seconds since the epoch as RFC 3339 (UTC, whole seconds).
pub fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).map_or_else(|_| secs.to_string(), |t| t.to_string())
}
