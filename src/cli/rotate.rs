//! `certsmith rotate`: the emergency rotation ceremony from the command line. Sets the
//! rotation annotations on the issuer (what GitOps can commit instead), then shows the
//! issuer's `status.emergencyRotation` as a live progress bar until every Certificate is
//! re-issued (exit 0) or the rest are failing (exit non-zero).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::api::{
    ClusterIssuer, EMERGENCY_ROTATION_ANNOTATION, EMERGENCY_ROTATION_RATE_ANNOTATION,
    EMERGENCY_ROTATION_REASON_ANNOTATION, EMERGENCY_ROTATION_REVOKE_ANNOTATION,
    EmergencyRotationStatus, Issuer, IssuerStatus, RevocationReason,
};

use super::{CliError, explain};

const POLL: Duration = Duration::from_millis(500);

/// Which issuer, and how.
pub struct Rotation {
    pub issuer: String,
    /// The Issuer's namespace; None for a ClusterIssuer.
    pub namespace: Option<String>,
    pub revoke: bool,
    pub rate: u32,
    pub reason: RevocationReason,
    pub timeout: Duration,
}

/// Where a rotation stands (pure).
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Running,
    Finished,
    /// Every Certificate was asked and the ones not done are failing.
    Failing(u32),
}

pub fn verdict(status: &EmergencyRotationStatus) -> Verdict {
    if status.finished_at.is_some() {
        Verdict::Finished
    } else if status.failed > 0
        && status.triggered >= status.total
        && status.done.saturating_add(status.failed) >= status.total
    {
        Verdict::Failing(status.failed)
    } else {
        Verdict::Running
    }
}

pub async fn rotate(client: kube::Client, r: Rotation) -> Result<String, CliError> {
    let id = jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {
        EMERGENCY_ROTATION_ANNOTATION: id,
        EMERGENCY_ROTATION_REVOKE_ANNOTATION: r.revoke.to_string(),
        EMERGENCY_ROTATION_RATE_ANNOTATION: r.rate.to_string(),
        EMERGENCY_ROTATION_REASON_ANNOTATION: r.reason.as_str(),
    }}});
    let what = match &r.namespace {
        Some(ns) => format!("Issuer {ns}/{}", r.issuer),
        None => format!("ClusterIssuer {}", r.issuer),
    };
    let pp = PatchParams::default();
    match &r.namespace {
        Some(ns) => Api::<Issuer>::namespaced(client.clone(), ns)
            .patch(&r.issuer, &pp, &Patch::Merge(&patch))
            .await
            .map(|_| ()),
        None => Api::<ClusterIssuer>::all(client.clone())
            .patch(&r.issuer, &pp, &Patch::Merge(&patch))
            .await
            .map(|_| ()),
    }
    .map_err(|e| explain(e, &what))?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{bar:40}] {pos}/{len} re-issued {msg}",
        )
        .map_err(|e| CliError(e.to_string()))?
        .progress_chars("=> "),
    );
    bar.set_message(format!("({what}, {}/s)", r.rate));
    let started = Instant::now();
    loop {
        let status = read(&client, &r).await.map_err(|e| explain(e, &what))?;
        if let Some(s) = status
            .and_then(|s| s.emergency_rotation)
            .filter(|s| s.request == id)
        {
            bar.set_length(u64::from(s.total));
            bar.set_position(u64::from(s.done));
            bar.set_message(format!("(asked {}, failing {})", s.triggered, s.failed));
            match verdict(&s) {
                Verdict::Finished => {
                    bar.finish();
                    let revoked = if s.revoke {
                        ", each superseded certificate revoked"
                    } else {
                        ""
                    };
                    return Ok(format!(
                        "emergency rotation of {what} done: {} certificate(s) re-issued with new keys{revoked}, from {} to {}\n",
                        s.done,
                        s.started_at,
                        s.finished_at.unwrap_or_default()
                    ));
                }
                Verdict::Failing(n) => {
                    bar.abandon();
                    return Err(CliError(format!(
                        "emergency rotation of {what}: {} of {} done, {n} failing (the operator keeps retrying; `certsmith status -A` shows why)",
                        s.done, s.total
                    )));
                }
                Verdict::Running => {}
            }
        }
        if started.elapsed() >= r.timeout {
            bar.abandon();
            return Err(CliError(format!(
                "timed out after {}s; the rotation goes on (see the status of {what})",
                r.timeout.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn read(client: &kube::Client, r: &Rotation) -> Result<Option<IssuerStatus>, kube::Error> {
    Ok(match &r.namespace {
        Some(ns) => {
            Api::<Issuer>::namespaced(client.clone(), ns)
                .get(&r.issuer)
                .await?
                .status
        }
        None => {
            Api::<ClusterIssuer>::all(client.clone())
                .get(&r.issuer)
                .await?
                .status
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_failing_or_running() {
        let mut s = EmergencyRotationStatus {
            total: 3,
            triggered: 3,
            done: 2,
            failed: 1,
            ..Default::default()
        };
        assert_eq!(verdict(&s), Verdict::Failing(1));
        s.triggered = 2;
        assert_eq!(verdict(&s), Verdict::Running);
        s.failed = 0;
        s.finished_at = Some("t".into());
        assert_eq!(verdict(&s), Verdict::Finished);
    }
}
