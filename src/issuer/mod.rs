//! Signers: one per issuer backend, chosen from the Issuer spec. Every backend but self-signed
//! receives only the CSR and the requested parameters, never the private key.

pub mod aws_pca;
pub mod ca;
pub mod selfsigned;
pub mod vault;

use crate::pki::inspect;
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
    /// Asynchronous: the Certificate controller drives it (submit, store, poll), not `sign`.
    AwsPca(Box<aws_pca::AwsPcaSigner>),
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
            Signer::AwsPca(_) => Err(Problem::new(
                crate::reason::Reason::SigningFailed,
                "AWS Private CA issues asynchronously; use the pending-request flow",
            )),
        }
    }

    /// The backend's name, for metric labels and messages.
    pub fn kind_label(&self) -> &'static str {
        match self {
            Signer::SelfSigned => "selfSigned",
            Signer::Ca(_) => "ca",
            Signer::Vault(_) => "vault",
            Signer::AwsPca(_) => "awsPCA",
        }
    }
}

/// `tls.crt` and `ca.crt` from a leaf and the PEM blocks of its issuing chain, in any order
/// and with duplicates: the leaf, then intermediates (roots and repeats dropped); the root (or
/// the topmost certificate given) as `ca.crt`.
pub(crate) fn assemble_chain(leaf: &str, chain_pems: &[String]) -> Result<SignedChain, String> {
    let leaf_info = inspect::parse_chain(leaf.as_bytes())
        .map_err(|e| format!("certificate: {e}"))?
        .remove(0);
    let mut seen = vec![leaf_info.der.clone()];
    let mut intermediates = Vec::new();
    let mut top = None;
    for pem_text in chain_pems.iter().filter(|p| !p.trim().is_empty()) {
        for cert in inspect::parse_chain(pem_text.as_bytes()).map_err(|e| format!("chain: {e}"))? {
            if seen.contains(&cert.der) {
                continue;
            }
            seen.push(cert.der.clone());
            if cert.subject != cert.issuer {
                intermediates.push(cert.clone());
            }
            top = Some(cert);
        }
    }
    let pem_of = |c: &inspect::CertInfo| crate::pki::pem_lf("CERTIFICATE", c.der.clone());
    let root = top
        .as_ref()
        .map(pem_of)
        .unwrap_or_else(|| pem_of(&leaf_info));
    let chain_pem = std::iter::once(pem_of(&leaf_info))
        .chain(intermediates.iter().map(pem_of))
        .collect();
    Ok(SignedChain {
        chain_pem,
        ca_pem: root,
    })
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
