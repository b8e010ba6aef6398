//! Private keys: generate in-process, encode as PKCS#8 or PKCS#1/SEC 1, parse back.
//!
//! [`PrivateKey`] never prints its material: `Debug` is redacted and there is no `Display`,
//! so a key cannot end up in a log line, an Event or an error by accident.

use std::fmt;

use pkcs8::der::{Decode, Encode};
use rcgen::{KeyPair, PublicKeyData};

use crate::api::{KeyAlgorithm, KeyEncoding};

/// A private key generated or loaded by the operator.
pub struct PrivateKey {
    pair: KeyPair,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.pair.algorithm())
            .finish_non_exhaustive()
    }
}

/// Why a key could not be generated or read. Never carries key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("unsupported key: {0}")]
    Unsupported(String),
    #[error("key generation failed: {0}")]
    Generation(String),
    #[error("tls.key is not a PEM private key (PKCS#8, PKCS#1 or SEC 1)")]
    Unparseable,
}

impl PrivateKey {
    /// Generate a fresh key pair of the requested algorithm and size.
    pub fn generate(algorithm: KeyAlgorithm, size: u32) -> Result<Self, KeyError> {
        let pair = match (algorithm, size) {
            (KeyAlgorithm::Ecdsa, 256) => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            (KeyAlgorithm::Ecdsa, 384) => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            (KeyAlgorithm::Ecdsa, 521) => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512),
            (KeyAlgorithm::Ed25519, _) => KeyPair::generate_for(&rcgen::PKCS_ED25519),
            (KeyAlgorithm::Rsa, bits) => return generate_rsa(bits),
            (KeyAlgorithm::Ecdsa, other) => {
                return Err(KeyError::Unsupported(format!("ECDSA size {other}")));
            }
        };
        pair.map(|pair| PrivateKey { pair })
            .map_err(|e| KeyError::Generation(e.to_string()))
    }

    /// Parse a PEM key as found in a Secret's `tls.key`.
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let parsed = pem::parse(pem_text).map_err(|_| KeyError::Unparseable)?;
        let der = match parsed.tag() {
            "PRIVATE KEY" => parsed.contents().to_vec(),
            "RSA PRIVATE KEY" => wrap_pkcs1_rsa(parsed.contents())?,
            "EC PRIVATE KEY" => wrap_sec1_ec(parsed.contents())?,
            _ => return Err(KeyError::Unparseable),
        };
        let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der);
        let pair = KeyPair::try_from(&rustls_pki_types::PrivateKeyDer::Pkcs8(pkcs8))
            .map_err(|_| KeyError::Unparseable)?;
        Ok(PrivateKey { pair })
    }

    /// The signing key, for building CSRs and self-signed certificates.
    pub fn pair(&self) -> &KeyPair {
        &self.pair
    }

    /// DER SubjectPublicKeyInfo, to compare against a certificate's public key.
    pub fn public_key_info(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    /// PKCS#8 (v1) DER, for keystores.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        let info = pkcs8::PrivateKeyInfo::from_der(self.pair.serialized_der())
            .map_err(|e| KeyError::Unsupported(e.to_string()))?;
        pkcs8_v1(info)
    }

    /// PEM encoding for `tls.key`.
    pub fn to_pem(&self, encoding: KeyEncoding) -> Result<String, KeyError> {
        let info = pkcs8::PrivateKeyInfo::from_der(self.pair.serialized_der())
            .map_err(|e| KeyError::Unsupported(e.to_string()))?;
        if encoding == KeyEncoding::Pkcs8 {
            return Ok(super::pem_lf("PRIVATE KEY", pkcs8_v1(info)?));
        }
        let oid = info.algorithm.oid;
        if oid == RSA_ENCRYPTION {
            // PKCS#8 wraps the PKCS#1 RSAPrivateKey verbatim.
            return Ok(super::pem_lf("RSA PRIVATE KEY", info.private_key.to_vec()));
        }
        if oid == EC_PUBLIC_KEY {
            // SEC 1 needs the curve inside the structure, which PKCS#8 keeps outside.
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|e| KeyError::Unsupported(e.to_string()))?;
            let mut ec = sec1::EcPrivateKey::from_der(info.private_key)
                .map_err(|e| KeyError::Unsupported(e.to_string()))?;
            ec.parameters = Some(sec1::EcParameters::NamedCurve(curve));
            let der = ec
                .to_der()
                .map_err(|e| KeyError::Unsupported(e.to_string()))?;
            return Ok(super::pem_lf("EC PRIVATE KEY", der));
        }
        Err(KeyError::Unsupported(
            "PKCS1 encoding applies to RSA and ECDSA keys only".into(),
        ))
    }
}

/// A CA's key signs through rcgen's `Issuer`, which then owns it: the key stays behind this
/// type's redacted `Debug`.
impl rcgen::PublicKeyData for PrivateKey {
    fn der_bytes(&self) -> &[u8] {
        self.pair.der_bytes()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.pair.algorithm()
    }
}

impl rcgen::SigningKey for PrivateKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.pair.sign(message)
    }
}

const RSA_ENCRYPTION: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// PKCS#8 version 1 (RFC 5208: the private key alone), as OpenSSL, Go's crypto/x509 and
/// Python write it and every reader accepts. aws-lc-rs serializes Ed25519 keys as version 2
/// (RFC 5958, with the public key), which OpenSSL 3.0 ("unsupported") and Python's
/// `cryptography` refuse. The public key follows from the private one, so nothing is lost.
fn pkcs8_v1(info: pkcs8::PrivateKeyInfo<'_>) -> Result<Vec<u8>, KeyError> {
    let v1 = pkcs8::PrivateKeyInfo {
        public_key: None,
        ..info
    };
    v1.to_der()
        .map_err(|e| KeyError::Unsupported(e.to_string()))
}

fn generate_rsa(bits: u32) -> Result<PrivateKey, KeyError> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
    let size = match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        8192 => KeySize::Rsa8192,
        other => return Err(KeyError::Unsupported(format!("RSA size {other}"))),
    };
    // rcgen only generates up to 4096 bits, so generate with aws-lc-rs and hand rcgen the PKCS#8.
    let key =
        PrivateDecryptingKey::generate(size).map_err(|e| KeyError::Generation(e.to_string()))?;
    let der = key
        .as_der()
        .map_err(|e| KeyError::Generation(e.to_string()))?;
    let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_ref().to_vec());
    let pair = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| KeyError::Generation(e.to_string()))?;
    Ok(PrivateKey { pair })
}

fn wrap_pkcs1_rsa(pkcs1: &[u8]) -> Result<Vec<u8>, KeyError> {
    let info = pkcs8::PrivateKeyInfo {
        algorithm: pkcs8::AlgorithmIdentifierRef {
            oid: RSA_ENCRYPTION,
            parameters: Some(pkcs8::der::asn1::AnyRef::NULL),
        },
        private_key: pkcs1,
        public_key: None,
    };
    info.to_der().map_err(|_| KeyError::Unparseable)
}

fn wrap_sec1_ec(sec1_der: &[u8]) -> Result<Vec<u8>, KeyError> {
    let ec = sec1::EcPrivateKey::from_der(sec1_der).map_err(|_| KeyError::Unparseable)?;
    let curve = match ec.parameters {
        Some(sec1::EcParameters::NamedCurve(oid)) => oid,
        None => return Err(KeyError::Unparseable),
    };
    let curve_any = pkcs8::der::asn1::AnyRef::from(&curve);
    let info = pkcs8::PrivateKeyInfo {
        algorithm: pkcs8::AlgorithmIdentifierRef {
            oid: EC_PUBLIC_KEY,
            parameters: Some(curve_any),
        },
        private_key: sec1_der,
        public_key: None,
    };
    info.to_der().map_err(|_| KeyError::Unparseable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(algorithm: KeyAlgorithm, size: u32, encoding: KeyEncoding, label: &str) {
        let key = PrivateKey::generate(algorithm, size).unwrap();
        let pem_text = key.to_pem(encoding).unwrap();
        assert!(
            pem_text.starts_with(&format!("-----BEGIN {label}-----")),
            "{pem_text}"
        );
        let back = PrivateKey::from_pem(&pem_text).unwrap();
        assert_eq!(back.public_key_info(), key.public_key_info());
    }

    #[test]
    fn ecdsa_keys_roundtrip_in_both_encodings() {
        for size in [256, 384, 521] {
            roundtrip(KeyAlgorithm::Ecdsa, size, KeyEncoding::Pkcs8, "PRIVATE KEY");
            roundtrip(
                KeyAlgorithm::Ecdsa,
                size,
                KeyEncoding::Pkcs1,
                "EC PRIVATE KEY",
            );
        }
    }

    #[test]
    fn rsa_keys_roundtrip_in_both_encodings() {
        roundtrip(KeyAlgorithm::Rsa, 2048, KeyEncoding::Pkcs8, "PRIVATE KEY");
        roundtrip(
            KeyAlgorithm::Rsa,
            2048,
            KeyEncoding::Pkcs1,
            "RSA PRIVATE KEY",
        );
    }

    #[test]
    fn ed25519_is_pkcs8_only() {
        roundtrip(KeyAlgorithm::Ed25519, 0, KeyEncoding::Pkcs8, "PRIVATE KEY");
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519, 0).unwrap();
        assert!(key.to_pem(KeyEncoding::Pkcs1).is_err());
    }

    /// PKCS#8 as OpenSSL, Go and Python write it: version 0, no public key. OpenSSL 3.0 and
    /// Python's `cryptography` refuse the version 1 form (with the public key).
    #[test]
    fn pkcs8_keys_are_version_1_without_a_public_key() {
        for (algorithm, size) in [
            (KeyAlgorithm::Ecdsa, 256),
            (KeyAlgorithm::Ecdsa, 384),
            (KeyAlgorithm::Ecdsa, 521),
            (KeyAlgorithm::Rsa, 2048),
            (KeyAlgorithm::Ed25519, 0),
        ] {
            let key = PrivateKey::generate(algorithm, size).unwrap();
            let pem_text = key.to_pem(KeyEncoding::Pkcs8).unwrap();
            let der = pem::parse(&pem_text).unwrap().into_contents();
            let info = pkcs8::PrivateKeyInfo::from_der(&der).unwrap();
            assert_eq!(info.version(), pkcs8::Version::V1, "{algorithm:?} {size}");
            assert!(info.public_key.is_none(), "{algorithm:?} {size}");
        }
    }

    /// Keys written before (PKCS#8 version 2 with the public key) must still load.
    #[test]
    fn pkcs8_version_2_keys_are_still_read() {
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519, 0).unwrap();
        let der = key.pair().serialized_der().to_vec();
        let info = pkcs8::PrivateKeyInfo::from_der(&der).unwrap();
        assert_eq!(
            info.version(),
            pkcs8::Version::V2,
            "aws-lc-rs writes version 2"
        );
        let back = PrivateKey::from_pem(&crate::pki::pem_lf("PRIVATE KEY", der)).unwrap();
        assert_eq!(back.public_key_info(), key.public_key_info());
    }

    #[test]
    fn every_generation_is_a_new_key() {
        let a = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let b = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        assert_ne!(a.public_key_info(), b.public_key_info());
    }

    #[test]
    fn debug_output_is_redacted() {
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let pem_text = key.to_pem(KeyEncoding::Pkcs8).unwrap();
        let body: String = pem_text.lines().nth(1).unwrap().chars().take(16).collect();
        assert!(!format!("{key:?}").contains(&body));
    }

    #[test]
    fn garbage_is_rejected_without_echoing_it() {
        let err =
            PrivateKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .unwrap_err();
        assert!(!err.to_string().contains("AAAA"));
    }
}
