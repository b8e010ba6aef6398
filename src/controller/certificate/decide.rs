//! The pure heart of the Certificate reconciler: given what was observed and the time, decide
//! whether to issue and why. An ordered list of small named checks ([`CHECKS`]); the first that
//! fires wins, and when none does the certificate is up to date until its renewal time. Each
//! check reads what it needs from [`Input`], which parses the Secret's certificate and key once.

use std::cell::OnceCell;
use std::collections::BTreeMap;

use crate::api::{CertificateSpec, SecretCleanupPolicy};
use crate::issuer::{BackendType, PENDING_SECRET_SUFFIX};
use crate::pki::inspect::{self, CertInfo};
use crate::pki::keys::PrivateKey;
use crate::pki::outputs::{self, Passwords};
use crate::pki::renewal::{self, RenewBefore};
use crate::reason::{Problem, Reason};
use crate::time::rfc3339;

use super::profile;
use crate::controller::ca_rotation::{self, IssuerCa};

/// The Secret as the operator found it.
#[derive(Debug, Clone, Copy)]
pub enum SecretState<'a> {
    Missing,
    /// Exists but was not written for this Certificate (`owner` names the Certificate it was
    /// written for, if any).
    Foreign {
        owner: Option<&'a str>,
    },
    Ours(&'a SecretData),
}

/// The parts of an owned Secret that decisions look at.
#[derive(Debug, Clone, Default)]
pub struct SecretData {
    pub tls_crt: Option<Vec<u8>>,
    pub tls_key: Option<Vec<u8>>,
    pub ca_crt: Option<Vec<u8>>,
    pub issuer_name: Option<String>,
    pub issuer_kind: Option<String>,
    /// The backend that signed the certificate (`selfSigned`, `ca`, `vault` ...).
    pub issuer_type: Option<String>,
    /// The revision the certificate was issued as, and the renew request it satisfied. Read
    /// from the Secret (fetched live), so a stale cached status cannot cause a second issuance.
    pub revision: Option<i64>,
    pub renew_request: Option<String>,
    /// When the operator wrote the certificate (Unix seconds), for the renewal floor.
    pub issued_at: Option<i64>,
    /// The extra outputs present (`tls-combined.pem`, `keystore.p12`, ...), by key.
    pub outputs: BTreeMap<String, Vec<u8>>,
    /// The Secret carries an owner reference to this Certificate (`secretCleanupPolicy`).
    pub owned_by_certificate: bool,
}

impl SecretData {
    /// The backend type that signed the certificate, when the Secret says.
    pub fn backend_type(&self) -> Option<BackendType> {
        self.issuer_type.as_deref().and_then(BackendType::parse)
    }
}

/// Everything `decide` needs.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// `namespace/name`, which seeds the renewal jitter.
    pub identity: &'a str,
    pub spec: &'a CertificateSpec,
    pub secret: SecretState<'a>,
    /// An older Certificate in the namespace that already claims the same secretName.
    pub claimed_by: Option<&'a str>,
    /// The renew annotation's value, and the value last acted upon.
    pub renew_requested: Option<&'a str>,
    pub renew_handled: Option<&'a str>,
    /// The keystore passwords, or why they cannot be read.
    pub passwords: Result<&'a Passwords, &'a Problem>,
    /// When the Certificate's issuer is a CA issuer: the CA its leaves must be on.
    pub issuer_ca: Option<&'a IssuerCa>,
    pub now: i64,
}

/// The valid certificate currently in the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub leaf: CertInfo,
    pub renewal_time: i64,
    /// The revision this certificate was issued as, and the renew request it satisfied.
    pub revision: Option<i64>,
    pub renew_request: Option<String>,
    /// SHA-256 of the CA certificate that signed it, when the Secret's chain has it.
    pub ca_fingerprint: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do until `current.renewal_time`.
    UpToDate(Current),
    /// Issue a certificate. `current` is the still-valid certificate being replaced, if any:
    /// while it exists the Certificate stays Ready.
    Issue {
        why: Problem,
        current: Option<Current>,
    },
    /// Issuing would be wrong; a user must change something.
    Refuse(Problem),
    /// The certificate is good, but the Secret around it is not what the spec asks for (extra
    /// outputs, keystores, owner reference): write it again from its own key and certificate.
    Rewrite { why: Problem, current: Current },
}

/// One check of the chain: its name (for docs and tests) and what it looks at.
pub struct Check {
    pub name: &'static str,
    run: fn(&Input<'_>) -> Option<Decision>,
}

/// The chain, in order. Refusals come first (nothing is issued into a Secret that is not
/// ours), then whatever makes the Secret unusable, then what makes it outdated.
pub const CHECKS: &[Check] = &[
    Check {
        name: "reserved-secret-name",
        run: reserved_secret_name,
    },
    Check {
        name: "older-claimant",
        run: older_claimant,
    },
    Check {
        name: "secret-missing",
        run: secret_missing,
    },
    Check {
        name: "secret-of-another-certificate",
        run: secret_of_another_certificate,
    },
    Check {
        name: "secret-not-ours",
        run: secret_not_ours,
    },
    Check {
        name: "keystore-password-unavailable",
        run: keystore_password_unavailable,
    },
    Check {
        name: "data-missing",
        run: data_missing,
    },
    Check {
        name: "certificate-unreadable",
        run: certificate_unreadable,
    },
    Check {
        name: "key-unreadable",
        run: key_unreadable,
    },
    Check {
        name: "key-mismatch",
        run: key_mismatch,
    },
    Check {
        name: "issuer-changed",
        run: issuer_changed,
    },
    Check {
        name: "spec-mismatch",
        run: spec_mismatch,
    },
    Check {
        name: "expired",
        run: expired,
    },
    Check {
        name: "ca-bundle-invalid",
        run: ca_bundle_invalid,
    },
    Check {
        name: "issuer-ca-changed",
        run: issuer_ca_changed,
    },
    Check {
        name: "renewal-requested",
        run: renewal_requested,
    },
    Check {
        name: "renewal-due",
        run: renewal_due,
    },
    Check {
        name: "outputs-stale",
        run: outputs_stale,
    },
    Check {
        name: "cleanup-policy-changed",
        run: cleanup_policy_changed,
    },
];

/// Run the chain; the first check that fires decides.
pub fn decide(o: &Observed<'_>) -> Decision {
    let input = Input::new(o);
    for check in CHECKS {
        if let Some(decision) = (check.run)(&input) {
            return decision;
        }
    }
    match input.current() {
        Some(current) => Decision::UpToDate(current),
        // Unreachable in practice: data-missing and the unreadable checks fire first.
        None => issue(Reason::InvalidData, "the Secret cannot be read", None),
    }
}

/// What the checks look at: the observation, and the Secret's certificate and key parsed once.
pub struct Input<'a> {
    o: &'a Observed<'a>,
    leaf: OnceCell<Option<CertInfo>>,
    key: OnceCell<Option<PrivateKey>>,
}

impl<'a> Input<'a> {
    pub fn new(o: &'a Observed<'a>) -> Self {
        Input {
            o,
            leaf: OnceCell::new(),
            key: OnceCell::new(),
        }
    }

    /// The Secret's data, when the Secret is ours.
    fn data(&self) -> Option<&'a SecretData> {
        match self.o.secret {
            SecretState::Ours(data) => Some(data),
            _ => None,
        }
    }

    /// The leaf of `tls.crt`, when it parses.
    fn leaf(&self) -> Option<&CertInfo> {
        self.leaf
            .get_or_init(|| {
                let crt = nonempty(&self.data()?.tls_crt)?;
                inspect::parse_chain(crt).ok()?.into_iter().next()
            })
            .as_ref()
    }

    /// The key in `tls.key`, when it parses.
    fn key(&self) -> Option<&PrivateKey> {
        self.key
            .get_or_init(|| {
                let key = nonempty(&self.data()?.tls_key)?;
                PrivateKey::from_pem(std::str::from_utf8(key).ok()?).ok()
            })
            .as_ref()
    }

    /// The certificate in the Secret with its renewal time.
    fn current(&self) -> Option<Current> {
        let (data, leaf) = (self.data()?, self.leaf()?);
        let renewal_time = renewal::renewal_time(
            self.o.identity,
            leaf.not_before,
            leaf.not_after,
            renew_before(self.o.spec),
            data.issued_at,
        );
        // A pending move to a new CA comes first.
        let renewal_time = self
            .ca_move_due()
            .map_or(renewal_time, |due| due.min(renewal_time));
        Some(Current {
            leaf: leaf.clone(),
            renewal_time,
            revision: data.revision,
            renew_request: data.renew_request.clone(),
            ca_fingerprint: data.tls_crt.as_deref().and_then(|chain| {
                inspect::issuer_fingerprint(chain, data.ca_crt.as_deref().unwrap_or_default())
            }),
        })
    }
}

impl Input<'_> {
    /// When the certificate moves to its CA issuer's new CA: it was written before that CA
    /// started (or starts) signing (or in that second), and that CA did not sign it. One written since and still
    /// not signed by it means the issuer's view is behind (a CA replaced a moment ago): left
    /// alone until the issuer catches up, so nothing re-issues in a loop.
    fn ca_move_due(&self) -> Option<i64> {
        let ca = self.o.issuer_ca?;
        let data = self.data()?;
        if data.backend_type() != Some(BackendType::Ca) {
            return None;
        }
        let (target, since) = ca.target();
        let leaf = self.leaf()?;
        // Times are whole seconds: a leaf written in the second the CA changed may be from
        // either side, and moves (at most once) when the CA did not sign it.
        let written_before = data.issued_at.is_none_or(|at| at <= since);
        (written_before && !inspect::issued_by(leaf, target))
            .then(|| ca_rotation::move_due(self.o.identity, since, ca.window))
    }
}

fn issue(reason: Reason, message: impl Into<String>, current: Option<Current>) -> Decision {
    Decision::Issue {
        why: Problem::new(reason, message),
        current,
    }
}

fn refuse(reason: Reason, message: impl Into<String>) -> Option<Decision> {
    Some(Decision::Refuse(Problem::new(reason, message)))
}

fn nonempty(v: &Option<Vec<u8>>) -> Option<&[u8]> {
    v.as_deref().filter(|b| !b.is_empty())
}

/// A keystore password that cannot be read blocks every write: a store under a wrong or empty
/// password would be worse than none. The Secret as it is stays.
fn keystore_password_unavailable(i: &Input<'_>) -> Option<Decision> {
    i.o.passwords.err().map(|p| Decision::Refuse(p.clone()))
}

/// The Secret's extra outputs and keystores follow the spec, the key, the certificates and
/// the passwords; when they do not, the Secret is written again, never re-issued.
fn outputs_stale(i: &Input<'_>) -> Option<Decision> {
    let data = i.data()?;
    let passwords = i.o.passwords.ok()?;
    let source = outputs::Source {
        key_pem: nonempty(&data.tls_key)?,
        chain_pem: nonempty(&data.tls_crt)?,
        ca_pem: data.ca_crt.as_deref().unwrap_or_default(),
        not_before: i.leaf()?.not_before,
    };
    let why = outputs::stale(i.o.spec, &source, passwords, &data.outputs)?;
    Some(Decision::Rewrite {
        why: Problem::new(Reason::OutputsUpdated, why),
        current: i.current()?,
    })
}

/// `secretCleanupPolicy: Delete` needs an owner reference on the Secret, `Keep` none.
fn cleanup_policy_changed(i: &Input<'_>) -> Option<Decision> {
    let data = i.data()?;
    let wanted = i.o.spec.secret_cleanup_policy == Some(SecretCleanupPolicy::Delete);
    if wanted == data.owned_by_certificate {
        return None;
    }
    let why = if wanted {
        "secretCleanupPolicy is Delete: the Secret gets an owner reference to the Certificate"
    } else {
        "secretCleanupPolicy is Keep: the Secret's owner reference to the Certificate is removed"
    };
    Some(Decision::Rewrite {
        why: Problem::new(Reason::OutputsUpdated, why),
        current: i.current()?,
    })
}

fn reserved_secret_name(i: &Input<'_>) -> Option<Decision> {
    let name = &i.o.spec.secret_name;
    name.ends_with(PENDING_SECRET_SUFFIX).then(|| {
        Decision::Refuse(Problem::new(
            Reason::InvalidSpec,
            format!("secretName {name:?} is reserved for certsmith's pending-request Secrets; choose another"),
        ))
    })
}

fn older_claimant(i: &Input<'_>) -> Option<Decision> {
    let other = i.o.claimed_by?;
    refuse(
        Reason::DuplicateSecretName,
        format!(
            "Secret {:?} is already used by Certificate {other:?}; choose another secretName",
            i.o.spec.secret_name
        ),
    )
}

fn secret_missing(i: &Input<'_>) -> Option<Decision> {
    matches!(i.o.secret, SecretState::Missing).then(|| {
        issue(
            Reason::DoesNotExist,
            format!("Secret {:?} does not exist", i.o.spec.secret_name),
            None,
        )
    })
}

fn secret_of_another_certificate(i: &Input<'_>) -> Option<Decision> {
    let SecretState::Foreign { owner: Some(owner) } = i.o.secret else {
        return None;
    };
    refuse(
        Reason::DuplicateSecretName,
        format!(
            "Secret {:?} is managed for Certificate {owner:?}; choose another secretName",
            i.o.spec.secret_name
        ),
    )
}

fn secret_not_ours(i: &Input<'_>) -> Option<Decision> {
    let SecretState::Foreign { owner: None } = i.o.secret else {
        return None;
    };
    refuse(
        Reason::SecretConflict,
        format!(
            "Secret {:?} exists and was not created by certsmith; it is left untouched. Delete it or choose another secretName",
            i.o.spec.secret_name
        ),
    )
}

fn data_missing(i: &Input<'_>) -> Option<Decision> {
    let data = i.data()?;
    (nonempty(&data.tls_crt).is_none() || nonempty(&data.tls_key).is_none()).then(|| {
        issue(
            Reason::MissingData,
            "Secret is missing tls.crt or tls.key",
            None,
        )
    })
}

fn certificate_unreadable(i: &Input<'_>) -> Option<Decision> {
    let crt = nonempty(&i.data()?.tls_crt)?;
    match inspect::parse_chain(crt) {
        Ok(_) => None,
        Err(e) => Some(issue(
            Reason::InvalidData,
            format!("tls.crt cannot be parsed: {e}"),
            None,
        )),
    }
}

fn key_unreadable(i: &Input<'_>) -> Option<Decision> {
    i.data()?;
    i.key().is_none().then(|| {
        issue(
            Reason::InvalidData,
            "tls.key cannot be parsed as a PEM private key",
            None,
        )
    })
}

fn key_mismatch(i: &Input<'_>) -> Option<Decision> {
    let (key, leaf) = (i.key()?, i.leaf()?);
    (key.public_key_info() != leaf.public_key_info).then(|| {
        issue(
            Reason::KeyMismatch,
            "tls.key does not match the certificate in tls.crt",
            None,
        )
    })
}

fn issuer_changed(i: &Input<'_>) -> Option<Decision> {
    let (data, wanted) = (i.data()?, &i.o.spec.issuer_ref);
    let same = data.issuer_name.as_deref() == Some(wanted.name.as_str())
        && data.issuer_kind.as_deref() == Some(wanted.kind.as_str());
    (!same).then(|| {
        issue(
            Reason::IssuerChanged,
            format!(
                "issued by {} {:?}, spec names {} {:?}",
                data.issuer_kind.as_deref().unwrap_or("unknown kind"),
                data.issuer_name.as_deref().unwrap_or(""),
                wanted.kind.as_str(),
                wanted.name
            ),
            None,
        )
    })
}

fn spec_mismatch(i: &Input<'_>) -> Option<Decision> {
    let decides_profile = i
        .data()?
        .backend_type()
        .is_some_and(BackendType::decides_profile);
    let diff = profile::mismatch(i.o.spec, i.leaf()?, decides_profile)?;
    Some(issue(
        Reason::SpecMismatch,
        format!("certificate does not match spec: {diff}"),
        None,
    ))
}

fn expired(i: &Input<'_>) -> Option<Decision> {
    let leaf = i.leaf()?;
    (i.o.now >= leaf.not_after).then(|| {
        issue(
            Reason::Expired,
            format!("certificate expired at {}", rfc3339(leaf.not_after)),
            None,
        )
    })
}

/// `ca.crt` must hold certificates, one of which is the top of `tls.crt`'s chain or its
/// issuer (by name and signature): what a relying party is told to trust must verify it.
fn ca_bundle_invalid(i: &Input<'_>) -> Option<Decision> {
    let data = i.data()?;
    let problem = ca_anchors_chain(data.ca_crt.as_deref(), nonempty(&data.tls_crt)?).err()?;
    Some(issue(Reason::InvalidData, problem, None))
}

fn ca_anchors_chain(ca_crt: Option<&[u8]>, tls_crt: &[u8]) -> Result<(), String> {
    let ca = match ca_crt.filter(|b| !b.is_empty()) {
        None => return Err("Secret is missing ca.crt".into()),
        Some(bytes) => {
            inspect::parse_chain(bytes).map_err(|e| format!("ca.crt cannot be parsed: {e}"))?
        }
    };
    let chain =
        inspect::parse_chain(tls_crt).map_err(|e| format!("tls.crt cannot be parsed: {e}"))?;
    let Some(top) = chain.last() else {
        return Err("tls.crt holds no certificate".into());
    };
    if ca
        .iter()
        .any(|c| c.der == top.der || inspect::issued_by(top, c))
    {
        Ok(())
    } else {
        Err(format!(
            "ca.crt does not hold the issuer of the top certificate of tls.crt (serial {}, issuer {:?})",
            top.serial, top.issuer
        ))
    }
}

/// The issuer's CA changed (rotated, or replaced out of band) and this certificate's turn in
/// the rotation window has come. The certificate stays usable meanwhile.
fn issuer_ca_changed(i: &Input<'_>) -> Option<Decision> {
    let due = i.ca_move_due()?;
    if i.o.now < due {
        return None;
    }
    let (target, since) = i.o.issuer_ca?.target();
    Some(issue(
        Reason::IssuerCaChanged,
        format!(
            "signed by a CA the issuer replaced; CA {:?} (serial {}) signs since {}",
            target.subject,
            target.serial,
            rfc3339(since)
        ),
        i.current(),
    ))
}

fn renewal_requested(i: &Input<'_>) -> Option<Decision> {
    let data = i.data()?;
    let handled =
        |r: &str| Some(r) == i.o.renew_handled || Some(r) == data.renew_request.as_deref();
    let request = i.o.renew_requested.filter(|r| !handled(r))?;
    Some(issue(
        Reason::ManualTrigger,
        format!("renewal requested at {request}"),
        i.current(),
    ))
}

fn renewal_due(i: &Input<'_>) -> Option<Decision> {
    let current = i.current()?;
    (i.o.now >= current.renewal_time).then(|| {
        let message = format!("renewal time {} reached", rfc3339(current.renewal_time));
        issue(Reason::Renewing, message, Some(current))
    })
}

/// The renew-window setting of a spec.
pub fn renew_before(spec: &CertificateSpec) -> RenewBefore {
    if let Some(p) = spec.renew_before_percentage {
        return RenewBefore::Percentage(p);
    }
    match spec
        .renew_before
        .as_deref()
        .map(crate::api::duration::parse)
    {
        Some(Ok(d)) => RenewBefore::Duration(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        _ => RenewBefore::Default,
    }
}

/// The revision a new issuance becomes: one more than the newest of the status and the
/// Secret. The Secret's annotation is anyone's to edit, so the sum is checked.
pub fn next_revision(in_status: Option<i64>, in_secret: Option<i64>) -> Result<i64, Problem> {
    let last = in_status.max(in_secret).unwrap_or(0).max(0);
    last.checked_add(1).ok_or_else(|| {
        Problem::new(
            Reason::InvalidData,
            format!(
                "revision {last} (annotation certsmith.dev/revision on the Secret) cannot be incremented; remove the annotation"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{KeyEncoding, RENEW_ANNOTATION};
    use crate::issuer::selfsigned;
    use crate::pki::request::sign_request;

    const T0: i64 = 1_800_000_000;
    const HOUR: i64 = 3600;
    static NO_PASSWORDS: Passwords = Passwords {
        pkcs12: None,
        jks: None,
    };

    fn spec(extra: serde_json::Value) -> CertificateSpec {
        let mut base = serde_json::json!({
            "secretName": "web-tls", "issuerRef": {"name": "root", "kind": "ClusterIssuer"},
            "dnsNames": ["web.example"], "duration": "24h",
        });
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    /// A Secret as the operator would have written it for `spec`, issued at `at`.
    fn issued(spec: &CertificateSpec, at: i64) -> SecretData {
        let key = PrivateKey::generate(spec.key_algorithm(), spec.key_size()).unwrap();
        let signed = selfsigned::sign(&sign_request(spec, &key).unwrap(), &key, at).unwrap();
        SecretData {
            tls_crt: Some(signed.chain_pem.into_bytes()),
            tls_key: Some(key.to_pem(KeyEncoding::Pkcs8).unwrap().into_bytes()),
            ca_crt: Some(signed.ca_pem.into_bytes()),
            issuer_name: Some(spec.issuer_ref.name.clone()),
            issuer_kind: Some(spec.issuer_ref.kind.as_str().into()),
            issuer_type: Some("selfSigned".into()),
            revision: Some(1),
            renew_request: None,
            issued_at: Some(at),
            outputs: BTreeMap::new(),
            owned_by_certificate: false,
        }
    }

    fn observe<'a>(spec: &'a CertificateSpec, secret: SecretState<'a>, now: i64) -> Observed<'a> {
        Observed {
            identity: "ns/web",
            spec,
            secret,
            claimed_by: None,
            renew_requested: None,
            renew_handled: None,
            passwords: Ok(&NO_PASSWORDS),
            issuer_ca: None,
            now,
        }
    }

    fn reason(d: &Decision) -> Reason {
        match d {
            Decision::UpToDate(_) => Reason::UpToDate,
            Decision::Issue { why, .. } => why.reason,
            Decision::Refuse(p) => p.reason,
            Decision::Rewrite { why, .. } => why.reason,
        }
    }

    #[test]
    fn fresh_certificate_is_up_to_date_until_its_jittered_renewal_time() {
        let s = spec(serde_json::json!({}));
        let data = issued(&s, T0);
        let d = decide(&observe(&s, SecretState::Ours(&data), T0 + HOUR));
        let Decision::UpToDate(current) = d else {
            panic!("{d:?}")
        };
        // Default: 2/3 of 24h = 16h, minus at most 10% of 16h capped at 1h of jitter.
        assert!(
            current.renewal_time <= T0 + 16 * HOUR && current.renewal_time >= T0 + 15 * HOUR,
            "{}",
            current.renewal_time
        );
        let just_before = decide(&observe(
            &s,
            SecretState::Ours(&data),
            current.renewal_time - 1,
        ));
        assert_eq!(reason(&just_before), Reason::UpToDate);
        let at = decide(&observe(&s, SecretState::Ours(&data), current.renewal_time));
        assert_eq!(reason(&at), Reason::Renewing);
        assert!(
            matches!(
                at,
                Decision::Issue {
                    current: Some(_),
                    ..
                }
            ),
            "a renewing certificate stays usable"
        );
    }

    #[test]
    fn expired_wins_over_renewing() {
        let s = spec(serde_json::json!({}));
        let data = issued(&s, T0);
        let d = decide(&observe(&s, SecretState::Ours(&data), T0 + 25 * HOUR));
        assert_eq!(reason(&d), Reason::Expired);
        assert!(
            matches!(d, Decision::Issue { current: None, .. }),
            "an expired certificate is not usable"
        );
    }

    #[test]
    fn renew_before_and_percentage_move_the_renewal_time() {
        let s = spec(serde_json::json!({"renewBefore": "2h"}));
        let data = issued(&s, T0);
        assert_eq!(
            reason(&decide(&observe(
                &s,
                SecretState::Ours(&data),
                T0 + 20 * HOUR
            ))),
            Reason::UpToDate
        );
        assert_eq!(
            reason(&decide(&observe(
                &s,
                SecretState::Ours(&data),
                T0 + 22 * HOUR
            ))),
            Reason::Renewing
        );
        let p = spec(serde_json::json!({"renewBeforePercentage": 50}));
        let data = issued(&p, T0);
        assert_eq!(
            reason(&decide(&observe(
                &p,
                SecretState::Ours(&data),
                T0 + 10 * HOUR
            ))),
            Reason::UpToDate
        );
        assert_eq!(
            reason(&decide(&observe(
                &p,
                SecretState::Ours(&data),
                T0 + 12 * HOUR
            ))),
            Reason::Renewing
        );
    }

    #[test]
    fn missing_secret_and_missing_or_broken_data() {
        let s = spec(serde_json::json!({}));
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Missing, T0))),
            Reason::DoesNotExist
        );
        let mut data = issued(&s, T0);
        data.tls_key = Some(Vec::new());
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Ours(&data), T0))),
            Reason::MissingData
        );
        let mut data = issued(&s, T0);
        data.tls_crt = None;
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Ours(&data), T0))),
            Reason::MissingData
        );
        let mut data = issued(&s, T0);
        data.tls_crt =
            Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec());
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Ours(&data), T0))),
            Reason::InvalidData
        );
        let mut data = issued(&s, T0);
        data.tls_key = Some(b"not a key".to_vec());
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Ours(&data), T0))),
            Reason::InvalidData
        );
    }

    #[test]
    fn key_that_does_not_match_the_certificate() {
        let s = spec(serde_json::json!({}));
        let mut data = issued(&s, T0);
        data.tls_key = issued(&s, T0).tls_key;
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Ours(&data), T0))),
            Reason::KeyMismatch
        );
    }

    #[test]
    fn issuer_change_is_detected_from_the_secret_annotations() {
        let s = spec(serde_json::json!({}));
        let data = issued(&s, T0);
        let moved =
            spec(serde_json::json!({"issuerRef": {"name": "other", "kind": "ClusterIssuer"}}));
        assert_eq!(
            reason(&decide(&observe(&moved, SecretState::Ours(&data), T0))),
            Reason::IssuerChanged
        );
        let kind = spec(serde_json::json!({"issuerRef": {"name": "root"}}));
        assert_eq!(
            reason(&decide(&observe(&kind, SecretState::Ours(&data), T0))),
            Reason::IssuerChanged
        );
    }

    #[test]
    fn every_spec_field_that_shapes_the_certificate_is_compared() {
        let s = spec(serde_json::json!({}));
        let data = issued(&s, T0);
        for change in [
            serde_json::json!({"dnsNames": ["web.example", "www.example"]}),
            serde_json::json!({"commonName": "web"}),
            serde_json::json!({"ipAddresses": ["10.1.2.3"]}),
            serde_json::json!({"uris": ["spiffe://cluster.local/ns/a/sa/web"]}),
            serde_json::json!({"emailAddresses": ["ops@example.com"]}),
            serde_json::json!({"subject": {"organizations": ["acme"]}}),
            serde_json::json!({"privateKey": {"algorithm": "ECDSA", "size": 384}}),
            serde_json::json!({"privateKey": {"algorithm": "Ed25519"}}),
            serde_json::json!({"isCA": true}),
            serde_json::json!({"usages": ["digital signature", "server auth"]}),
        ] {
            let changed = spec(change.clone());
            let d = decide(&observe(&changed, SecretState::Ours(&data), T0));
            assert_eq!(reason(&d), Reason::SpecMismatch, "{change}");
        }
        // From a remote CA, only names and key count: its role decides the rest.
        let mut remote = data.clone();
        remote.issuer_type = Some("vault".into());
        for change in [
            serde_json::json!({"subject": {"organizations": ["acme"]}}),
            serde_json::json!({"usages": ["digital signature", "server auth"]}),
        ] {
            let changed = spec(change.clone());
            assert_eq!(
                reason(&decide(&observe(&changed, SecretState::Ours(&remote), T0))),
                Reason::UpToDate,
                "{change}"
            );
        }
        let renamed = spec(serde_json::json!({"dnsNames": ["other.example"]}));
        assert_eq!(
            reason(&decide(&observe(&renamed, SecretState::Ours(&remote), T0))),
            Reason::SpecMismatch
        );
        // Changing only the lifetime does not re-issue; it changes the next certificate.
        let longer = spec(serde_json::json!({"duration": "48h"}));
        assert_eq!(
            reason(&decide(&observe(&longer, SecretState::Ours(&data), T0))),
            Reason::UpToDate
        );
    }

    /// A root CA and its signer.
    fn ca_root(at: i64) -> (crate::issuer::ca::CaSigner, CertInfo) {
        let root_spec =
            spec(serde_json::json!({"commonName": "root", "isCA": true, "duration": "720h"}));
        let root = issued(&root_spec, at);
        let signer = crate::issuer::ca::CaSigner::load(
            root.tls_crt.as_deref(),
            root.tls_key.as_deref(),
            None,
            at,
        )
        .unwrap();
        let info = signer.signing_ca().clone();
        (signer, info)
    }

    /// A Secret as the CA issuer `signer` would have had it written at `at`.
    fn issued_by_ca(
        s: &CertificateSpec,
        signer: &crate::issuer::ca::CaSigner,
        at: i64,
    ) -> SecretData {
        let key = PrivateKey::generate(s.key_algorithm(), s.key_size()).unwrap();
        let signed = signer.sign(&sign_request(s, &key).unwrap(), at).unwrap();
        SecretData {
            tls_crt: Some(signed.chain_pem.into_bytes()),
            tls_key: Some(key.to_pem(KeyEncoding::Pkcs8).unwrap().into_bytes()),
            ca_crt: Some(signed.ca_pem.into_bytes()),
            issuer_type: Some("ca".into()),
            ..issued(s, at)
        }
    }

    #[test]
    fn a_leaf_of_a_replaced_ca_moves_at_its_moment_in_the_window() {
        let s = spec(serde_json::json!({}));
        let (old, _) = ca_root(T0);
        let (_, new) = ca_root(T0);
        let data = issued_by_ca(&s, &old, T0 + 10);
        let since = T0 + HOUR;
        let ca = IssuerCa {
            current: new.clone(),
            since,
            next: None,
            window: 600,
            rotating: true,
        };
        let due = ca_rotation::move_due("ns/web", since, 600);
        let mut o = observe(&s, SecretState::Ours(&data), due - 1);
        o.issuer_ca = Some(&ca);
        let Decision::UpToDate(current) = decide(&o) else {
            panic!("before its moment the leaf stays")
        };
        assert_eq!(current.renewal_time, due, "looked at again at its moment");
        o.now = due;
        let d = decide(&o);
        assert_eq!(reason(&d), Reason::IssuerCaChanged);
        assert!(
            matches!(
                d,
                Decision::Issue {
                    current: Some(_),
                    ..
                }
            ),
            "the leaf stays usable while it moves"
        );
        // Published but not signing yet: the move is scheduled from the activation.
        let (old_info, at) = (old.signing_ca().clone(), T0 + 2 * HOUR);
        let staged = IssuerCa {
            current: old_info,
            since: T0,
            next: Some((new.clone(), at)),
            window: 600,
            rotating: true,
        };
        o.issuer_ca = Some(&staged);
        o.now = T0 + HOUR;
        let Decision::UpToDate(current) = decide(&o) else {
            panic!("nothing moves before the new CA signs")
        };
        assert_eq!(
            current.renewal_time,
            ca_rotation::move_due("ns/web", at, 600)
        );
    }

    #[test]
    fn a_leaf_of_the_active_ca_or_written_after_the_change_does_not_move() {
        let s = spec(serde_json::json!({}));
        let (signer, info) = ca_root(T0);
        let (_, other) = ca_root(T0);
        let on_active = issued_by_ca(&s, &signer, T0 + 10);
        let ca = IssuerCa {
            current: info,
            since: T0 + 5,
            next: None,
            window: 0,
            rotating: true,
        };
        let mut o = observe(&s, SecretState::Ours(&on_active), T0 + HOUR);
        o.issuer_ca = Some(&ca);
        assert_eq!(reason(&decide(&o)), Reason::UpToDate);
        // Written after the change yet by another CA: the issuer's view is behind.
        let behind = IssuerCa {
            current: other,
            since: T0 + 5,
            next: None,
            window: 0,
            rotating: true,
        };
        o.issuer_ca = Some(&behind);
        assert_eq!(reason(&decide(&o)), Reason::UpToDate);
        // A self-signed leaf is never moved.
        let own = issued(&s, T0);
        let mut o = observe(&s, SecretState::Ours(&own), T0 + HOUR);
        o.issuer_ca = Some(&behind);
        assert_eq!(reason(&decide(&o)), Reason::UpToDate);
    }

    #[test]
    fn manual_trigger_fires_once_per_request() {
        let s = spec(serde_json::json!({}));
        let data = issued(&s, T0);
        let mut o = observe(&s, SecretState::Ours(&data), T0);
        o.renew_requested = Some("2026-11-22T10:00:00Z");
        assert_eq!(reason(&decide(&o)), Reason::ManualTrigger);
        o.renew_handled = Some("2026-11-22T10:00:00Z");
        assert_eq!(reason(&decide(&o)), Reason::UpToDate);
        // The Secret records the request it satisfied: a stale status cannot re-trigger it.
        let mut recorded = data.clone();
        recorded.renew_request = Some("2026-11-22T10:00:00Z".into());
        o.renew_handled = None;
        o.secret = SecretState::Ours(&recorded);
        assert_eq!(reason(&decide(&o)), Reason::UpToDate);
        assert_eq!(RENEW_ANNOTATION, "certsmith.dev/renew-requested-at");
    }

    #[test]
    fn foreign_and_duplicate_secrets_are_refused_not_issued() {
        let s = spec(serde_json::json!({}));
        assert_eq!(
            reason(&decide(&observe(
                &s,
                SecretState::Foreign { owner: None },
                T0
            ))),
            Reason::SecretConflict
        );
        assert_eq!(
            reason(&decide(&observe(
                &s,
                SecretState::Foreign { owner: Some("api") },
                T0
            ))),
            Reason::DuplicateSecretName
        );
        let mut o = observe(&s, SecretState::Missing, T0);
        o.claimed_by = Some("older");
        assert_eq!(
            reason(&decide(&o)),
            Reason::DuplicateSecretName,
            "the older claimant wins even before its Secret exists"
        );
    }

    #[test]
    fn pkcs1_keys_and_rsa_sizes_are_understood() {
        let s = spec(
            serde_json::json!({"privateKey": {"algorithm": "RSA", "size": 3072, "encoding": "PKCS1"}}),
        );
        let key = PrivateKey::generate(s.key_algorithm(), s.key_size()).unwrap();
        let signed = selfsigned::sign(&sign_request(&s, &key).unwrap(), &key, T0).unwrap();
        let data = SecretData {
            tls_crt: Some(signed.chain_pem.into_bytes()),
            tls_key: Some(key.to_pem(KeyEncoding::Pkcs1).unwrap().into_bytes()),
            ca_crt: Some(signed.ca_pem.into_bytes()),
            issuer_name: Some("root".into()),
            issuer_kind: Some("ClusterIssuer".into()),
            issuer_type: None,
            revision: None,
            renew_request: None,
            issued_at: None,
            outputs: BTreeMap::new(),
            owned_by_certificate: false,
        };
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Ours(&data), T0))),
            Reason::UpToDate
        );
        let smaller = spec(serde_json::json!({"privateKey": {"algorithm": "RSA", "size": 2048}}));
        assert_eq!(
            reason(&decide(&observe(&smaller, SecretState::Ours(&data), T0))),
            Reason::SpecMismatch
        );
    }

    #[test]
    fn a_ca_crt_that_does_not_anchor_the_chain_is_repaired() {
        let s = spec(serde_json::json!({}));
        let good = issued(&s, T0);
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Ours(&good), T0))),
            Reason::UpToDate
        );
        let other = issued(&s, T0);
        for bad in [
            None,
            Some(b"not a certificate".to_vec()),
            Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec()),
            // A real certificate, but not the one that issued tls.crt.
            other.ca_crt.clone(),
        ] {
            let mut data = good.clone();
            data.ca_crt = bad;
            assert_eq!(
                reason(&decide(&observe(&s, SecretState::Ours(&data), T0))),
                Reason::InvalidData
            );
        }
    }

    #[test]
    fn a_pending_request_secret_name_is_refused() {
        let s = spec(serde_json::json!({"secretName": "api-certsmith-pending"}));
        assert_eq!(
            reason(&decide(&observe(&s, SecretState::Missing, T0))),
            Reason::InvalidSpec
        );
    }

    #[test]
    fn every_check_has_its_own_name() {
        let names: std::collections::BTreeSet<&str> = CHECKS.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), CHECKS.len());
        // Refusals come before anything that would issue into the Secret.
        let position = |n: &str| CHECKS.iter().position(|c| c.name == n);
        assert!(position("secret-not-ours") < position("data-missing"));
        assert!(position("expired") < position("renewal-due"));
    }

    #[test]
    fn the_next_revision_never_overflows() {
        assert_eq!(next_revision(None, None), Ok(1));
        assert_eq!(next_revision(Some(3), Some(5)), Ok(6));
        assert_eq!(next_revision(Some(3), Some(-7)), Ok(4));
        assert_eq!(
            next_revision(Some(1), Some(i64::MAX)).map_err(|p| p.reason),
            Err(Reason::InvalidData)
        );
    }
}
