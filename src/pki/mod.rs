//! X.509 and key handling: generation, encoding, CSRs, inspection and renewal-time math.
//! Everything here is pure (no Kubernetes, no clock reads).

pub mod inspect;
pub mod keys;
pub mod renewal;
pub mod request;

pub use inspect::{CertInfo, KeyInfo};
pub use keys::PrivateKey;
