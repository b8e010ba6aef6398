//! The self-signed backend: each certificate is signed by its own key. Bootstraps root CAs.

use crate::pki::keys::PrivateKey;
use crate::pki::request::SignRequest;
use crate::reason::{Problem, Reason};

use super::SignedChain;

pub fn sign(request: &SignRequest, key: &PrivateKey, now: i64) -> Result<SignedChain, Problem> {
    let failed =
        |e: String| Problem::new(Reason::SigningFailed, format!("self-signing failed: {e}"));
    let mut params = request.params.clone();
    (params.not_before, params.not_after) = super::validity(now, request, None).map_err(failed)?;
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
