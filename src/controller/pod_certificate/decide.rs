//! The pure part of answering a PodCertificateRequest: which key, which identity, how long,
//! when to refresh. Everything here takes what was read (and `now`) and returns a decision.

use std::time::Duration;

use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::api::duration;
use crate::api::pod_certificate::PodCertificateRequestSpec;
use crate::api::policy::Policy;
use crate::api::{CertificateSpec, IssuerKind, IssuerRef, KeyAlgorithm, PrivateKeySpec};
use crate::pki::renewal::{self, RenewBefore};
use crate::reason::{Problem, Reason};

/// The one `unverifiedUserAnnotations` key certsmith reads: DNS names to add next to the SVID,
/// comma-separated, each allowed only if the issuer's policy (`allowed.dnsNames`) permits it.
/// Kubernetes asks signers to deny keys they do not know, and certsmith does.
pub const DNS_NAMES_ANNOTATION: &str = "certsmith.dev/dns-names";
/// Most DNS names one request may ask for.
pub const MAX_DNS_NAMES: usize = 16;

/// The shortest certificate Kubernetes accepts for a pod (and the shortest maxExpirationSeconds).
pub const MIN_LIFETIME_SECS: i64 = 3600;
/// What the API server requires of beginRefreshAt: at least this long after notBefore and
/// before notAfter.
pub const REFRESH_MARGIN_SECS: i64 = 600;
/// maxExpirationSeconds when the request has none (the API server's own default).
pub const DEFAULT_MAX_EXPIRATION_SECS: i64 = 86_400;

/// The request's public key: its DER SubjectPublicKeyInfo and what kind of key it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    pub spki_der: Vec<u8>,
    pub algorithm: KeyAlgorithm,
    /// ECDSA curve size, RSA modulus bits; 0 for Ed25519.
    pub size: u32,
}

fn unsupported(message: impl Into<String>) -> Problem {
    Problem::new(Reason::UnsupportedKeyType, message)
}

fn invalid(message: impl Into<String>) -> Problem {
    Problem::new(Reason::InvalidRequest, message)
}

/// The key to certify: `pkixPublicKey` (1.35), or the public key of `stubPKCS10Request`
/// (1.36+; the API server verified its signature). A key that is not one of Kubernetes' key
/// types is `UnsupportedKeyType`, the reason the API prescribes for a denial.
pub fn request_key(spec: &PodCertificateRequestSpec) -> Result<RequestKey, Problem> {
    let spki_der = match (&spec.pkix_public_key, &spec.stub_pkcs10_request) {
        (Some(pkix), _) if !pkix.0.is_empty() => pkix.0.clone(),
        (_, Some(csr)) if !csr.0.is_empty() => stub_csr_key(&csr.0)?,
        _ => {
            return Err(unsupported(
                "the request carries no public key (neither pkixPublicKey nor stubPKCS10Request)",
            ));
        }
    };
    let (algorithm, size) = classify(&spki_der)?;
    Ok(RequestKey {
        spki_der,
        algorithm,
        size,
    })
}

fn stub_csr_key(der: &[u8]) -> Result<Vec<u8>, Problem> {
    use x509_parser::certification_request::X509CertificationRequest;
    let (_, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| unsupported(format!("stubPKCS10Request is not a PKCS#10 request: {e}")))?;
    Ok(csr.certification_request_info.subject_pki.raw.to_vec())
}

const SUPPORTED: &str = "ECDSA P-256, P-384 or P-521, RSA 3072 or 4096, or Ed25519";

/// The algorithm and size of a PKIX public key, for the kinds Kubernetes allows.
fn classify(spki_der: &[u8]) -> Result<(KeyAlgorithm, u32), Problem> {
    let (rest, spki) = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| unsupported(format!("pkixPublicKey is not a PKIX public key: {e}")))?;
    if !rest.is_empty() {
        return Err(unsupported(
            "pkixPublicKey has trailing bytes after the public key",
        ));
    }
    let oid = &spki.algorithm.algorithm;
    if *oid == OID_SIG_ED25519 {
        return Ok((KeyAlgorithm::Ed25519, 0));
    }
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(c) if c == OID_EC_P256 => Ok((KeyAlgorithm::Ecdsa, 256)),
            Some(c) if c == OID_NIST_EC_P384 => Ok((KeyAlgorithm::Ecdsa, 384)),
            Some(c) if c == OID_NIST_EC_P521 => Ok((KeyAlgorithm::Ecdsa, 521)),
            _ => Err(unsupported(format!(
                "the request's ECDSA curve is not supported; use {SUPPORTED}"
            ))),
        };
    }
    if *oid == OID_PKCS1_RSAENCRYPTION {
        let bits = match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => modulus_bits(rsa.modulus),
            _ => return Err(unsupported("the request's RSA public key does not parse")),
        };
        return match bits {
            3072 | 4096 => Ok((KeyAlgorithm::Rsa, bits)),
            _ => Err(unsupported(format!(
                "RSA {bits} is not supported; use {SUPPORTED}"
            ))),
        };
    }
    Err(unsupported(format!(
        "key algorithm {oid} is not supported; use {SUPPORTED}"
    )))
}

/// The bit length of a big-endian unsigned integer (leading zero bytes ignored).
fn modulus_bits(modulus: &[u8]) -> u32 {
    let digits: Vec<u8> = modulus.iter().copied().skip_while(|b| *b == 0).collect();
    match digits.first() {
        Some(first) => u32::try_from(digits.len() * 8).unwrap_or(u32::MAX) - first.leading_zeros(),
        None => 0,
    }
}

/// The DNS names the pod's author asked for, and a denial for any key certsmith does not know.
pub fn requested_dns_names(spec: &PodCertificateRequestSpec) -> Result<Vec<String>, Problem> {
    let Some(annotations) = &spec.unverified_user_annotations else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for (key, value) in annotations {
        if key != DNS_NAMES_ANNOTATION {
            return Err(invalid(format!(
                "unverifiedUserAnnotations key {:?} is not one certsmith knows (it reads only {DNS_NAMES_ANNOTATION})",
                cut(key)
            )));
        }
        names = value
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
    }
    if names.len() > MAX_DNS_NAMES {
        return Err(invalid(format!(
            "{DNS_NAMES_ANNOTATION} lists {} names; at most {MAX_DNS_NAMES}",
            names.len()
        )));
    }
    Ok(names)
}

fn cut(text: &str) -> String {
    text.chars().take(80).collect()
}

/// The certificate's lifetime: the request's maxExpirationSeconds, shortened to the issuer's
/// `policy.maxDuration`. Kubernetes refuses pod certificates shorter than an hour, so a policy
/// allowing less denies.
pub fn lifetime(spec: &PodCertificateRequestSpec, policy: Option<&Policy>) -> Result<i64, Problem> {
    let asked = spec
        .max_expiration_seconds
        .map_or(DEFAULT_MAX_EXPIRATION_SECS, i64::from);
    let policy_max = match policy.and_then(|p| p.max_duration.as_deref()) {
        Some(text) => Some(
            duration::parse(text)
                .map_err(|e| {
                    Problem::new(
                        Reason::PolicyDenied,
                        format!("the issuer's policy has an invalid maxDuration: {e}"),
                    )
                })
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))?,
        ),
        None => None,
    };
    let granted = policy_max.map_or(asked, |max| asked.min(max));
    if granted < MIN_LIFETIME_SECS {
        return Err(Problem::new(
            Reason::PolicyDenied,
            format!(
                "the issuer's policy maxDuration {} is shorter than the one hour Kubernetes requires of a pod certificate",
                policy.and_then(|p| p.max_duration.as_deref()).unwrap_or("")
            ),
        ));
    }
    Ok(granted)
}

/// What the pod gets, as a Certificate spec, so the issuer's policy judges it exactly as it
/// judges a Certificate: the SVID of the pod's ServiceAccount, the DNS names asked for, the
/// request's key, the granted lifetime, the default usages, no CA.
pub fn certificate_spec(
    svid: &str,
    dns_names: Vec<String>,
    key: &RequestKey,
    lifetime_secs: i64,
) -> CertificateSpec {
    CertificateSpec {
        secret_name: String::new(),
        issuer_ref: IssuerRef {
            name: String::new(),
            kind: IssuerKind::ClusterIssuer,
        },
        common_name: None,
        dns_names,
        ip_addresses: Vec::new(),
        uris: vec![svid.to_string()],
        email_addresses: Vec::new(),
        subject: None,
        duration: Some(duration::format(Duration::from_secs(
            u64::try_from(lifetime_secs).unwrap_or(0),
        ))),
        renew_before: None,
        renew_before_percentage: None,
        private_key: Some(PrivateKeySpec {
            algorithm: Some(key.algorithm),
            size: (key.algorithm != KeyAlgorithm::Ed25519).then_some(key.size),
            encoding: None,
            rotation_policy: None,
        }),
        usages: None,
        is_ca: false,
        secret_template: None,
        additional_output_formats: Vec::new(),
        keystores: None,
        secret_cleanup_policy: None,
        revocation_policy: None,
    }
}

/// When the kubelet should start refreshing: the renewal time a Certificate with the same
/// validity would get (two thirds into the lifetime, moved earlier by a jitter fixed per
/// request, so pods started together do not refresh together), kept inside the window the API
/// server accepts (10 minutes after notBefore to 10 minutes before notAfter).
pub fn begin_refresh_at(identity: &str, not_before: i64, not_after: i64) -> i64 {
    let at = renewal::renewal_time(identity, not_before, not_after, RenewBefore::Default, None);
    at.max(not_before + REFRESH_MARGIN_SECS)
        .min(not_after - REFRESH_MARGIN_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn spki(key: &crate::pki::keys::PrivateKey) -> Vec<u8> {
        key.public_key_info()
    }

    fn with_key(der: Vec<u8>) -> PodCertificateRequestSpec {
        PodCertificateRequestSpec {
            pkix_public_key: Some(ByteString(der)),
            ..Default::default()
        }
    }

    #[test]
    fn keys_are_classified_as_kubernetes_names_them() {
        use crate::pki::keys::PrivateKey;
        for (algorithm, size) in [
            (KeyAlgorithm::Ecdsa, 256),
            (KeyAlgorithm::Ecdsa, 384),
            (KeyAlgorithm::Ecdsa, 521),
            (KeyAlgorithm::Ed25519, 0),
            (KeyAlgorithm::Rsa, 3072),
        ] {
            let key = PrivateKey::generate(algorithm, size).expect("key");
            let got = request_key(&with_key(spki(&key))).expect("supported");
            assert_eq!((got.algorithm, got.size), (algorithm, size));
        }
        let rsa2048 = PrivateKey::generate(KeyAlgorithm::Rsa, 2048).expect("key");
        let refused = request_key(&with_key(spki(&rsa2048))).expect_err("RSA 2048");
        assert_eq!(refused.reason, Reason::UnsupportedKeyType);
        assert!(refused.message.contains("RSA 2048"), "{}", refused.message);
        for garbage in [vec![], vec![0x30, 0x03, 1, 2, 3], b"not a key".to_vec()] {
            let refused = request_key(&with_key(garbage)).expect_err("garbage");
            assert_eq!(refused.reason, Reason::UnsupportedKeyType);
        }
    }

    #[test]
    fn a_stub_csr_supplies_the_key_when_there_is_no_pkix_key() {
        use crate::pki::keys::PrivateKey;
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).expect("key");
        let csr = rcgen::CertificateParams::default()
            .serialize_request(key.pair())
            .expect("csr");
        let spec = PodCertificateRequestSpec {
            stub_pkcs10_request: Some(ByteString(csr.der().to_vec())),
            ..Default::default()
        };
        assert_eq!(request_key(&spec).expect("key").spki_der, spki(&key));
    }

    #[test]
    fn only_the_dns_names_annotation_is_accepted() {
        let mut spec = PodCertificateRequestSpec::default();
        assert_eq!(requested_dns_names(&spec), Ok(vec![]));
        spec.unverified_user_annotations = Some(
            [(DNS_NAMES_ANNOTATION.to_string(), "a.x.svc, b.x.svc,".into())]
                .into_iter()
                .collect(),
        );
        assert_eq!(
            requested_dns_names(&spec),
            Ok(vec!["a.x.svc".into(), "b.x.svc".into()])
        );
        spec.unverified_user_annotations = Some(
            [("example.com/x".to_string(), "y".into())]
                .into_iter()
                .collect(),
        );
        assert_eq!(
            requested_dns_names(&spec).map_err(|p| p.reason),
            Err(Reason::InvalidRequest)
        );
        let many = (0..=MAX_DNS_NAMES)
            .map(|i| format!("n{i}.x"))
            .collect::<Vec<_>>();
        spec.unverified_user_annotations = Some(
            [(DNS_NAMES_ANNOTATION.to_string(), many.join(","))]
                .into_iter()
                .collect(),
        );
        assert!(requested_dns_names(&spec).is_err());
    }

    #[test]
    fn lifetime_is_the_shorter_of_the_request_and_the_policy() {
        let spec = |max: Option<i32>| PodCertificateRequestSpec {
            max_expiration_seconds: max,
            ..Default::default()
        };
        let policy = |max: &str| Policy {
            max_duration: Some(max.into()),
            ..Policy::default()
        };
        assert_eq!(lifetime(&spec(None), None), Ok(86_400));
        assert_eq!(lifetime(&spec(Some(7200)), None), Ok(7200));
        assert_eq!(lifetime(&spec(Some(7200)), Some(&policy("24h"))), Ok(7200));
        assert_eq!(lifetime(&spec(Some(86_400)), Some(&policy("2h"))), Ok(7200));
        let short = lifetime(&spec(Some(86_400)), Some(&policy("30m"))).expect_err("too short");
        assert_eq!(short.reason, Reason::PolicyDenied);
        assert!(short.message.contains("30m"), "{}", short.message);
    }

    #[test]
    fn refresh_begins_inside_the_window_the_api_server_accepts() {
        for (id, lifetime) in [("a", 3600), ("b", 86_400), ("c", 7_862_400), ("d", 3601)] {
            let nb = 1_000_000;
            let na = nb + lifetime;
            let at = begin_refresh_at(id, nb, na);
            assert!(at >= nb + REFRESH_MARGIN_SECS && at <= na - REFRESH_MARGIN_SECS);
            // Before the unjittered two-thirds point, never earlier than the jitter allows.
            assert!(at <= nb + lifetime * 2 / 3, "{id}: {at}");
            assert!(
                at >= nb + lifetime * 2 / 3 - lifetime / 15 - 1,
                "{id}: {at}"
            );
        }
        // One request always gets the same time; two usually different ones.
        assert_eq!(
            begin_refresh_at("x", 0, 86_400),
            begin_refresh_at("x", 0, 86_400)
        );
        assert_ne!(
            begin_refresh_at("x", 0, 86_400),
            begin_refresh_at("y", 0, 86_400)
        );
    }
}
