//! What to ask a signer for: certificate parameters and a CSR derived from a Certificate spec.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, SanType,
};

use crate::api::{CertificateSpec, KeyUsage};

use super::keys::PrivateKey;

/// Everything a signer needs, built from the spec. Holds no private key material.
#[derive(Debug, Clone)]
pub struct SignRequest {
    /// PEM CSR signed by the new key (proof of possession).
    pub csr_pem: String,
    /// The full intent; signers that build certificates themselves read it instead of trusting the CSR.
    pub params: CertificateParams,
    /// Requested lifetime.
    pub duration: Duration,
    pub is_ca: bool,
    pub usages: Vec<KeyUsage>,
    /// The subject common name, if any (remote signers take it as a separate field).
    pub common_name: Option<String>,
}

/// Translate a spec into rcgen parameters (subject, SANs, usages, basic constraints).
pub fn certificate_params(spec: &CertificateSpec) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(spec);
    params.subject_alt_names = subject_alt_names(spec)?;
    params.is_ca = if spec.is_ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        IsCa::ExplicitNoCa
    };
    let (key_usages, extended) = split_usages(&spec.usages());
    params.key_usages = key_usages;
    params.extended_key_usages = extended;
    Ok(params)
}

/// Build the CSR for `spec` with `key`.
pub fn sign_request(spec: &CertificateSpec, key: &PrivateKey) -> Result<SignRequest, String> {
    let params = certificate_params(spec)?;
    let csr = params
        .serialize_request(key.pair())
        .map_err(|e| format!("building the CSR: {e}"))?;
    let csr_pem = csr.pem().map_err(|e| format!("encoding the CSR: {e}"))?;
    Ok(SignRequest {
        csr_pem,
        params,
        duration: spec.duration()?,
        is_ca: spec.is_ca,
        usages: spec.usages(),
        common_name: spec.common_name.clone(),
    })
}

/// What in a spec shapes the request (names, subject, key, lifetime, usages, CA flag, issuer).
/// Edits to anything else (renewBefore, secretTemplate, ...) keep a request in flight.
pub fn fingerprint(spec: &CertificateSpec) -> String {
    let mut value = serde_json::to_value(spec).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        for field in [
            "secretName",
            "secretTemplate",
            "renewBefore",
            "renewBeforePercentage",
        ] {
            map.remove(field);
        }
    }
    use sha2::{Digest, Sha256};
    Sha256::digest(value.to_string().as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn distinguished_name(spec: &CertificateSpec) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(subject) = &spec.subject {
        for (ty, values) in [
            (DnType::CountryName, &subject.countries),
            (DnType::StateOrProvinceName, &subject.provinces),
            (DnType::LocalityName, &subject.localities),
            (DnType::OrganizationName, &subject.organizations),
            (
                DnType::OrganizationalUnitName,
                &subject.organizational_units,
            ),
        ] {
            for value in values {
                dn.push(ty.clone(), value.as_str());
            }
        }
    }
    if let Some(cn) = &spec.common_name {
        dn.push(DnType::CommonName, cn.as_str());
    }
    dn
}

fn subject_alt_names(spec: &CertificateSpec) -> Result<Vec<SanType>, String> {
    let mut sans = Vec::new();
    for name in &spec.dns_names {
        sans.push(SanType::DnsName(
            name.clone()
                .try_into()
                .map_err(|_| format!("invalid DNS name {name:?}"))?,
        ));
    }
    for ip in &spec.ip_addresses {
        sans.push(SanType::IpAddress(
            ip.parse::<IpAddr>()
                .map_err(|_| format!("invalid IP address {ip:?}"))?,
        ));
    }
    for uri in &spec.uris {
        sans.push(SanType::URI(
            uri.clone()
                .try_into()
                .map_err(|_| format!("invalid URI {uri:?}"))?,
        ));
    }
    for email in &spec.email_addresses {
        sans.push(SanType::Rfc822Name(
            email
                .clone()
                .try_into()
                .map_err(|_| format!("invalid email {email:?}"))?,
        ));
    }
    Ok(sans)
}

/// Split cert-manager-style usages into X.509 key usages and extended key usages.
pub fn split_usages(usages: &[KeyUsage]) -> (Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>) {
    let mut ku = Vec::new();
    let mut eku = Vec::new();
    for usage in usages {
        match usage {
            KeyUsage::DigitalSignature => ku.push(KeyUsagePurpose::DigitalSignature),
            KeyUsage::ContentCommitment => ku.push(KeyUsagePurpose::ContentCommitment),
            KeyUsage::KeyEncipherment => ku.push(KeyUsagePurpose::KeyEncipherment),
            KeyUsage::DataEncipherment => ku.push(KeyUsagePurpose::DataEncipherment),
            KeyUsage::KeyAgreement => ku.push(KeyUsagePurpose::KeyAgreement),
            KeyUsage::CertSign => ku.push(KeyUsagePurpose::KeyCertSign),
            KeyUsage::CrlSign => ku.push(KeyUsagePurpose::CrlSign),
            KeyUsage::ServerAuth => eku.push(ExtendedKeyUsagePurpose::ServerAuth),
            KeyUsage::ClientAuth => eku.push(ExtendedKeyUsagePurpose::ClientAuth),
            KeyUsage::CodeSigning => eku.push(ExtendedKeyUsagePurpose::CodeSigning),
            KeyUsage::EmailProtection => eku.push(ExtendedKeyUsagePurpose::EmailProtection),
            KeyUsage::Timestamping => eku.push(ExtendedKeyUsagePurpose::TimeStamping),
            KeyUsage::OcspSigning => eku.push(ExtendedKeyUsagePurpose::OcspSigning),
        }
    }
    (ku, eku)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CertificateSpec, IssuerRef, KeyAlgorithm};

    pub(crate) fn spec(json: serde_json::Value) -> CertificateSpec {
        let mut base = serde_json::json!({"secretName": "s", "issuerRef": {"name": "i"}});
        for (k, v) in json.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn builds_a_csr_for_every_kind_of_name() {
        let spec = spec(serde_json::json!({
            "commonName": "orders", "dnsNames": ["orders.svc"], "ipAddresses": ["10.0.0.1", "::1"],
            "uris": ["spiffe://cluster.local/ns/a/sa/orders"], "emailAddresses": ["a@example.com"],
            "subject": {"organizations": ["acme"]}, "isCA": true,
        }));
        let _ = IssuerRef {
            name: "x".into(),
            kind: Default::default(),
        };
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let request = sign_request(&spec, &key).unwrap();
        assert!(
            request
                .csr_pem
                .starts_with("-----BEGIN CERTIFICATE REQUEST-----")
        );
        assert!(request.is_ca);
        assert_eq!(request.params.subject_alt_names.len(), 5);
    }
}
