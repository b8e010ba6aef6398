//! What an emergency rotation asks for and where each Certificate of it stands (pure).

use std::collections::BTreeMap;

use crate::api::conditions::{self, RECONCILING, STALLED};
use crate::api::{
    CertificateStatus, DEFAULT_EMERGENCY_ROTATION_RATE, EMERGENCY_ROTATION_ANNOTATION,
    EMERGENCY_ROTATION_RATE_ANNOTATION, EMERGENCY_ROTATION_REASON_ANNOTATION,
    EMERGENCY_ROTATION_REVOKE_ANNOTATION, RENEW_ANNOTATION, RevocationReason,
};

/// The most Certificates per second a rotation may ask for.
pub const MAX_RATE: u32 = 1000;
/// The longest request value taken (annotation values are otherwise unbounded).
const MAX_REQUEST_LEN: usize = 128;

/// An emergency rotation as the issuer's annotations ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: String,
    pub revoke: bool,
    pub rate: u32,
    pub reason: RevocationReason,
}

impl Request {
    /// The value set as each Certificate's renew (and revoke) request: unique per issuer and
    /// rotation, so a Certificate's status says whether this rotation re-issued it.
    pub fn certificate_request(&self, issuer: &str) -> String {
        format!("emergency-rotation {issuer} {}", self.id)
    }
}

/// The rotation the annotations ask for, if any. A rate that is not a number from 1 to
/// [`MAX_RATE`] (optionally `N/s`) is the default; an unknown reason is `superseded`.
pub fn request(annotations: &BTreeMap<String, String>) -> Option<Request> {
    let id = annotations.get(EMERGENCY_ROTATION_ANNOTATION)?.trim();
    if id.is_empty() {
        return None;
    }
    let id: String = id.chars().take(MAX_REQUEST_LEN).collect();
    let rate = annotations
        .get(EMERGENCY_ROTATION_RATE_ANNOTATION)
        .and_then(|r| parse_rate(r))
        .unwrap_or(DEFAULT_EMERGENCY_ROTATION_RATE);
    Some(Request {
        id,
        revoke: annotations
            .get(EMERGENCY_ROTATION_REVOKE_ANNOTATION)
            .is_some_and(|v| v.trim() == "true"),
        rate,
        reason: annotations
            .get(EMERGENCY_ROTATION_REASON_ANNOTATION)
            .and_then(|r| RevocationReason::parse(r.trim()))
            .unwrap_or(RevocationReason::Superseded),
    })
}

/// `10` or `10/s`, from 1 to [`MAX_RATE`].
pub fn parse_rate(text: &str) -> Option<u32> {
    let n: u32 = text.trim().trim_end_matches("/s").trim().parse().ok()?;
    (1..=MAX_RATE).contains(&n).then_some(n)
}

/// Where one Certificate stands in a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not asked yet.
    Waiting,
    /// Asked; the re-issuance (or the revocation after it) is under way.
    Underway,
    /// Re-issued for this rotation (and, with revoke, what it replaced revoked).
    Done,
    /// Asked, and its issuance or revocation is failing now (the operator retries).
    Failing,
}

/// Where a Certificate with `annotations` and `status` stands in the rotation whose
/// Certificate request value is `value`.
pub fn state(
    annotations: &BTreeMap<String, String>,
    status: &CertificateStatus,
    value: &str,
    revoke: bool,
) -> State {
    if annotations.get(RENEW_ANNOTATION).map(String::as_str) != Some(value) {
        return State::Waiting;
    }
    let reissued = status.last_renew_request.as_deref() == Some(value);
    let revoked = !revoke
        || (status.last_revoke_request.as_deref() == Some(value)
            && !status
                .history
                .iter()
                .any(|e| e.revocation_requested.is_some() && e.revoked_at.is_none()));
    if reissued && revoked {
        return State::Done;
    }
    let failing = [RECONCILING, STALLED]
        .iter()
        .any(|t| conditions::find(&status.conditions, t).is_some_and(|c| c.status == "True"));
    if failing {
        State::Failing
    } else {
        State::Underway
    }
}

/// How many more Certificates may be asked now, `elapsed` seconds into a rotation at `rate`
/// per second with `asked` asked so far: the rate's share of the time so far (one second's
/// worth at the start), never more than one second's worth at once, so a late tick or a
/// restart does not burst.
pub fn allowance(elapsed: i64, rate: u32, asked: usize) -> usize {
    let seconds = u64::try_from(elapsed.max(0)).unwrap_or(0).saturating_add(1);
    let allowed = u64::from(rate).saturating_mul(seconds);
    let asked = u64::try_from(asked).unwrap_or(u64::MAX);
    let due = allowed.saturating_sub(asked).min(u64::from(rate));
    usize::try_from(due).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Condition, IssuedCertificate};

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_request_is_read_from_annotations_with_safe_defaults() {
        assert_eq!(request(&annotations(&[])), None);
        assert_eq!(
            request(&annotations(&[(EMERGENCY_ROTATION_ANNOTATION, " ")])),
            None
        );
        let r = request(&annotations(&[
            (EMERGENCY_ROTATION_ANNOTATION, "t1"),
            (EMERGENCY_ROTATION_REVOKE_ANNOTATION, "true"),
            (EMERGENCY_ROTATION_RATE_ANNOTATION, "25/s"),
            (EMERGENCY_ROTATION_REASON_ANNOTATION, "keyCompromise"),
        ]))
        .expect("request");
        assert_eq!(
            r,
            Request {
                id: "t1".into(),
                revoke: true,
                rate: 25,
                reason: RevocationReason::KeyCompromise
            }
        );
        for bad in ["0", "-1", "lots", "1001", ""] {
            let r = request(&annotations(&[
                (EMERGENCY_ROTATION_ANNOTATION, "t1"),
                (EMERGENCY_ROTATION_RATE_ANNOTATION, bad),
                (EMERGENCY_ROTATION_REASON_ANNOTATION, "nonsense"),
            ]))
            .expect("request");
            assert_eq!(r.rate, DEFAULT_EMERGENCY_ROTATION_RATE, "{bad}");
            assert_eq!(r.reason, RevocationReason::Superseded);
            assert!(!r.revoke);
        }
        let huge = "x".repeat(100_000);
        let r = request(&annotations(&[(EMERGENCY_ROTATION_ANNOTATION, &huge)])).expect("r");
        assert_eq!(r.id.len(), MAX_REQUEST_LEN);
    }

    #[test]
    fn certificates_move_from_waiting_to_done_and_failures_show() {
        let value = "emergency-rotation Issuer/ca t1";
        let mut status = CertificateStatus::default();
        assert_eq!(
            state(&annotations(&[]), &status, value, true),
            State::Waiting
        );
        let asked = annotations(&[(RENEW_ANNOTATION, value)]);
        assert_eq!(state(&asked, &status, value, true), State::Underway);
        status.conditions.push(Condition {
            type_: RECONCILING.into(),
            status: "True".into(),
            reason: "IssuerNotReady".into(),
            message: String::new(),
            last_transition_time: String::new(),
            observed_generation: None,
        });
        assert_eq!(state(&asked, &status, value, true), State::Failing);
        status.conditions.clear();
        status.last_renew_request = Some(value.into());
        assert_eq!(state(&asked, &status, value, false), State::Done);
        // With revoke, done only once the superseded certificate is revoked.
        assert_eq!(state(&asked, &status, value, true), State::Underway);
        status.last_revoke_request = Some(value.into());
        status.history.push(IssuedCertificate {
            revocation_requested: Some(RevocationReason::Superseded),
            ..Default::default()
        });
        assert_eq!(state(&asked, &status, value, true), State::Underway);
        status.history[0].revoked_at = Some("t".into());
        assert_eq!(state(&asked, &status, value, true), State::Done);
    }

    #[test]
    fn the_pace_never_exceeds_the_rate_and_never_bursts() {
        assert_eq!(allowance(0, 10, 0), 10);
        assert_eq!(allowance(0, 10, 10), 0);
        assert_eq!(allowance(1, 10, 10), 10);
        assert_eq!(allowance(1, 10, 15), 5);
        // Thirty seconds late (a restart): still one second's worth.
        assert_eq!(allowance(30, 10, 10), 10);
        // A clock that went backwards asks for nothing more than the first second's worth.
        assert_eq!(allowance(-100, 10, 10), 0);
        // Over n seconds, at most rate * (n + 1) in all.
        let mut asked = 0;
        for second in 0..20 {
            asked += allowance(second, 7, asked);
            assert!(asked as i64 <= 7 * (second + 1));
        }
        assert_eq!(asked, 140);
    }
}
