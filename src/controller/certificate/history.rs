//! The bounded history of what was issued for a Certificate, and the revocations asked of it
//! (pure). Kept in status (newest first, at most [`LIMIT`]) so a superseded serial can still
//! be revoked at the issuer that signed it, and `certsmith status NAME` shows them.

use crate::api::{Certificate, IssuedCertificate, IssuerKind, RevocationReason};
use crate::issuer::IssuerId;
use crate::pki::CertInfo;
use crate::time::rfc3339;

/// Entries kept per Certificate.
pub const LIMIT: usize = 10;

/// The history entry of a certificate signed by the issuer `issuer` (`Kind/name`).
pub fn entry(leaf: &CertInfo, issuer: String, ca_fingerprint: Option<String>) -> IssuedCertificate {
    IssuedCertificate {
        serial_number: leaf.serial.clone(),
        not_before: rfc3339(leaf.not_before),
        not_after: rfc3339(leaf.not_after),
        issuer,
        ca_fingerprint,
        ..IssuedCertificate::default()
    }
}

/// `Issuer/<name>` or `ClusterIssuer/<name>`, as history entries name their issuer.
pub fn issuer_label(kind: IssuerKind, name: &str) -> String {
    format!("{}/{name}", kind.as_str())
}

/// The issuer a history entry names, for a Certificate in `namespace`.
pub fn issuer_of(entry: &IssuedCertificate, namespace: &str) -> Option<IssuerId> {
    match entry.issuer.split_once('/')? {
        ("ClusterIssuer", name) if !name.is_empty() => Some(IssuerId::cluster_issuer(name)),
        ("Issuer", name) if !name.is_empty() => Some(IssuerId::issuer(namespace, name)),
        _ => None,
    }
}

/// The history after `issued` was written into the Secret, replacing `replaced` (added when
/// the history does not have it yet, as for a certificate issued before history was kept).
/// With `revoke_superseded`, every other still-valid certificate not revoked yet is marked
/// for revocation with reason `superseded`.
pub fn record_issued(
    history: &[IssuedCertificate],
    issued: IssuedCertificate,
    replaced: Option<IssuedCertificate>,
    revoke_superseded: bool,
    now: i64,
) -> Vec<IssuedCertificate> {
    let mut next: Vec<IssuedCertificate> = history
        .iter()
        .filter(|e| e.serial_number != issued.serial_number)
        .cloned()
        .collect();
    if let Some(replaced) = replaced
        && replaced.serial_number != issued.serial_number
        && !next
            .iter()
            .any(|e| e.serial_number == replaced.serial_number)
    {
        next.insert(0, replaced);
    }
    let current = issued.serial_number.clone();
    next.insert(0, issued);
    if revoke_superseded {
        request(&mut next, Some(&current), RevocationReason::Superseded, now);
    }
    bound(next)
}

/// Mark for revocation with `reason` every still-valid certificate not revoked nor marked yet,
/// but `keep` (the one in the Secret; None: all of them). Returns how many were marked.
pub fn request(
    history: &mut [IssuedCertificate],
    keep: Option<&str>,
    reason: RevocationReason,
    now: i64,
) -> usize {
    let mut marked = 0;
    for e in history.iter_mut() {
        let valid = crate::time::parse(&e.not_after).is_none_or(|t| t > now);
        if Some(e.serial_number.as_str()) != keep
            && valid
            && e.revoked_at.is_none()
            && e.revocation_requested.is_none()
        {
            e.revocation_requested = Some(reason);
            marked += 1;
        }
    }
    marked
}

/// The entries whose revocation is asked for and not yet recorded.
pub fn pending(history: &[IssuedCertificate]) -> impl Iterator<Item = (usize, &IssuedCertificate)> {
    history
        .iter()
        .enumerate()
        .filter(|(_, e)| e.revocation_requested.is_some() && e.revoked_at.is_none())
}

/// Record that the issuer revoked entry `index`.
pub fn mark_revoked(history: &mut [IssuedCertificate], index: usize, now: i64) {
    if let Some(e) = history.get_mut(index) {
        e.revocation_reason = e.revocation_requested.take();
        e.revoked_at = Some(rfc3339(now));
    }
}

/// Whether every certificate of the history that is still valid is revoked (what deleting a
/// Certificate with `revokeOnDelete` waits for).
pub fn all_revoked(history: &[IssuedCertificate], now: i64) -> bool {
    history.iter().all(|e| {
        e.revoked_at.is_some() || crate::time::parse(&e.not_after).is_some_and(|t| t <= now)
    })
}

/// The newest [`LIMIT`] entries; when more must go, revoked and expired ones go first, so a
/// revocation still asked for is not forgotten.
fn bound(mut history: Vec<IssuedCertificate>) -> Vec<IssuedCertificate> {
    while history.len() > LIMIT {
        let settled = history
            .iter()
            .rposition(|e| e.revocation_requested.is_none())
            .unwrap_or(history.len() - 1);
        history.remove(settled);
    }
    history
}

/// The revocation policy's flags for a Certificate.
pub fn revoke_on_renewal(cert: &Certificate) -> bool {
    cert.spec
        .revocation_policy
        .as_ref()
        .is_some_and(|p| p.revoke_on_renewal)
}

pub fn revoke_on_delete(cert: &Certificate) -> bool {
    cert.spec
        .revocation_policy
        .as_ref()
        .is_some_and(|p| p.revoke_on_delete)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000;

    fn e(serial: &str, not_after: i64) -> IssuedCertificate {
        IssuedCertificate {
            serial_number: serial.into(),
            not_before: rfc3339(T0 - 10),
            not_after: rfc3339(not_after),
            issuer: "ClusterIssuer/ca".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_issuance_records_the_new_and_the_replaced_certificate_newest_first() {
        let h = record_issued(&[], e("02", T0 + 100), Some(e("01", T0 + 50)), false, T0);
        let serials: Vec<&str> = h.iter().map(|e| e.serial_number.as_str()).collect();
        assert_eq!(serials, ["02", "01"]);
        assert_eq!(pending(&h).count(), 0);
        // The same issuance recorded twice changes nothing.
        assert_eq!(
            record_issued(&h, e("02", T0 + 100), Some(e("01", T0 + 50)), false, T0),
            h
        );
    }

    #[test]
    fn revoke_on_renewal_marks_every_superseded_valid_certificate_once() {
        let h = record_issued(&[e("00", T0 - 1)], e("01", T0 + 50), None, false, T0);
        let h = record_issued(&h, e("02", T0 + 100), Some(e("01", T0 + 50)), true, T0);
        let marked: Vec<&str> = pending(&h).map(|(_, e)| e.serial_number.as_str()).collect();
        // 00 has expired: nothing to revoke.
        assert_eq!(marked, ["01"]);
        let mut h = h;
        mark_revoked(&mut h, 1, T0 + 5);
        assert_eq!(h[1].revocation_reason, Some(RevocationReason::Superseded));
        assert_eq!(h[1].revoked_at.as_deref(), Some(rfc3339(T0 + 5).as_str()));
        assert_eq!(pending(&h).count(), 0);
        // Marked and revoked ones are not marked again.
        assert_eq!(
            request(&mut h, Some("02"), RevocationReason::KeyCompromise, T0),
            0
        );
        assert!(!all_revoked(&h, T0));
        assert_eq!(
            request(&mut h, None, RevocationReason::CessationOfOperation, T0),
            1
        );
        mark_revoked(&mut h, 0, T0);
        assert!(all_revoked(&h, T0));
    }

    #[test]
    fn the_history_is_bounded_and_keeps_what_is_still_to_revoke() {
        let mut h = Vec::new();
        for i in 0..30 {
            let mut x = e(&format!("{i:02x}"), T0 + 100);
            if i == 2 {
                x.revocation_requested = Some(RevocationReason::KeyCompromise);
            }
            h = record_issued(&h, x, None, false, T0);
        }
        assert_eq!(h.len(), LIMIT);
        assert_eq!(h[0].serial_number, "1d");
        assert!(h.iter().any(|x| x.serial_number == "02"));
    }

    #[test]
    fn issuers_are_read_back_from_entries_and_nonsense_is_none() {
        let mut x = e("01", T0);
        assert_eq!(issuer_of(&x, "ns"), Some(IssuerId::cluster_issuer("ca")));
        x.issuer = "Issuer/ca".into();
        assert_eq!(issuer_of(&x, "ns"), Some(IssuerId::issuer("ns", "ca")));
        for bad in ["", "Issuer/", "Foo/ca", "ca"] {
            x.issuer = bad.into();
            assert_eq!(issuer_of(&x, "ns"), None);
        }
    }
}
