//! The in-cluster CA backend: a CA certificate and key from a `kubernetes.io/tls` Secret sign
//! CSRs. Loading validates the CA and names precisely what is wrong.

use rcgen::{CertificateSigningRequestParams, Issuer};

use crate::pki::inspect::{self, CertInfo};
use crate::pki::keys::PrivateKey;
use crate::pki::request::SignRequest;
use crate::reason::{Problem, Reason};

use super::SignedChain;

/// A validated CA, ready to sign.
pub struct CaSigner {
    ca: CertInfo,
    key: PrivateKey,
    /// The CA certificate followed by its own intermediates (never a self-signed root).
    intermediates_pem: String,
    root_pem: String,
}

impl std::fmt::Debug for CaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSigner")
            .field("subject", &self.ca.subject)
            .finish_non_exhaustive()
    }
}

impl CaSigner {
    /// Validate a CA Secret's contents (`tls.crt`, `tls.key`, optional `ca.crt`) at `now`.
    pub fn load(
        tls_crt: Option<&[u8]>,
        tls_key: Option<&[u8]>,
        ca_crt: Option<&[u8]>,
        now: i64,
    ) -> Result<Self, Problem> {
        let invalid = |m: String| Problem::new(Reason::CaSecretInvalid, m);
        let tls_crt = tls_crt
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid("CA Secret has no tls.crt".into()))?;
        let tls_key = tls_key
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid("CA Secret has no tls.key".into()))?;
        let chain =
            inspect::parse_chain(tls_crt).map_err(|e| invalid(format!("CA tls.crt: {e}")))?;
        let key = std::str::from_utf8(tls_key)
            .ok()
            .and_then(|k| PrivateKey::from_pem(k).ok())
            .ok_or_else(|| invalid("CA tls.key is not a PEM private key".into()))?;
        let ca = chain[0].clone();
        if !ca.is_ca {
            return Err(Problem::new(
                Reason::NotACa,
                format!(
                    "certificate {:?} is not a CA (basicConstraints CA:FALSE)",
                    ca.subject
                ),
            ));
        }
        if key.public_key_info() != ca.public_key_info {
            return Err(Problem::new(
                Reason::CaKeyMismatch,
                "CA tls.key does not match the CA certificate",
            ));
        }
        if now >= ca.not_after {
            return Err(Problem::new(
                Reason::CaExpired,
                format!(
                    "CA certificate {:?} expired at {}",
                    ca.subject,
                    crate::controller::certificate::decide::rfc3339(ca.not_after)
                ),
            ));
        }
        let pem_of = |c: &CertInfo| pem::encode(&pem::Pem::new("CERTIFICATE", c.der.clone()));
        let intermediates_pem = chain
            .iter()
            .filter(|c| c.subject != c.issuer)
            .map(pem_of)
            .collect();
        let explicit_root = ca_crt
            .filter(|b| !b.is_empty())
            .and_then(|b| inspect::parse_chain(b).ok())
            .and_then(|mut c| c.pop());
        let root = explicit_root.unwrap_or_else(|| chain[chain.len() - 1].clone());
        Ok(CaSigner {
            root_pem: pem_of(&root),
            ca,
            key,
            intermediates_pem,
        })
    }

    pub fn not_after(&self) -> i64 {
        self.ca.not_after
    }

    /// Sign the CSR with the CA key. The CSR's signature is verified (proof of possession); the
    /// certificate's contents come from the request's parameters, not from the CSR's claims.
    pub fn sign(&self, request: &SignRequest, now: i64) -> Result<SignedChain, Problem> {
        let failed =
            |e: String| Problem::new(Reason::SigningFailed, format!("CA signing failed: {e}"));
        let mut csr = CertificateSigningRequestParams::from_pem(&request.csr_pem)
            .map_err(|e| failed(format!("invalid CSR: {e}")))?;
        csr.params = request.params.clone();
        (csr.params.not_before, csr.params.not_after) =
            super::validity(now, request, Some(self.ca.not_after)).map_err(failed)?;
        csr.params.serial_number = Some(super::random_serial());
        // Chain building needs the authority key identifier of the signing CA.
        csr.params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_ca_cert_der(&self.ca.der.clone().into(), self.key.pair())
            .map_err(|e| failed(e.to_string()))?;
        let leaf = csr.signed_by(&issuer).map_err(|e| failed(e.to_string()))?;
        Ok(SignedChain {
            chain_pem: format!("{}{}", leaf.pem(), self.intermediates_pem),
            ca_pem: self.root_pem.clone(),
        })
    }
}
