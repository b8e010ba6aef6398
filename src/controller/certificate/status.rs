//! The status a reconcile outcome implies (pure). Conditions follow kstatus: `Ready` says
//! whether the Secret is usable; `Reconciling` and `Stalled` exist only while true.

use crate::api::CertificateStatus;
use crate::api::conditions::{self, DesiredCondition, ISSUING, READY, RECONCILING, STALLED};
use crate::pki::CertInfo;
use crate::reason::{Problem, Reason};

use super::decide::Current;
use crate::time::rfc3339;

/// How a reconcile ended.
#[derive(Debug)]
pub enum Outcome<'a> {
    UpToDate(&'a Current),
    Issued {
        current: &'a Current,
        renew_request: Option<&'a str>,
    },
    Refused(&'a Problem),
    /// The issuer's policy does not allow the Certificate; an existing certificate stays in
    /// the Secret until it expires and is not renewed.
    Denied {
        denial: &'a Problem,
        current: Option<&'a Current>,
    },
    /// An asynchronous CA is working on the request; nothing failed.
    Pending {
        why: &'a Problem,
        progress: &'a Problem,
        current: Option<&'a Current>,
    },
    /// Issuance was needed and failed (or is waiting out its backoff until `retry_at`).
    Failed {
        why: &'a Problem,
        failure: &'a Problem,
        current: Option<&'a Current>,
        retry_at: i64,
    },
}

/// Compute the new status from the previous one.
pub fn desired(
    prev: &CertificateStatus,
    generation: Option<i64>,
    outcome: &Outcome<'_>,
    now: i64,
) -> CertificateStatus {
    let mut next = CertificateStatus {
        observed_generation: generation,
        last_renew_request: prev.last_renew_request.clone(),
        revision: prev.revision,
        history: prev.history.clone(),
        last_revoke_request: prev.last_revoke_request.clone(),
        ..Default::default()
    };
    let ready = |status: bool, reason: Reason, message: String| DesiredCondition {
        type_: READY,
        status,
        reason: reason.as_str().into(),
        message,
    };
    let wanted: Vec<DesiredCondition> = match outcome {
        Outcome::UpToDate(current) => {
            describe(&mut next, current);
            vec![ready_condition(current)]
        }
        Outcome::Issued {
            current,
            renew_request,
        } => {
            describe(&mut next, current);
            if let Some(request) = renew_request {
                next.last_renew_request = Some(request.to_string());
            }
            vec![ready_condition(current)]
        }
        Outcome::Refused(problem) => {
            vec![
                ready(false, problem.reason, problem.message.clone()),
                DesiredCondition {
                    type_: STALLED,
                    status: true,
                    reason: problem.reason.as_str().into(),
                    message: problem.message.clone(),
                },
            ]
        }
        Outcome::Denied { denial, current } => {
            next.failed_issuance_attempts = prev.failed_issuance_attempts;
            next.last_failure_time = prev.last_failure_time.clone();
            let message = match current {
                Some(c) => {
                    describe(&mut next, c);
                    format!(
                        "{}; the current certificate (serial {}, valid until {}) stays in the Secret and will not be renewed",
                        denial.message,
                        c.leaf.serial,
                        rfc3339(c.leaf.not_after)
                    )
                }
                None => denial.message.clone(),
            };
            vec![
                ready(false, denial.reason, message.clone()),
                DesiredCondition {
                    type_: STALLED,
                    status: true,
                    reason: denial.reason.as_str().into(),
                    message,
                },
            ]
        }
        Outcome::Pending {
            why,
            progress,
            current,
        } => {
            next.failed_issuance_attempts = prev.failed_issuance_attempts;
            next.last_failure_time = prev.last_failure_time.clone();
            let readiness = match current {
                Some(c) => {
                    describe(&mut next, c);
                    ready_condition(c)
                }
                None => ready(false, progress.reason, progress.message.clone()),
            };
            vec![
                readiness,
                DesiredCondition {
                    type_: ISSUING,
                    status: true,
                    reason: why.reason.as_str().into(),
                    message: format!("{}; {}", why.message, progress.message),
                },
            ]
        }
        Outcome::Failed {
            why,
            failure,
            current,
            retry_at,
        } => {
            if let Some(c) = current {
                describe(&mut next, c);
            }
            let attempts = prev.failed_issuance_attempts.unwrap_or(0);
            next.failed_issuance_attempts = Some(attempts.saturating_add(1));
            next.last_failure_time = Some(rfc3339(now));
            let progress = format!(
                "{}; issuing failed: {}; next attempt at {}",
                why.message,
                failure,
                rfc3339(*retry_at)
            );
            let readiness = match current {
                Some(c) => ready(
                    true,
                    why.reason,
                    format!(
                        "Certificate valid until {}, renewal failing: {}",
                        rfc3339(c.leaf.not_after),
                        failure
                    ),
                ),
                None => ready(false, failure.reason, failure.message.clone()),
            };
            vec![
                readiness,
                DesiredCondition {
                    type_: ISSUING,
                    status: true,
                    reason: why.reason.as_str().into(),
                    message: progress.clone(),
                },
                DesiredCondition {
                    type_: RECONCILING,
                    status: true,
                    reason: failure.reason.as_str().into(),
                    message: progress,
                },
            ]
        }
    };
    next.conditions = conditions::merge(&prev.conditions, &wanted, generation, &rfc3339(now));
    next
}

/// Add `Reconciling=True` for a revocation the issuer did not record (it is retried), keeping
/// its transition time while it stays true.
pub fn revocation_failing(
    next: &mut CertificateStatus,
    prev: &CertificateStatus,
    failure: &Problem,
    generation: Option<i64>,
    now: i64,
) {
    next.conditions.retain(|c| c.type_ != RECONCILING);
    let wanted = DesiredCondition {
        type_: RECONCILING,
        status: true,
        reason: failure.reason.as_str().into(),
        message: format!(
            "revoking at the issuer failed, retrying: {}",
            failure.message
        ),
    };
    next.conditions.extend(conditions::merge(
        &prev.conditions,
        &[wanted],
        generation,
        &rfc3339(now),
    ));
}

/// Ready=True for a valid certificate. Identical right after issuance and on every later look,
/// so the reconcile that follows an issuance finds nothing to write (why it was issued goes
/// into the Event).
fn ready_condition(current: &Current) -> DesiredCondition {
    DesiredCondition {
        type_: READY,
        status: true,
        reason: Reason::Issued.as_str().into(),
        message: format!(
            "Certificate is up to date: serial {}, valid until {}",
            current.leaf.serial,
            rfc3339(current.leaf.not_after)
        ),
    }
}

fn describe(status: &mut CertificateStatus, current: &Current) {
    let leaf: &CertInfo = &current.leaf;
    status.not_before = Some(rfc3339(leaf.not_before));
    status.not_after = Some(rfc3339(leaf.not_after));
    status.renewal_time = Some(rfc3339(current.renewal_time));
    status.serial_number = Some(leaf.serial.clone());
    status.authority_key_id = leaf.authority_key_id.clone();
    // What the Secret says wins over a possibly stale cached status.
    status.revision = current.revision.or(status.revision);
    if current.renew_request.is_some() {
        status.last_renew_request = current.renew_request.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::find;
    use crate::pki::inspect::CertInfo;

    fn current(not_after: i64) -> Current {
        let leaf = CertInfo {
            der: vec![],
            serial: "0a".into(),
            not_before: 0,
            not_after,
            subject: String::new(),
            issuer: String::new(),
            common_name: None,
            organizations: vec![],
            organizational_units: vec![],
            countries: vec![],
            localities: vec![],
            provinces: vec![],
            dns_names: Default::default(),
            ip_addresses: Default::default(),
            uris: Default::default(),
            emails: Default::default(),
            is_ca: false,
            usages: Default::default(),
            key: None,
            public_key_info: vec![],
            subject_key_id: None,
            authority_key_id: None,
        };
        Current {
            leaf,
            renewal_time: not_after / 2,
            revision: Some(3),
            renew_request: None,
            ca_fingerprint: None,
        }
    }

    #[test]
    fn a_failing_renewal_keeps_ready_true_while_the_certificate_is_valid() {
        let c = current(1000);
        let why = Problem::new(Reason::Renewing, "renewal time reached");
        let failure = Problem::new(Reason::IssuerNotReady, "CA down");
        let outcome = Outcome::Failed {
            why: &why,
            failure: &failure,
            current: Some(&c),
            retry_at: 600,
        };
        let s = desired(&CertificateStatus::default(), Some(3), &outcome, 500);
        assert_eq!(
            find(&s.conditions, READY).map(|c| c.status.as_str()),
            Some("True")
        );
        assert_eq!(
            find(&s.conditions, RECONCILING).map(|c| c.reason.as_str()),
            Some("IssuerNotReady")
        );
        assert_eq!(s.failed_issuance_attempts, Some(1));
        assert_eq!(s.observed_generation, Some(3));

        let gone = Outcome::Failed {
            why: &why,
            failure: &failure,
            current: None,
            retry_at: 600,
        };
        let s2 = desired(&s, Some(3), &gone, 510);
        assert_eq!(
            find(&s2.conditions, READY).map(|c| c.status.as_str()),
            Some("False")
        );
        assert_eq!(s2.failed_issuance_attempts, Some(2));
    }

    #[test]
    fn success_resets_failures_counts_revisions_and_drops_reconciling() {
        let c = current(1000);
        let prev = CertificateStatus {
            failed_issuance_attempts: Some(4),
            revision: Some(2),
            ..Default::default()
        };
        let s = desired(
            &prev,
            Some(1),
            &Outcome::Issued {
                current: &c,
                renew_request: Some("r1"),
            },
            10,
        );
        assert_eq!(s.revision, Some(3));
        assert_eq!(s.failed_issuance_attempts, None);
        assert_eq!(s.last_renew_request.as_deref(), Some("r1"));
        assert!(
            find(&s.conditions, RECONCILING).is_none() && find(&s.conditions, ISSUING).is_none()
        );
        // The look that follows an issuance finds the status already right: no second write.
        assert_eq!(desired(&s, Some(1), &Outcome::UpToDate(&c), 20), s);
        // Recomputing with nothing new changes nothing: an idle operator writes nothing.
        let again = desired(&s, Some(1), &Outcome::UpToDate(&c), 20);
        assert_eq!(desired(&again, Some(1), &Outcome::UpToDate(&c), 30), again);
    }

    #[test]
    fn a_pending_request_is_issuing_without_counting_a_failure() {
        let c = current(1000);
        let why = Problem::new(Reason::Renewing, "renewal time reached");
        let progress = Problem::new(Reason::Pending, "AWS Private CA is issuing arn:x");
        let prev = CertificateStatus {
            failed_issuance_attempts: Some(1),
            ..Default::default()
        };
        let outcome = Outcome::Pending {
            why: &why,
            progress: &progress,
            current: Some(&c),
        };
        let s = desired(&prev, Some(1), &outcome, 10);
        assert_eq!(s.failed_issuance_attempts, Some(1));
        assert_eq!(
            find(&s.conditions, READY).map(|c| c.status.as_str()),
            Some("True")
        );
        assert!(find(&s.conditions, ISSUING).is_some_and(|c| c.message.contains("arn:x")));
        // Polling again changes nothing: one status write per submitted request.
        assert_eq!(desired(&s, Some(1), &outcome, 20), s);
        let first = Outcome::Pending {
            why: &why,
            progress: &progress,
            current: None,
        };
        let s = desired(&CertificateStatus::default(), Some(1), &first, 10);
        assert_eq!(
            find(&s.conditions, READY).map(|c| c.reason.as_str()),
            Some("Pending")
        );
    }

    #[test]
    fn refusal_is_stalled() {
        let p = Problem::new(Reason::SecretConflict, "not ours");
        let s = desired(
            &CertificateStatus::default(),
            Some(1),
            &Outcome::Refused(&p),
            10,
        );
        assert_eq!(
            find(&s.conditions, STALLED).map(|c| c.status.as_str()),
            Some("True")
        );
        assert_eq!(
            find(&s.conditions, READY).map(|c| c.reason.as_str()),
            Some("SecretConflict")
        );
    }
}
