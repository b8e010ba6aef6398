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
        let pem_of = |c: &CertInfo| crate::pki::pem_lf("CERTIFICATE", c.der.clone());
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
            super::validity(now, request.duration, Some(&self.ca)).map_err(failed)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CertificateSpec, KeyAlgorithm, KeyEncoding};
    use crate::issuer::selfsigned;
    use crate::pki::request::sign_request;

    const T0: i64 = 1_800_000_000;

    fn spec(json: serde_json::Value) -> CertificateSpec {
        let mut base = serde_json::json!({"secretName": "s", "issuerRef": {"name": "i"}});
        for (k, v) in json.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    /// A self-signed certificate for `spec` and its key, as PEM.
    fn self_signed(spec: &CertificateSpec, at: i64) -> (String, String) {
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let signed = selfsigned::sign(&sign_request(spec, &key).unwrap(), &key, at).unwrap();
        (signed.chain_pem, key.to_pem(KeyEncoding::Pkcs8).unwrap())
    }

    fn load(crt: &str, key: &str, now: i64) -> Result<CaSigner, Problem> {
        CaSigner::load(Some(crt.as_bytes()), Some(key.as_bytes()), None, now)
    }

    #[test]
    fn signs_a_csr_capped_at_the_ca_expiry_with_a_chain_to_the_root() {
        let (crt, key) = self_signed(
            &spec(serde_json::json!({"commonName": "root", "isCA": true, "duration": "48h"})),
            T0,
        );
        let ca = load(&crt, &key, T0 + 10).unwrap();
        let leaf_spec = spec(serde_json::json!({"dnsNames": ["a.example"], "duration": "72h"}));
        let leaf_key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let signed = ca
            .sign(&sign_request(&leaf_spec, &leaf_key).unwrap(), T0 + 10)
            .unwrap();
        let chain = inspect::parse_chain(signed.chain_pem.as_bytes()).unwrap();
        assert_eq!(
            chain.len(),
            1,
            "a self-signed root is not repeated in tls.crt"
        );
        assert_eq!(chain[0].public_key_info, leaf_key.public_key_info());
        assert_eq!(
            chain[0].not_after,
            T0 + 48 * 3600,
            "capped at the CA's notAfter"
        );
        assert_eq!(signed.ca_pem.trim(), crt.trim());
    }

    fn sign_leaf(ca: &CaSigner, spec: &CertificateSpec, now: i64) -> CertInfo {
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let signed = ca.sign(&sign_request(spec, &key).unwrap(), now).unwrap();
        inspect::parse_chain(signed.chain_pem.as_bytes())
            .unwrap()
            .remove(0)
    }

    #[test]
    fn backdates_not_before_by_the_clock_skew_but_never_before_the_ca() {
        let (crt, key) = self_signed(
            &spec(serde_json::json!({"commonName": "root", "isCA": true, "duration": "48h"})),
            T0 - 3600,
        );
        let ca = load(&crt, &key, T0).unwrap();
        let leaf_spec = spec(serde_json::json!({"dnsNames": ["a.example"], "duration": "24h"}));
        let leaf = sign_leaf(&ca, &leaf_spec, T0);
        assert_eq!(leaf.not_before, T0 - 30, "backdated by the documented skew");
        assert_eq!(leaf.not_after, T0 + 86400, "the duration counts from now");
        // Right after the CA was made, the leaf starts with the CA, not before it.
        let ca_not_before = inspect::parse_chain(crt.as_bytes()).unwrap()[0].not_before;
        let early = sign_leaf(&ca, &leaf_spec, ca_not_before + 10);
        assert_eq!(early.not_before, ca_not_before);
        assert_eq!(early.not_after, ca_not_before + 10 + 86400);
        // A short lifetime is backdated less (see `NOT_BEFORE_SKEW_DIVISOR`).
        let short = spec(serde_json::json!({"dnsNames": ["a.example"], "duration": "5m"}));
        assert_eq!(sign_leaf(&ca, &short, T0).not_before, T0 - 1);
    }

    #[test]
    fn names_what_is_wrong_with_a_ca_secret() {
        let (root, root_key) = self_signed(
            &spec(serde_json::json!({"commonName": "root", "isCA": true, "duration": "1h"})),
            T0,
        );
        let (leaf, leaf_key) = self_signed(&spec(serde_json::json!({"commonName": "leaf"})), T0);
        let reason = |r: Result<CaSigner, Problem>| r.map(|_| ()).unwrap_err().reason;
        assert_eq!(reason(load(&leaf, &leaf_key, T0)), Reason::NotACa);
        assert_eq!(reason(load(&root, &leaf_key, T0)), Reason::CaKeyMismatch);
        assert_eq!(reason(load(&root, &root_key, T0 + 7200)), Reason::CaExpired);
        assert_eq!(
            reason(CaSigner::load(None, Some(root_key.as_bytes()), None, T0)),
            Reason::CaSecretInvalid
        );
        assert_eq!(
            reason(load("garbage", &root_key, T0)),
            Reason::CaSecretInvalid
        );
        let err = load(
            &root,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            T0,
        )
        .unwrap_err();
        assert!(
            !err.message.contains("AAAA"),
            "key material never reaches messages"
        );
    }
}
