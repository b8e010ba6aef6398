//! CA rotation for CA issuers: publish the renewed CA before it signs, move the leaves, then
//! retire the old CA. The mechanism:
//!
//! 1. When an `isCA: true` Certificate renews, its Secret keeps the replaced key pair as
//!    `previous-tls.crt`/`previous-tls.key` (`certificate::store`).
//! 2. A CA issuer reading that Secret publishes both CAs (TrustBundles source them) and keeps
//!    signing with the previous one until `trustPropagationDelay` after the new one was
//!    written (`issuer::ca`): publish before use.
//! 3. Then the new CA signs, and each leaf not signed by it is re-issued (`IssuerCAChanged`,
//!    `certificate::decide`) at its own moment in `rotationWindow`, at most
//!    `rotationRateLimit` per second per issuer (`pacing`).
//! 4. The previous CA leaves the bundles once no Ready leaf chains to it, or it expired
//!    (`plan`); the issuer's `status.caRotation` shows the phase and the counts.
//!
//! A CA replaced out of band (a new key pair written into the Secret) has no previous key to
//! keep signing with: leaves move at once, and the old CA, remembered in the status, stays
//! published for `replacedCARetention` at most.

pub mod pacing;
pub mod plan;

use crate::api::conditions::READY;
use crate::api::{CaIssuer, CaRotationStatus};
use crate::issuer::IssuerId;
use crate::issuer::ca::{CaSigner, RotationSettings};

use super::Context;
pub use pacing::{IssuerCa, Rotations, move_due};

/// Look at a CA issuer's rotation: compute its status, and tell the Certificate controller
/// which CA leaves must be on. Returns the status and when to look again (seconds).
pub fn observe(
    ctx: &Context,
    id: &IssuerId,
    spec: &CaIssuer,
    signer: &CaSigner,
    last: Option<&CaRotationStatus>,
) -> (CaRotationStatus, Option<i64>) {
    let settings = RotationSettings::of(spec);
    let now = ctx.now();
    let facts = plan::CaFacts {
        signing: signer.signing_ca(),
        next: signer.next_ca(),
        previous: signer.previous_ca(),
        activates_at: signer.activates_at(),
    };
    let leaves = ready_leaves(ctx, id);
    let planned = plan::plan(&facts, last, &leaves, &settings, now);
    let issuer_ca = IssuerCa {
        current: signer.signing_ca().clone(),
        since: match facts.next {
            Some(_) => signer.signing_ca().not_before,
            None => planned.moving_since,
        },
        next: facts.next.cloned().zip(facts.activates_at),
        window: settings.window,
        rotating: [plan::PUBLISHING, plan::MOVING_LEAVES].contains(&planned.status.phase.as_str()),
    };
    ctx.shared
        .ca_rotations
        .set(id, issuer_ca, settings.rate_limit);
    ctx.metrics.ca_rotation(
        id.kind.as_str(),
        id.namespace.as_deref().unwrap_or(""),
        &id.name,
        &planned.status,
    );
    (planned.status, planned.recheck_in)
}

/// The authority key identifier of each Ready Certificate of the issuer `id`, from the cache
/// (its Certificates found in the index: this runs each time a rotating issuer is looked at).
/// Every scope's cache: a ClusterIssuer's leaves may be in any watched namespace.
fn ready_leaves(ctx: &Context, id: &IssuerId) -> Vec<Option<String>> {
    ctx.shared
        .rotations
        .stores()
        .iter()
        .flat_map(|certificates| certificates.using(id))
        .filter_map(|c| {
            let status = c.valid()?.status.as_ref()?;
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == READY && c.status == "True");
            ready.then(|| status.authority_key_id.clone())
        })
        .collect()
}
