//! Signers: one per issuer backend, chosen from the Issuer spec. Every backend but self-signed
//! receives only the CSR and the requested parameters, never the private key.

pub mod ca;
pub mod selfsigned;
pub mod vault;

use crate::pki::keys::PrivateKey;
use crate::pki::request::SignRequest;
use crate::reason::Problem;

/// What a signer returns, in PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedChain {
    /// The leaf followed by intermediates (no root, no duplicates): `tls.crt`.
    pub chain_pem: String,
    /// The root of the issuing chain: `ca.crt`.
    pub ca_pem: String,
}

/// A ready-to-use backend. Future backends (Vault, AWS Private CA) are further variants; the
/// enum is the factory's output and the only place that dispatches on the backend.
#[derive(Debug)]
pub enum Signer {
    SelfSigned,
    Ca(Box<ca::CaSigner>),
    Vault(Box<vault::VaultSigner>),
}

impl Signer {
    /// Sign `request`. `key` is used only by the self-signed backend, which signs the
    /// certificate with its own key; remote backends see `request` alone.
    pub async fn sign(
        &self,
        request: &SignRequest,
        key: &PrivateKey,
        now: i64,
    ) -> Result<SignedChain, Problem> {
        match self {
            Signer::SelfSigned => selfsigned::sign(request, key, now),
            Signer::Ca(ca) => ca.sign(request, now),
            Signer::Vault(v) => v.sign(request).await,
        }
    }

    /// The backend's name, for metric labels and messages.
    pub fn kind_label(&self) -> &'static str {
        match self {
            Signer::SelfSigned => "selfSigned",
            Signer::Ca(_) => "ca",
            Signer::Vault(_) => "vault",
        }
    }
}

/// Validity window for a new certificate: from now, for the requested duration, never beyond
/// `cap` (the signing CA's own expiry).
pub(crate) fn validity(
    now: i64,
    request: &SignRequest,
    cap: Option<i64>,
) -> Result<(time::OffsetDateTime, time::OffsetDateTime), String> {
    let requested = i64::try_from(request.duration.as_secs()).unwrap_or(i64::MAX);
    let mut not_after = now.saturating_add(requested);
    if let Some(cap) = cap {
        not_after = not_after.min(cap);
    }
    let from = time::OffsetDateTime::from_unix_timestamp(now).map_err(|e| e.to_string())?;
    let to = time::OffsetDateTime::from_unix_timestamp(not_after).map_err(|e| e.to_string())?;
    Ok((from, to))
}

/// A random positive 128-bit serial number.
pub(crate) fn random_serial() -> rcgen::SerialNumber {
    let mut bytes = [0u8; 16];
    // aws-lc-rs' system random; on failure fall back to time-derived bytes rather than panic.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_be_bytes();
    }
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    rcgen::SerialNumber::from_slice(&bytes)
}
