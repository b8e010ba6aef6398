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
    pub ca_crt: Option<Vec<u8>>,
    pub issuer_name: Option<String>,
    pub issuer_kind: Option<String>,
    /// The backend that signed the certificate (`selfSigned`, `ca`, `vault` ...).
    pub issuer_type: Option<String>,
    /// The revision the certificate was issued as, and the renew request it satisfied. Read
    /// from the Secret (fetched live), so a stale cached status cannot cause a second issuance.
    pub revision: Option<i64>,
    pub renew_request: Option<String>,
    /// When the operator wrote the certificate (Unix seconds), for the renewal floor.
    pub issued_at: Option<i64>,
}

/// Backends whose own configuration decides the certificate profile.
pub fn issuer_decides_profile(issuer_type: Option<&str>) -> bool {
    matches!(issuer_type, Some("vault" | "awsPCA"))
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
    /// The revision this certificate was issued as, and the renew request it satisfied.
    pub revision: Option<i64>,
    pub renew_request: Option<String>,
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
    if o.spec.secret_name.ends_with(super::pending::SECRET_SUFFIX) {
        return Decision::Refuse(Problem::new(
            Reason::InvalidSpec,
            format!(
                "secretName {:?} is reserved for certsmith's pending-request Secrets; choose another",
                o.spec.secret_name
            ),
        ));
    }
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
    if let Some(diff) = spec_mismatch(
        o.spec,
        &leaf,
        issuer_decides_profile(data.issuer_type.as_deref()),
    ) {
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
    if let Err(problem) = ca_anchors_chain(data.ca_crt.as_deref(), crt) {
        return issue(Reason::InvalidData, problem, None);
    }
    let renewal_time = renewal::renewal_time(
        o.identity,
        leaf.not_before,
        leaf.not_after,
        renew_before(o.spec),
        data.issued_at,
    );
    let current = Current {
        leaf,
        renewal_time,
        revision: data.revision,
        renew_request: data.renew_request.clone(),
    };
    let handled = |r: &str| Some(r) == o.renew_handled || Some(r) == data.renew_request.as_deref();
    if let Some(request) = o.renew_requested.filter(|r| !handled(r)) {
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

/// `ca.crt` must hold certificates, one of which is the top of `tls.crt`'s chain or its
/// issuer (by name and signature): what a relying party is told to trust must verify it.
fn ca_anchors_chain(ca_crt: Option<&[u8]>, tls_crt: &[u8]) -> Result<(), String> {
    let ca = match ca_crt.filter(|b| !b.is_empty()) {
        None => return Err("Secret is missing ca.crt".into()),
        Some(bytes) => {
            inspect::parse_chain(bytes).map_err(|e| format!("ca.crt cannot be parsed: {e}"))?
        }
    };
    let chain =
        inspect::parse_chain(tls_crt).map_err(|e| format!("tls.crt cannot be parsed: {e}"))?;
    let Some(top) = chain.last() else {
        return Err("tls.crt holds no certificate".into());
    };
    let anchored = ca
        .iter()
        .any(|c| c.der == top.der || inspect::issued_by(top, c));
    if anchored {
        Ok(())
    } else {
        Err(format!(
            "ca.crt does not hold the issuer of the top certificate of tls.crt (serial {}, issuer {:?})",
            top.serial, top.issuer
        ))
    }
}

/// The revision a new issuance becomes: one more than the newest of the status and the
/// Secret. The Secret's annotation is anyone's to edit, so the sum is checked.
pub fn next_revision(in_status: Option<i64>, in_secret: Option<i64>) -> Result<i64, Problem> {
    let last = in_status.max(in_secret).unwrap_or(0).max(0);
    last.checked_add(1).ok_or_else(|| {
        Problem::new(
            Reason::InvalidData,
            format!(
                "revision {last} (annotation certsmith.dev/revision on the Secret) cannot be incremented; remove the annotation"
            ),
        )
    })
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
///
/// Remote CAs (Vault, AWS Private CA) decide the certificate profile (subject attributes,
/// usages, CA flag, a common name where none was asked) through their own roles and
/// templates; for their certificates only the requested names and the key are compared, or
/// a difference the CA imposes would re-issue forever.
pub fn spec_mismatch(
    spec: &CertificateSpec,
    cert: &CertInfo,
    issuer_decides_profile: bool,
) -> Option<String> {
    use std::collections::BTreeSet;
    let cn_matters = !issuer_decides_profile || spec.common_name.is_some();
    if cn_matters && spec.common_name != cert.common_name {
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
    let (algorithm, size) = (spec.key_algorithm(), spec.key_size());
    match cert.key {
        Some(k)
            if k.algorithm == algorithm
                && (algorithm == KeyAlgorithm::Ed25519 || k.size == size) => {}
        other => {
            return Some(format!("key is {other:?}, spec wants {algorithm:?} {size}"));
        }
    }
    if issuer_decides_profile {
        return None;
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

/// RFC 3339 back to seconds since the epoch (None when unreadable).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{KeyEncoding, RENEW_ANNOTATION};
    use crate::issuer::selfsigned;
    use crate::pki::request::sign_request;

    const T0: i64 = 1_800_000_000;
    const HOUR: i64 = 3600;

    fn spec(extra: serde_json::Value) -> CertificateSpec {
        let mut base = serde_json::json!({
            "secretName": "web-tls", "issuerRef": {"name": "root", "kind": "ClusterIssuer"},
            "dnsNames": ["web.example"], "duration": "24h",
        });
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    /// A Secret as the operator would have written it for `spec`, issued at `at`.
    fn issued(spec: &CertificateSpec, at: i64) -> SecretData {
        let key = PrivateKey::generate(spec.key_algorithm(), spec.key_size()).unwrap();
        let signed = selfsigned::sign(&sign_request(spec, &key).unwrap(), &key, at).unwrap();
        SecretData {
            tls_crt: Some(signed.chain_pem.into_bytes()),
            tls_key: Some(key.to_pem(KeyEncoding::Pkcs8).unwrap().into_bytes()),
            ca_crt: Some(signed.ca_pem.into_bytes()),
            issuer_name: Some(spec.issuer_ref.name.clone()),
            issuer_kind: Some(spec.issuer_ref.kind.as_str().into()),
            issuer_type: Some("selfSigned".into()),
            revision: Some(1),
            renew_request: None,
            issued_at: Some(at),
        }
    }

    fn observe<'a>(spec: &'a CertificateSpec, secret: SecretState<'a>, now: i64) -> Observed<'a> {
        Observed {
            identity: "ns/web",
            spec,
            secret,
            claimed_by: None,
            renew_requested: None,
            renew_handled: None,
            now,
        }
    }

    fn reason(d: &Decision) -> Reason {
        match d {
            Decision::UpToDate(_) => Reason::UpToDate,
            Decision::Issue { why, .. } => why.reason,
            Decision::Refuse(p) => p.reason,
        }
    }

    #[test]
    fn fresh_certificate_is_up_to_date_until_its_jittered_renewal_time() {
        let s = spec(serde_json::json!({}));
        let data = issued(&s, T0);
        let d = decide(&observe(&s, SecretState::Ours(&data), T0 + HOUR));
        let Decision::UpToDate(current) = d else {
            panic!("{d:?}")
        };
        // Default: 2/3 of 24h = 16h, minus at most 10% of 16h capped at 1h of jitter.
        assert!(
            current.renewal_time <= T0 + 16 * HOUR && current.renewal_time >= T0 + 15 * HOUR,
            "{}",
            current.renewal_time
        );
        let just_before = decide(&observe(
            &s,
            SecretState::Ours(&data),
            current.renewal_time - 1,
        ));
        assert_eq!(reason(&just_before), Reason::UpToDate);
        let at = decide(&observe(&s, SecretState::Ours(&data), current.renewal_time));
        assert_eq!(reason(&at), Reason::Renewing);
        assert!(
            matches!(
                at,
                Decision::Issue {
                    current: Some(_),
                    ..
                }
            ),
            "a renewing certificate stays usable"
        );
    }

    #[test]
    fn expired_wins_over_renewing() {
        let s = spec(serde_json::json!({}));
        let data = issued(&s, T0);
        let d = decide(&observe(&s, SecretState::Ours(&data), T0 + 25 * HOUR));
        assert_eq!(reason(&d), Reason::Expired);
        assert!(
            matches!(d, Decision::Issue { current: None, .. }),
            "an expired certificate is not usable"
        );
    }

    #[test]
    fn renew_before_and_percentage_move_the_renewal_time() {
        let s = spec(serde_json::json!({"renewBefore": "2h"}));
        let data = issued(&s, T0);
        assert_eq!(
            reason(&decide(&observe(
                &s,
                SecretState::Ours(&data),
                T0 + 20 * HOUR
            ))),
            Reason::UpToDate
        );
        assert_eq!(
            reason(&decide(&observe(
                &s,
                SecretState::Ours(&data),
                T0 + 22 * HOUR
            ))),
            Reason::Renewing
        );
        let p = spec(serde_json::json!({"renewBeforePercentage": 50}));
        let data = issued(&p, T0);
        assert_eq!(
            reason(&decide(&observe(
                &p,
                SecretState::Ours(&data),
                T0 + 10 * HOUR
            ))),
            Reason::UpToDate
        );
        assert_eq!(
            reason(&decide(&observe(
                &p,
                SecretState::Ours(&data),
                T0 + 12 * HOUR
            ))),
            Reason::Renewing
        );
    }

    #[test]
    fn missing_secret_and_missing_or_broken_data() {
        let s = spec(serde_json::json!({}));
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Missing, T0))),
            Reason::DoesNotExist
        );
        let mut data = issued(&s, T0);
        data.tls_key = Some(Vec::new());
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Ours(&data), T0))),
            Reason::MissingData
        );
        let mut data = issued(&s, T0);
        data.tls_crt = None;
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Ours(&data), T0))),
            Reason::MissingData
        );
        let mut data = issued(&s, T0);
        data.tls_crt =
            Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec());
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Ours(&data), T0))),
            Reason::InvalidData
        );
        let mut data = issued(&s, T0);
        data.tls_key = Some(b"not a key".to_vec());
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Ours(&data), T0))),
            Reason::InvalidData
        );
    }

    #[test]
    fn key_that_does_not_match_the_certificate() {
        let s = spec(serde_json::json!({}));
        let mut data = issued(&s, T0);
        data.tls_key = issued(&s, T0).tls_key;
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Ours(&data), T0))),
            Reason::KeyMismatch
        );
    }

    #[test]
    fn issuer_change_is_detected_from_the_secret_annotations() {
        let s = spec(serde_json::json!({}));
        let data = issued(&s, T0);
        let moved =
            spec(serde_json::json!({"issuerRef": {"name": "other", "kind": "ClusterIssuer"}}));
        assert_eq!(
            reason(&decide(&observe(&moved, SecretState::Ours(&data), T0))),
            Reason::IssuerChanged
        );
        let kind = spec(serde_json::json!({"issuerRef": {"name": "root"}}));
        assert_eq!(
            reason(&decide(&observe(&kind, SecretState::Ours(&data), T0))),
            Reason::IssuerChanged
        );
    }

    #[test]
    fn every_spec_field_that_shapes_the_certificate_is_compared() {
        let s = spec(serde_json::json!({}));
        let data = issued(&s, T0);
        for change in [
            serde_json::json!({"dnsNames": ["web.example", "www.example"]}),
            serde_json::json!({"commonName": "web"}),
            serde_json::json!({"ipAddresses": ["10.1.2.3"]}),
            serde_json::json!({"uris": ["spiffe://cluster.local/ns/a/sa/web"]}),
            serde_json::json!({"emailAddresses": ["ops@example.com"]}),
            serde_json::json!({"subject": {"organizations": ["acme"]}}),
            serde_json::json!({"privateKey": {"algorithm": "ECDSA", "size": 384}}),
            serde_json::json!({"privateKey": {"algorithm": "Ed25519"}}),
            serde_json::json!({"isCA": true}),
            serde_json::json!({"usages": ["digital signature", "server auth"]}),
        ] {
            let changed = spec(change.clone());
            let d = decide(&observe(&changed, SecretState::Ours(&data), T0));
            assert_eq!(reason(&d), Reason::SpecMismatch, "{change}");
        }
        // From a remote CA, only names and key count: its role decides the rest.
        let mut remote = data.clone();
        remote.issuer_type = Some("vault".into());
        for change in [
            serde_json::json!({"subject": {"organizations": ["acme"]}}),
            serde_json::json!({"usages": ["digital signature", "server auth"]}),
        ] {
            let changed = spec(change.clone());
            assert_eq!(
                reason(&decide(&observe(&changed, SecretState::Ours(&remote), T0))),
                Reason::UpToDate,
                "{change}"
            );
        }
        let renamed = spec(serde_json::json!({"dnsNames": ["other.example"]}));
        assert_eq!(
            reason(&decide(&observe(&renamed, SecretState::Ours(&remote), T0))),
            Reason::SpecMismatch
        );
        // Changing only the lifetime does not re-issue; it changes the next certificate.
        let longer = spec(serde_json::json!({"duration": "48h"}));
        assert_eq!(
            reason(&decide(&observe(&longer, SecretState::Ours(&data), T0))),
            Reason::UpToDate
        );
    }

    #[test]
    fn manual_trigger_fires_once_per_request() {
        let s = spec(serde_json::json!({}));
        let data = issued(&s, T0);
        let mut o = observe(&s, SecretState::Ours(&data), T0);
        o.renew_requested = Some("2026-11-22T10:00:00Z");
        assert_eq!(reason(&decide(&o)), Reason::ManualTrigger);
        o.renew_handled = Some("2026-11-22T10:00:00Z");
        assert_eq!(reason(&decide(&o)), Reason::UpToDate);
        // The Secret records the request it satisfied: a stale status cannot re-trigger it.
        let mut recorded = data.clone();
        recorded.renew_request = Some("2026-11-22T10:00:00Z".into());
        o.renew_handled = None;
        o.secret = SecretState::Ours(&recorded);
        assert_eq!(reason(&decide(&o)), Reason::UpToDate);
        assert_eq!(RENEW_ANNOTATION, "certsmith.dev/renew-requested-at");
    }

    #[test]
    fn foreign_and_duplicate_secrets_are_refused_not_issued() {
        let s = spec(serde_json::json!({}));
        assert_eq!(
            reason(&decide(&observe(
                &s,
                SecretState::Foreign { owner: None },
                T0
            ))),
            Reason::SecretConflict
        );
        assert_eq!(
            reason(&decide(&observe(
                &s,
                SecretState::Foreign { owner: Some("api") },
                T0
            ))),
            Reason::DuplicateSecretName
        );
        let mut o = observe(&s, SecretState::Missing, T0);
        o.claimed_by = Some("older");
        assert_eq!(
            reason(&decide(&o)),
            Reason::DuplicateSecretName,
            "the older claimant wins even before its Secret exists"
        );
    }

    #[test]
    fn pkcs1_keys_and_rsa_sizes_are_understood() {
        let s = spec(
            serde_json::json!({"privateKey": {"algorithm": "RSA", "size": 3072, "encoding": "PKCS1"}}),
        );
        let key = PrivateKey::generate(s.key_algorithm(), s.key_size()).unwrap();
        let signed = selfsigned::sign(&sign_request(&s, &key).unwrap(), &key, T0).unwrap();
        let data = SecretData {
            tls_crt: Some(signed.chain_pem.into_bytes()),
            tls_key: Some(key.to_pem(KeyEncoding::Pkcs1).unwrap().into_bytes()),
            ca_crt: Some(signed.ca_pem.into_bytes()),
            issuer_name: Some("root".into()),
            issuer_kind: Some("ClusterIssuer".into()),
            issuer_type: None,
            revision: None,
            renew_request: None,
            issued_at: None,
        };
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Ours(&data), T0))),
            Reason::UpToDate
        );
        let smaller = spec(serde_json::json!({"privateKey": {"algorithm": "RSA", "size": 2048}}));
        assert_eq!(
            reason(&decide(&observe(&smaller, SecretState::Ours(&data), T0))),
            Reason::SpecMismatch
        );
    }

    #[test]
    fn a_ca_crt_that_does_not_anchor_the_chain_is_repaired() {
        let s = spec(serde_json::json!({}));
        let good = issued(&s, T0);
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Ours(&good), T0))),
            Reason::UpToDate
        );
        let other = issued(&s, T0);
        for bad in [
            None,
            Some(b"not a certificate".to_vec()),
            Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec()),
            // A real certificate, but not the one that issued tls.crt.
            other.ca_crt.clone(),
        ] {
            let mut data = good.clone();
            data.ca_crt = bad;
            assert_eq!(
                reason(&decide(&observe(&s, SecretState::Ours(&data), T0))),
                Reason::InvalidData
            );
        }
    }

    #[test]
    fn a_pending_request_secret_name_is_refused() {
        let s = spec(serde_json::json!({"secretName": "api-certsmith-pending"}));
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Missing, T0))),
            Reason::InvalidSpec
        );
    }

    #[test]
    fn the_next_revision_never_overflows() {
        assert_eq!(next_revision(None, None), Ok(1));
        assert_eq!(next_revision(Some(3), Some(5)), Ok(6));
        assert_eq!(next_revision(Some(3), Some(-7)), Ok(4));
        assert_eq!(
            next_revision(Some(1), Some(i64::MAX)).map_err(|p| p.reason),
            Err(Reason::InvalidData)
        );
    }
}
