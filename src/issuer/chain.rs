//! What every backend shares: the signed chain (`tls.crt` and `ca.crt`), assembling it from
//! what a CA returned, the validity window of a new certificate, and serial numbers.

use crate::pki::inspect;

/// What a signer returns, in PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedChain {
    /// The leaf followed by intermediates (no root, no duplicates): `tls.crt`.
    pub chain_pem: String,
    /// The root of the issuing chain: `ca.crt`.
    pub ca_pem: String,
}

/// `tls.crt` and `ca.crt` from a leaf and the PEM blocks of its issuing chain, in any order
/// and with duplicates: the leaf, then intermediates (roots and repeats dropped); the root (or
/// the topmost certificate given) as `ca.crt`.
pub fn assemble_chain(leaf: &str, chain_pems: &[String]) -> Result<SignedChain, String> {
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

/// How far before the moment of signing a new certificate becomes valid, so that a relying
/// party whose clock runs a little behind the operator's accepts a fresh certificate at once
/// instead of calling it "not yet valid". 30 s is Vault's default (`not_before_duration`), so
/// certificates from the CA, self-signed and Vault issuers look alike.
pub const NOT_BEFORE_SKEW_SECS: i64 = 30;
/// ... but never more than 1/200 of the requested duration (so 30 s from 100 minutes on, 18 s
/// for an hour, 1 s for the 5-minute minimum). Renewal is computed from the issued lifetime,
/// notBefore to notAfter, which backdating lengthens: a percentage or the default 2/3 then
/// renews earlier by up to the backdating. Bounded so, a renewal moves by at most 0.5% of the
/// duration (the demo's 5-minute certificates at 90% still renew after 30 s, not after 3 s as
/// with a flat 30 s), and a fresh certificate's renewal time, jitter included, stays after its
/// issuance for every renewBeforePercentage (a flat 30 s would make `duration: 5m` with
/// `renewBeforePercentage: 99` due at once, re-issuing in a loop).
const NOT_BEFORE_SKEW_DIVISOR: i64 = 200;

/// Validity window for a new certificate signed at `now`: backdated by the clock skew, valid
/// for the requested `duration` from `now`, and within the validity of `issuer` (the signing
/// CA's certificate; `None` when self-signed), since no certificate should claim validity
/// where its issuer has none.
pub fn validity(
    now: i64,
    duration: std::time::Duration,
    issuer: Option<&inspect::CertInfo>,
) -> Result<(time::OffsetDateTime, time::OffsetDateTime), String> {
    let requested = i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
    let skew = NOT_BEFORE_SKEW_SECS.min(requested / NOT_BEFORE_SKEW_DIVISOR);
    let mut not_before = now.saturating_sub(skew);
    let mut not_after = now.saturating_add(requested);
    if let Some(ca) = issuer {
        not_before = not_before.max(ca.not_before);
        not_after = not_after.min(ca.not_after);
    }
    let from = time::OffsetDateTime::from_unix_timestamp(not_before).map_err(|e| e.to_string())?;
    let to = time::OffsetDateTime::from_unix_timestamp(not_after).map_err(|e| e.to_string())?;
    Ok((from, to))
}

/// A random positive 128-bit serial number.
pub fn random_serial() -> rcgen::SerialNumber {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::renewal::{self, JITTER_SHARE, RenewBefore};

    const T0: i64 = 1_800_000_000;

    fn window(duration: i64) -> (i64, i64) {
        let (from, to) =
            validity(T0, std::time::Duration::from_secs(duration as u64), None).unwrap();
        (from.unix_timestamp(), to.unix_timestamp())
    }

    #[test]
    fn the_skew_is_30_seconds_or_a_200th_of_the_duration() {
        assert_eq!(window(86400), (T0 - 30, T0 + 86400));
        assert_eq!(window(6000), (T0 - 30, T0 + 6000));
        assert_eq!(window(3600), (T0 - 18, T0 + 3600));
        assert_eq!(window(300), (T0 - 1, T0 + 300), "the 5-minute minimum");
    }

    /// The earliest renewal time of a certificate valid from `not_before` to `not_after`: the
    /// base time minus the largest jitter.
    fn earliest_renewal(not_before: i64, not_after: i64, renew_before: RenewBefore) -> i64 {
        let base = renewal::base_renewal_time(not_before, not_after, renew_before);
        base - ((base - not_before) as f64 * JITTER_SHARE) as i64
    }

    /// Backdating lengthens the lifetime renewal is computed from. Whatever the duration and
    /// the renew setting, a fresh certificate's renewal moves earlier by at most 1/200 of its
    /// duration, and with a percentage or the default it still comes after issuance, so the
    /// certificate is not re-issued at once.
    #[test]
    fn backdating_barely_moves_renewal_and_never_before_issuance() {
        for duration in (300..=7200).chain([86400, 90 * 86400]) {
            let (not_before, not_after) = window(duration);
            let percentages = (1..=99).map(RenewBefore::Percentage);
            let durations = [1, duration / 2, duration - 1].map(RenewBefore::Duration);
            for renew_before in percentages.chain([RenewBefore::Default]).chain(durations) {
                let renews = earliest_renewal(not_before, not_after, renew_before);
                let unshifted = earliest_renewal(T0, not_after, renew_before);
                assert!(
                    unshifted - renews <= duration / NOT_BEFORE_SKEW_DIVISOR + 1,
                    "{duration} s, {renew_before:?}: {} s earlier",
                    unshifted - renews
                );
                if !matches!(renew_before, RenewBefore::Duration(_)) {
                    assert!(
                        renews > T0,
                        "{duration} s, {renew_before:?}: due {} s after issuance",
                        renews - T0
                    );
                }
            }
        }
    }
}
