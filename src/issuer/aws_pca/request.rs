//! What one IssueCertificate request says, fixed before anything is sent so that a resend is
//! the very same request: the CSR, the template and signing algorithm (defaulted from the
//! Certificate and the CA), the absolute validity, and the idempotency token.

use sha2::{Digest, Sha256};

use crate::api::KeyUsage;

/// One IssueCertificate call's parameters, all stored with the pending request so that a
/// retry sends exactly the same request (AWS then honours the idempotency token).
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    pub csr_pem: &'a str,
    pub template_arn: &'a str,
    pub signing_algorithm: &'a str,
    /// Unix seconds.
    pub not_after: i64,
    pub idempotency_token: &'a str,
}

/// The AWS template matching what the Certificate asks for.
pub fn default_template(is_ca: bool, usages: &[KeyUsage]) -> &'static str {
    if is_ca {
        return "arn:aws:acm-pca:::template/SubordinateCACertificate_PathLen0/V1";
    }
    let server = usages.contains(&KeyUsage::ServerAuth);
    let client = usages.contains(&KeyUsage::ClientAuth);
    match (server, client) {
        (true, false) => "arn:aws:acm-pca:::template/EndEntityServerAuthCertificate/V1",
        (false, true) => "arn:aws:acm-pca:::template/EndEntityClientAuthCertificate/V1",
        _ => "arn:aws:acm-pca:::template/EndEntityCertificate/V1",
    }
}

/// The signing algorithm for a CA key algorithm as DescribeCertificateAuthority names it.
pub fn default_signing_algorithm(key_algorithm: &str) -> Option<&'static str> {
    match key_algorithm {
        "RSA_2048" | "RSA_3072" | "RSA_4096" => Some("SHA256WITHRSA"),
        "EC_prime256v1" => Some("SHA256WITHECDSA"),
        "EC_secp384r1" => Some("SHA384WITHECDSA"),
        "EC_secp521r1" => Some("SHA512WITHECDSA"),
        "SM2" => Some("SM3WITHSM2"),
        _ => None,
    }
}

/// The region named in a CA ARN (`arn:aws:acm-pca:<region>:<account>:certificate-authority/…`).
pub fn region_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| !r.is_empty())
}

/// The IdempotencyToken: the same for every retry of one request (Certificate, revision and
/// CSR), different for the next revision or a new key. AWS allows at most 36 characters.
pub fn idempotency_token(certificate_uid: &str, revision: i64, csr_pem: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(certificate_uid.as_bytes());
    hasher.update([0]);
    hasher.update(revision.to_string().as_bytes());
    hasher.update([0]);
    hasher.update(csr_pem.as_bytes());
    hex(&hasher.finalize()[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_follow_usages() {
        use KeyUsage::*;
        let both = [DigitalSignature, KeyEncipherment, ServerAuth, ClientAuth];
        assert!(default_template(false, &both).ends_with("/EndEntityCertificate/V1"));
        assert!(
            default_template(false, &[DigitalSignature, ServerAuth])
                .ends_with("/EndEntityServerAuthCertificate/V1")
        );
        assert!(
            default_template(false, &[DigitalSignature, ClientAuth])
                .ends_with("/EndEntityClientAuthCertificate/V1")
        );
        assert!(default_template(false, &[DigitalSignature]).ends_with("/EndEntityCertificate/V1"));
        assert!(default_template(true, &both).contains("SubordinateCACertificate"));
    }

    #[test]
    fn signing_algorithm_follows_the_ca_key() {
        assert_eq!(
            default_signing_algorithm("EC_prime256v1"),
            Some("SHA256WITHECDSA")
        );
        assert_eq!(
            default_signing_algorithm("EC_secp384r1"),
            Some("SHA384WITHECDSA")
        );
        assert_eq!(default_signing_algorithm("RSA_4096"), Some("SHA256WITHRSA"));
        assert_eq!(default_signing_algorithm("ML_DSA_65"), None);
    }

    #[test]
    fn region_comes_from_the_arn() {
        assert_eq!(
            region_of("arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/abc"),
            Some("eu-west-1")
        );
        assert_eq!(region_of("nonsense"), None);
    }

    #[test]
    fn the_token_is_stable_per_request_and_fits_aws() {
        let t = idempotency_token("uid-1", 4, "CSR");
        assert_eq!(t, idempotency_token("uid-1", 4, "CSR"));
        assert_ne!(t, idempotency_token("uid-1", 5, "CSR"));
        assert_ne!(t, idempotency_token("uid-1", 4, "CSR2"));
        assert_ne!(t, idempotency_token("uid-2", 4, "CSR"));
        assert!(t.len() <= 36);
    }
}
