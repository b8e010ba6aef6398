//! The self-signed backend: each certificate is signed by its own key. Bootstraps root CAs.

use crate::pki::keys::PrivateKey;
use crate::pki::request::SignRequest;
use crate::reason::{Problem, Reason};

use super::SignedChain;

/// Sign `request` with its own key. Backdated like a CA-issued certificate: a self-signed
/// root's validity is checked by OpenSSL and Go as any other certificate's, and a CA issuer
/// on it can backdate its leaves only as far as the root's notBefore.
pub fn sign(request: &SignRequest, key: &PrivateKey, now: i64) -> Result<SignedChain, Problem> {
    let failed =
        |e: String| Problem::new(Reason::SigningFailed, format!("self-signing failed: {e}"));
    let mut params = request.params.clone();
    (params.not_before, params.not_after) =
        super::validity(now, request.duration, None).map_err(failed)?;
    params.serial_number = Some(super::random_serial());
    // A self-signed certificate has no separate authority key to identify.
    params.use_authority_key_identifier_extension = false;
    let cert = params
        .self_signed(key.pair())
        .map_err(|e| failed(e.to_string()))?;
    Ok(SignedChain {
        chain_pem: cert.pem(),
        ca_pem: cert.pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CertificateSpec, KeyAlgorithm};
    use crate::pki::inspect::parse_chain;
    use crate::pki::request::sign_request;

    const T0: i64 = 1_800_000_000;

    #[test]
    fn backdates_not_before_by_the_clock_skew() {
        let spec: CertificateSpec = serde_json::from_value(serde_json::json!({
            "secretName": "s", "issuerRef": {"name": "i"}, "commonName": "root",
            "isCA": true, "duration": "24h",
        }))
        .unwrap();
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let signed = sign(&sign_request(&spec, &key).unwrap(), &key, T0).unwrap();
        let cert = parse_chain(signed.chain_pem.as_bytes()).unwrap().remove(0);
        assert_eq!(cert.not_before, T0 - 30, "backdated by the documented skew");
        assert_eq!(cert.not_after, T0 + 86400, "the duration counts from now");
    }
}
