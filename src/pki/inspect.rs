//! Read certificates back: what a PEM chain in a Secret actually says.

use std::collections::BTreeSet;

use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey as ParsedKey;

use crate::api::{KeyAlgorithm, KeyUsage};

/// Key type and size as seen in a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    pub algorithm: KeyAlgorithm,
    /// Modulus bits for RSA, curve bits for ECDSA, 0 for Ed25519.
    pub size: u32,
}

/// The facts of one certificate that decisions and status need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub der: Vec<u8>,
    /// Lower-case hex, colon-free.
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub subject: String,
    pub issuer: String,
    pub common_name: Option<String>,
    pub organizations: Vec<String>,
    pub organizational_units: Vec<String>,
    pub countries: Vec<String>,
    pub localities: Vec<String>,
    pub provinces: Vec<String>,
    pub dns_names: BTreeSet<String>,
    pub ip_addresses: BTreeSet<std::net::IpAddr>,
    pub uris: BTreeSet<String>,
    pub emails: BTreeSet<String>,
    pub is_ca: bool,
    pub usages: BTreeSet<KeyUsage>,
    /// None when the key type is not one certsmith issues.
    pub key: Option<KeyInfo>,
    /// DER SubjectPublicKeyInfo.
    pub public_key_info: Vec<u8>,
    /// The subject and authority key identifiers (lower-case hex), when present: which CA key
    /// signed a leaf, told without the CA certificate at hand (CA rotation counts leaves by it).
    pub subject_key_id: Option<String>,
    pub authority_key_id: Option<String>,
}

/// Parse every certificate in a PEM bundle, in order. Errors name the position, never the bytes.
pub fn parse_chain(pem_text: &[u8]) -> Result<Vec<CertInfo>, String> {
    let blocks = pem::parse_many(pem_text).map_err(|e| format!("not PEM: {e}"))?;
    let certs: Vec<CertInfo> = blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .enumerate()
        .map(|(i, b)| {
            parse_der(b.contents()).map_err(|e| format!("certificate {} of the chain: {e}", i + 1))
        })
        .collect::<Result<_, _>>()?;
    if certs.is_empty() {
        return Err("no PEM CERTIFICATE block".into());
    }
    Ok(certs)
}

/// Whether `parent` issued `child`: the names chain and `parent`'s key verifies `child`'s
/// signature.
pub fn issued_by(child: &CertInfo, parent: &CertInfo) -> bool {
    if child.issuer != parent.subject {
        return false;
    }
    let (Ok((_, child)), Ok((_, parent))) = (
        X509Certificate::from_der(&child.der),
        X509Certificate::from_der(&parent.der),
    ) else {
        return false;
    };
    child.verify_signature(Some(parent.public_key())).is_ok()
}

/// Parse one DER certificate.
pub fn parse_der(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let subject = cert.subject();
    let strings =
        |iter: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
            iter.filter_map(|a| a.as_str().ok().map(str::to_string))
                .collect::<Vec<_>>()
        };
    let mut info = CertInfo {
        der: der.to_vec(),
        serial: hex(cert.raw_serial()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        subject: subject.to_string(),
        issuer: cert.issuer().to_string(),
        common_name: subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_string),
        organizations: strings(&mut subject.iter_organization()),
        organizational_units: strings(&mut subject.iter_organizational_unit()),
        countries: strings(&mut subject.iter_country()),
        localities: strings(&mut subject.iter_locality()),
        provinces: strings(&mut subject.iter_state_or_province()),
        dns_names: BTreeSet::new(),
        ip_addresses: BTreeSet::new(),
        uris: BTreeSet::new(),
        emails: BTreeSet::new(),
        is_ca: cert.is_ca(),
        usages: BTreeSet::new(),
        key: key_info(&cert),
        public_key_info: cert.public_key().raw.to_vec(),
        subject_key_id: None,
        authority_key_id: None,
    };
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => {
                info.subject_key_id = Some(plain_hex(id.0));
            }
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                info.authority_key_id = aki.key_identifier.as_ref().map(|id| plain_hex(id.0));
            }
            _ => {}
        }
    }
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => {
                    info.dns_names.insert(d.to_string());
                }
                GeneralName::URI(u) => {
                    info.uris.insert(u.to_string());
                }
                GeneralName::RFC822Name(e) => {
                    info.emails.insert(e.to_string());
                }
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        info.ip_addresses.insert(ip);
                    }
                }
                _ => {}
            }
        }
    }
    if let Ok(Some(ku)) = cert.key_usage() {
        let ku = ku.value;
        for (set, usage) in [
            (ku.digital_signature(), KeyUsage::DigitalSignature),
            (ku.non_repudiation(), KeyUsage::ContentCommitment),
            (ku.key_encipherment(), KeyUsage::KeyEncipherment),
            (ku.data_encipherment(), KeyUsage::DataEncipherment),
            (ku.key_agreement(), KeyUsage::KeyAgreement),
            (ku.key_cert_sign(), KeyUsage::CertSign),
            (ku.crl_sign(), KeyUsage::CrlSign),
        ] {
            if set {
                info.usages.insert(usage);
            }
        }
    }
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        let eku = eku.value;
        for (set, usage) in [
            (eku.server_auth, KeyUsage::ServerAuth),
            (eku.client_auth, KeyUsage::ClientAuth),
            (eku.code_signing, KeyUsage::CodeSigning),
            (eku.email_protection, KeyUsage::EmailProtection),
            (eku.time_stamping, KeyUsage::Timestamping),
            (eku.ocsp_signing, KeyUsage::OcspSigning),
        ] {
            if set {
                info.usages.insert(usage);
            }
        }
    }
    Ok(info)
}

fn key_info(cert: &X509Certificate<'_>) -> Option<KeyInfo> {
    let spki = cert.public_key();
    if spki.algorithm.algorithm == x509_parser::oid_registry::OID_SIG_ED25519 {
        return Some(KeyInfo {
            algorithm: KeyAlgorithm::Ed25519,
            size: 0,
        });
    }
    match spki.parsed().ok()? {
        ParsedKey::RSA(rsa) => Some(KeyInfo {
            algorithm: KeyAlgorithm::Rsa,
            size: u32::try_from(rsa.key_size()).ok()?,
        }),
        // An uncompressed point is 0x04 || X || Y, so its length names the curve.
        ParsedKey::EC(point) => {
            let size = match point.data().len() {
                65 => 256,
                97 => 384,
                133 => 521,
                _ => return None,
            };
            Some(KeyInfo {
                algorithm: KeyAlgorithm::Ecdsa,
                size,
            })
        }
        _ => None,
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

/// The fingerprint of the CA certificate that signed the leaf of `chain_pem`: the first
/// certificate of the chain after the leaf, or of `ca_pem`, whose subject is the leaf's
/// issuer. None when neither has it.
pub fn issuer_fingerprint(chain_pem: &[u8], ca_pem: &[u8]) -> Option<String> {
    let chain = parse_chain(chain_pem).ok()?;
    let leaf = chain.first()?;
    let roots = parse_chain(ca_pem).unwrap_or_default();
    chain
        .iter()
        .skip(1)
        .chain(roots.iter())
        .find(|c| c.subject == leaf.issuer)
        .map(|c| fingerprint(&c.der))
}

/// SHA-256 of a DER certificate, lower-case hex without colons (`openssl x509 -fingerprint
/// -sha256` prints the same digits upper-case with colons).
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    plain_hex(&Sha256::digest(der))
}

/// Every byte as two lower-case hex digits.
pub fn plain_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex(bytes: &[u8]) -> String {
    let trimmed = match bytes.iter().position(|b| *b != 0) {
        Some(i) => &bytes[i..],
        None => &bytes[bytes.len().saturating_sub(1)..],
    };
    trimmed.iter().map(|b| format!("{b:02x}")).collect()
}
