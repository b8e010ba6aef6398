//! Where a CA issuer's rotation stands (pure): from the CAs its Secret holds, what its status
//! remembered, the authority key identifiers of its Ready leaves and the time. The status is
//! the rotation's memory: it keeps the active CA's certificate, so a CA replaced out of band
//! can still be published while leaves move off it.

use crate::api::{CaRotationStatus, CaSummary};
use crate::issuer::ca::RotationSettings;
use crate::pki::inspect::CertInfo;
use crate::time::rfc3339;

pub const STABLE: &str = "Stable";
pub const PUBLISHING: &str = "Publishing";
pub const MOVING_LEAVES: &str = "MovingLeaves";
pub const RETIRED: &str = "Retired";
pub const PHASES: [&str; 4] = [STABLE, PUBLISHING, MOVING_LEAVES, RETIRED];

/// How often a rotation in progress is looked at again (leaf counts come from the cache).
pub const RECHECK_SECS: i64 = 5;

/// The CAs the issuer's Secret holds, as the CA backend loaded them.
#[derive(Debug, Clone, Copy)]
pub struct CaFacts<'a> {
    pub signing: &'a CertInfo,
    /// A renewed CA being published, signing from `activates_at`.
    pub next: Option<&'a CertInfo>,
    /// The CA a managed rotation replaced.
    pub previous: Option<&'a CertInfo>,
    pub activates_at: Option<i64>,
}

/// The rotation's state, and when to look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub status: CaRotationStatus,
    /// The CA that signs once `next` (if any) is active, and since when leaves move to it.
    pub moving_since: i64,
    pub recheck_in: Option<i64>,
}

pub fn summary(ca: &CertInfo) -> CaSummary {
    CaSummary {
        fingerprint: crate::controller::trust_bundle::fingerprint(&ca.der),
        key_id: ca.subject_key_id.clone(),
        not_after: rfc3339(ca.not_after),
        certificate: crate::pki::pem_lf("CERTIFICATE", ca.der.clone()),
    }
}

fn expired(ca: &CaSummary, now: i64) -> bool {
    crate::time::parse(&ca.not_after).is_none_or(|t| now >= t)
}

/// `leaves`: the authority key identifier of each Ready leaf of the issuer (None: unknown).
pub fn plan(
    ca: &CaFacts<'_>,
    last: Option<&CaRotationStatus>,
    leaves: &[Option<String>],
    settings: &RotationSettings,
    now: i64,
) -> Plan {
    let active = summary(ca.signing);
    let count = |previous: Option<&CaSummary>| {
        let (mut on_active, mut on_previous, mut unknown) = (0u32, 0u32, 0u32);
        for aki in leaves {
            let is = |s: Option<&CaSummary>| {
                aki.is_some() && s.is_some_and(|s| s.key_id.is_some() && s.key_id == *aki)
            };
            if is(Some(&active)) {
                on_active += 1;
            } else if is(previous) {
                on_previous += 1;
            } else {
                unknown += 1;
            }
        }
        (on_active, on_previous, unknown)
    };
    let base = |phase: &str, previous: Option<CaSummary>| {
        let (on_active, on_previous, unknown) = count(previous.as_ref());
        CaRotationStatus {
            phase: phase.into(),
            active: Some(active.clone()),
            next: None,
            previous,
            activates_at: None,
            out_of_band: false,
            leaves_on_active: on_active,
            leaves_on_previous: on_previous,
            leaves_unknown: unknown,
            leaves_moved_at: None,
        }
    };

    // A renewed CA is published and waits out the delay; the current one keeps signing.
    if let (Some(next), Some(at)) = (ca.next, ca.activates_at) {
        let mut status = base(PUBLISHING, None);
        status.next = Some(summary(next));
        status.activates_at = Some(rfc3339(at));
        return Plan {
            status,
            moving_since: at,
            recheck_in: Some((at - now).max(1)),
        };
    }

    // The CA being replaced: the managed one from the Secret, or the active CA the status
    // remembers when the Secret now holds another (replaced out of band), or one replaced
    // out of band earlier whose retention is still running.
    let remembered = last.and_then(|l| l.active.as_ref());
    let (previous, since, out_of_band) = match (ca.previous, remembered) {
        (Some(p), _) => (summary(p), ca.activates_at.unwrap_or(now), false),
        (None, Some(r)) if r.fingerprint != active.fingerprint && !expired(r, now) => {
            (r.clone(), now, true)
        }
        _ => match last.filter(|l| l.out_of_band) {
            Some(l) => match (&l.previous, l.activates_at.as_deref()) {
                (Some(p), Some(at)) if p.fingerprint != active.fingerprint => {
                    (p.clone(), crate::time::parse(at).unwrap_or(now), true)
                }
                _ => return stable(base, ca),
            },
            None => return stable(base, ca),
        },
    };
    if out_of_band && now >= since.saturating_add(settings.replaced_retention) {
        return stable(base, ca);
    }
    let already_retired = last.is_some_and(|l| {
        l.phase == RETIRED
            && l.previous
                .as_ref()
                .is_some_and(|p| p.fingerprint == previous.fingerprint)
    });
    let mut status = base(MOVING_LEAVES, Some(previous.clone()));
    status.activates_at = Some(rfc3339(since));
    status.out_of_band = out_of_band;
    // Without a key identifier the leaves on it cannot be counted, nor a leaf whose status
    // does not name its CA yet: the previous CA stays (until it expires).
    let countable = previous.key_id.is_some() && leaves.iter().all(Option::is_some);
    let moved = countable && now >= since && status.leaves_on_previous == 0;
    // The last leaf's new certificate still has to reach its pod (the kubelet refreshes a
    // Secret as late as a ConfigMap): the old CA goes a propagation delay after it moved.
    let moved_at = moved.then(|| {
        last.filter(|l| l.previous.as_ref().map(|p| &p.fingerprint) == Some(&previous.fingerprint))
            .and_then(|l| l.leaves_moved_at.as_deref())
            .and_then(crate::time::parse)
            .unwrap_or(now)
    });
    status.leaves_moved_at = moved_at.map(rfc3339);
    let settled =
        moved_at.is_some_and(|at| now >= at.saturating_add(settings.trust_propagation_delay));
    if already_retired || settled || expired(&previous, now) {
        status.phase = RETIRED.into();
    }
    let recheck_in = match status.phase.as_str() {
        MOVING_LEAVES => Some(match moved_at {
            Some(at) => (at + settings.trust_propagation_delay - now).clamp(1, RECHECK_SECS),
            None => RECHECK_SECS,
        }),
        // An out-of-band CA's entry goes when its retention ends.
        _ if out_of_band => Some((since + settings.replaced_retention - now).max(1)),
        _ => None,
    };
    Plan {
        status,
        moving_since: since,
        recheck_in,
    }
}

fn stable(base: impl Fn(&str, Option<CaSummary>) -> CaRotationStatus, ca: &CaFacts<'_>) -> Plan {
    Plan {
        status: base(STABLE, None),
        moving_since: ca.signing.not_before,
        recheck_in: None,
    }
}

/// The CA certificates to publish for an issuer (PEM), from what its backend answers and its
/// rotation status: a retired previous CA is dropped, a CA replaced out of band (or the
/// remembered active one, until the issuer has looked at a replacement) is added.
pub fn published(
    from_backend: Vec<String>,
    rotation: Option<&CaRotationStatus>,
    now: i64,
) -> Vec<String> {
    let Some(r) = rotation else {
        return from_backend;
    };
    let fingerprint_of = |pem_text: &str| {
        pem::parse(pem_text)
            .ok()
            .map(|p| crate::controller::trust_bundle::fingerprint(p.contents()))
    };
    let mut pems = from_backend;
    let retired = r.previous.as_ref().filter(|_| r.phase == RETIRED);
    if let Some(retired) = retired {
        pems.retain(|p| fingerprint_of(p).as_deref() != Some(retired.fingerprint.as_str()));
    }
    let keep = [
        r.active.as_ref(),
        r.previous.as_ref().filter(|_| r.phase == MOVING_LEAVES),
    ];
    for ca in keep.into_iter().flatten() {
        let present = pems
            .iter()
            .any(|p| fingerprint_of(p).as_deref() == Some(ca.fingerprint.as_str()));
        if !present && !expired(ca, now) && fingerprint_of(&ca.certificate).is_some() {
            pems.push(ca.certificate.clone());
        }
    }
    pems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CertificateSpec, KeyAlgorithm};
    use crate::issuer::selfsigned;
    use crate::pki::inspect;
    use crate::pki::keys::PrivateKey;
    use crate::pki::request::sign_request;

    const T0: i64 = 1_800_000_000;
    const SETTINGS: RotationSettings = RotationSettings {
        trust_propagation_delay: 60,
        window: 100,
        rate_limit: 10,
        replaced_retention: 3600,
    };

    fn root(at: i64) -> CertInfo {
        let spec: CertificateSpec = serde_json::from_value(serde_json::json!({
            "secretName": "s", "issuerRef": {"name": "i"}, "commonName": "root", "isCA": true,
        }))
        .unwrap();
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let signed = selfsigned::sign(&sign_request(&spec, &key).unwrap(), &key, at).unwrap();
        inspect::parse_chain(signed.chain_pem.as_bytes())
            .unwrap()
            .remove(0)
    }

    fn facts<'a>(
        signing: &'a CertInfo,
        next: Option<&'a CertInfo>,
        previous: Option<&'a CertInfo>,
        at: Option<i64>,
    ) -> CaFacts<'a> {
        CaFacts {
            signing,
            next,
            previous,
            activates_at: at,
        }
    }

    fn kid(ca: &CertInfo) -> Option<String> {
        assert!(ca.subject_key_id.is_some(), "CA certificates carry an SKI");
        ca.subject_key_id.clone()
    }

    #[test]
    fn a_single_ca_is_stable_and_counts_its_leaves() {
        let a = root(T0);
        let p = plan(
            &facts(&a, None, None, None),
            None,
            &[kid(&a), kid(&a), None],
            &SETTINGS,
            T0,
        );
        assert_eq!(p.status.phase, STABLE);
        assert_eq!((p.status.leaves_on_active, p.status.leaves_unknown), (2, 1));
        assert_eq!(p.recheck_in, None);
    }

    /// The managed sequence: published first, then leaves move, then the previous CA retires
    /// only once no Ready leaf chains to it.
    #[test]
    fn a_managed_rotation_publishes_moves_then_retires() {
        let (old, new) = (root(T0), root(T0 + 10));
        let at = T0 + 100;
        let publishing = plan(
            &facts(&old, Some(&new), None, Some(at)),
            None,
            &[kid(&old)],
            &SETTINGS,
            T0 + 50,
        );
        assert_eq!(publishing.status.phase, PUBLISHING);
        assert_eq!(
            publishing.recheck_in,
            Some(50),
            "looked at again on activation"
        );
        assert_eq!(publishing.moving_since, at);

        let moving = plan(
            &facts(&new, None, Some(&old), Some(at)),
            Some(&publishing.status),
            &[kid(&old), kid(&new)],
            &SETTINGS,
            at,
        );
        assert_eq!(moving.status.phase, MOVING_LEAVES);
        assert_eq!(
            (
                moving.status.leaves_on_active,
                moving.status.leaves_on_previous
            ),
            (1, 1)
        );
        assert!(!moving.status.out_of_band);

        let moved = plan(
            &facts(&new, None, Some(&old), Some(at)),
            Some(&moving.status),
            &[kid(&new), kid(&new)],
            &SETTINGS,
            at + 30,
        );
        assert_eq!(
            moved.status.phase, MOVING_LEAVES,
            "the last leaf's Secret propagates first"
        );
        assert_eq!(moved.status.leaves_moved_at, Some(rfc3339(at + 30)));
        let retired = plan(
            &facts(&new, None, Some(&old), Some(at)),
            Some(&moved.status),
            &[kid(&new), kid(&new)],
            &SETTINGS,
            at + 30 + SETTINGS.trust_propagation_delay,
        );
        assert_eq!(retired.status.phase, RETIRED);
        // Retired stays retired, even if a stale count shows a leaf on it again.
        let again = plan(
            &facts(&new, None, Some(&old), Some(at)),
            Some(&retired.status),
            &[kid(&old)],
            &SETTINGS,
            at + 40,
        );
        assert_eq!(again.status.phase, RETIRED);
    }

    #[test]
    fn an_out_of_band_replacement_keeps_the_remembered_ca_for_the_retention() {
        let (old, new) = (root(T0), root(T0 + 10));
        let before = plan(&facts(&old, None, None, None), None, &[], &SETTINGS, T0);
        let replaced = plan(
            &facts(&new, None, None, None),
            Some(&before.status),
            &[kid(&old)],
            &SETTINGS,
            T0 + 500,
        );
        assert_eq!(replaced.status.phase, MOVING_LEAVES);
        assert!(replaced.status.out_of_band);
        assert_eq!(replaced.moving_since, T0 + 500);
        let prev = replaced.status.previous.clone().unwrap();
        assert_eq!(
            prev.fingerprint,
            before.status.active.clone().unwrap().fingerprint
        );
        // Carried on from the status alone.
        let later = plan(
            &facts(&new, None, None, None),
            Some(&replaced.status),
            &[kid(&old)],
            &SETTINGS,
            T0 + 600,
        );
        assert_eq!(later.status.phase, MOVING_LEAVES);
        assert_eq!(later.moving_since, T0 + 500);
        // Past the retention it goes, whatever the leaves.
        let gone = plan(
            &facts(&new, None, None, None),
            Some(&later.status),
            &[kid(&old)],
            &SETTINGS,
            T0 + 500 + 3600,
        );
        assert_eq!(gone.status.phase, STABLE);
    }

    #[test]
    fn published_drops_a_retired_ca_and_adds_a_remembered_one() {
        let (old, new) = (root(T0), root(T0 + 10));
        let pem = |c: &CertInfo| crate::pki::pem_lf("CERTIFICATE", c.der.clone());
        let mut status = plan(
            &facts(&new, None, Some(&old), Some(T0)),
            None,
            &[],
            &SETTINGS,
            T0 + 20,
        )
        .status;
        status.phase = RETIRED.into();
        assert_eq!(
            published(vec![pem(&new), pem(&old)], Some(&status), T0 + 20),
            vec![pem(&new)]
        );
        status.phase = MOVING_LEAVES.into();
        assert_eq!(
            published(vec![pem(&new)], Some(&status), T0 + 20),
            vec![pem(&new), pem(&old)]
        );
        // The Secret was replaced before the issuer looked: the remembered CA stays.
        let stable = plan(&facts(&old, None, None, None), None, &[], &SETTINGS, T0).status;
        assert_eq!(
            published(vec![pem(&new)], Some(&stable), T0 + 20),
            vec![pem(&new), pem(&old)]
        );
    }
}
