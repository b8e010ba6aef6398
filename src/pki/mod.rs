//! X.509 and key handling: generation, encoding, CSRs, inspection and renewal-time math.
//! Everything here is pure (no Kubernetes, no clock reads).

pub mod inspect;
pub mod keys;
pub mod keystore;
pub mod outputs;
pub mod renewal;
pub mod request;
pub mod sensitive;

pub use inspect::{CertInfo, KeyInfo};
pub use keys::PrivateKey;
pub use sensitive::Sensitive;

/// PEM with LF line endings, the convention of Kubernetes Secrets and every TLS tool.
pub fn pem_lf(tag: &str, der: Vec<u8>) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(tag, der), config)
}
