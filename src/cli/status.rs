//! `certsmith status`: the fleet at a glance, or one Certificate in depth.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::api::Certificate;
use crate::api::conditions::{self, READY, RECONCILING, STALLED};

use super::{CliError, explain, until};

pub async fn fleet(client: kube::Client, namespace: Option<&str>) -> Result<String, CliError> {
    let api: Api<Certificate> = match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let certs = api
        .list(&ListParams::default())
        .await
        .map_err(|e| explain(e, "Certificates"))?
        .items;
    Ok(table(&certs, crate::time::now()))
}

fn seconds(t: Option<&str>) -> Option<i64> {
    t.and_then(crate::time::parse)
}

/// The fleet table and its summary line (pure).
pub fn table(certs: &[Certificate], now: i64) -> String {
    let mut rows = vec![
        [
            "NAMESPACE",
            "NAME",
            "READY",
            "ISSUER",
            "NOT AFTER",
            "RENEWS IN",
            "LAST FAILURE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let (mut ready, mut retrying, mut not_ready) = (0, 0, 0);
    let mut soonest: Option<(i64, String)> = None;
    for cert in certs {
        let status = cert.status.clone().unwrap_or_default();
        let is_ready =
            conditions::find(&status.conditions, READY).is_some_and(|c| c.status == "True");
        let failure = [RECONCILING, STALLED, READY]
            .iter()
            .filter_map(|t| conditions::find(&status.conditions, t))
            .find(|c| c.type_ != READY || c.status != "True")
            .map(|c| c.reason.clone());
        match (is_ready, &failure) {
            (true, None) => ready += 1,
            (true, Some(_)) => retrying += 1,
            (false, _) => not_ready += 1,
        }
        let id = format!(
            "{}/{}",
            cert.namespace().unwrap_or_default(),
            cert.name_any()
        );
        if let Some(t) = seconds(status.not_after.as_deref())
            && soonest.as_ref().is_none_or(|(s, _)| t < *s)
        {
            soonest = Some((t, id));
        }
        rows.push(vec![
            cert.namespace().unwrap_or_default(),
            cert.name_any(),
            conditions::find(&status.conditions, READY)
                .map_or("Unknown".into(), |c| c.status.clone()),
            format!(
                "{}/{}",
                cert.spec.issuer_ref.kind.as_str(),
                cert.spec.issuer_ref.name
            ),
            status.not_after.clone().unwrap_or_else(|| "-".into()),
            seconds(status.renewal_time.as_deref()).map_or("-".into(), |t| until(now, t)),
            failure.unwrap_or_else(|| "-".into()),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let soonest = soonest.map_or("none".to_string(), |(t, id)| {
        format!("{id} at {} (in {})", crate::time::rfc3339(t), until(now, t))
    });
    let _ = writeln!(
        out,
        "\n{} certificates: {ready} ready, {retrying} ready but retrying, {not_ready} not ready; soonest expiry: {soonest}",
        certs.len()
    );
    out
}

pub async fn one(client: kube::Client, namespace: &str, name: &str) -> Result<String, CliError> {
    let cert = Api::<Certificate>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|e| explain(e, &format!("Certificate {namespace}/{name}")))?;
    let now = jiff::Timestamp::now().as_second();
    let mut out = table(std::slice::from_ref(&cert), now);
    let status = cert.status.clone().unwrap_or_default();
    let _ = writeln!(out, "\nConditions:");
    for c in &status.conditions {
        let _ = writeln!(
            out,
            "  {:<12} {:<6} {:<20} {}  (since {})",
            c.type_, c.status, c.reason, c.message, c.last_transition_time
        );
    }
    let _ = writeln!(
        out,
        "Revision: {}   Failed attempts: {}",
        status.revision.unwrap_or(0),
        status.failed_issuance_attempts.unwrap_or(0)
    );
    let _ = write!(out, "{}", history(&status.history));
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), namespace);
    let selector = format!("regarding.kind=Certificate,regarding.name={name}");
    match events.list(&ListParams::default().fields(&selector)).await {
        Ok(list) => {
            let mut items = list.items;
            items.sort_by_key(|e| {
                e.event_time
                    .as_ref()
                    .map(|t| t.0)
                    .or(e.deprecated_last_timestamp.as_ref().map(|t| t.0))
            });
            let _ = writeln!(out, "Recent events:");
            for e in items.iter().rev().take(10).rev() {
                let when = e
                    .event_time
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {when}  {:<8} {:<18} {}",
                    e.type_.clone().unwrap_or_default(),
                    e.reason.clone().unwrap_or_default(),
                    e.note.clone().unwrap_or_default()
                );
            }
        }
        Err(e) => {
            let _ = writeln!(out, "Recent events: {}", explain(e, "Events"));
        }
    }
    let _ = writeln!(out, "\nSecret {namespace}/{}:", cert.spec.secret_name);
    match Api::<Secret>::namespaced(client, namespace)
        .get_opt(&cert.spec.secret_name)
        .await
    {
        Ok(Some(secret)) => {
            for line in super::inspect::describe_secret(&secret, now).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        Ok(None) => {
            let _ = writeln!(out, "  does not exist yet");
        }
        Err(e) => {
            let _ = writeln!(out, "  {}", explain(e, "Secret"));
        }
    }
    Ok(out)
}

/// The certificates issued for a Certificate (newest first), with revocations.
pub fn history(entries: &[crate::api::IssuedCertificate]) -> String {
    if entries.is_empty() {
        return String::new();
    }
    let mut out = String::from("History (newest first):\n");
    let _ = writeln!(
        out,
        "  {:<34} {:<20} {:<20} {:<24} {:<16} REVOKED",
        "SERIAL", "NOT BEFORE", "NOT AFTER", "ISSUER", "CA SHA-256"
    );
    for e in entries {
        let fingerprint = e
            .ca_fingerprint
            .as_deref()
            .map_or_else(|| "-".to_string(), |f| f.chars().take(16).collect());
        let revoked = match (&e.revoked_at, e.revocation_reason, e.revocation_requested) {
            (Some(at), reason, _) => {
                format!("{at} ({})", reason.map_or("unspecified", |r| r.as_str()))
            }
            (None, _, Some(reason)) => format!("pending ({reason})"),
            (None, _, None) => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "  {:<34} {:<20} {:<20} {:<24} {:<16} {revoked}",
            e.serial_number, e.not_before, e.not_after, e.issuer, fingerprint
        );
    }
    out
}
