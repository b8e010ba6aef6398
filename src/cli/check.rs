//! `certsmith check api [--wait 2m]`: is the certsmith API usable, for scripts, CI and GitOps
//! waits?
//!
//! Two things must hold:
//!
//! 1. **The CRDs are served**: API discovery lists `certsmith.dev/v1alpha1` with
//!    `certificates`, `issuers` and `clusterissuers` (the API server lists a CRD's resource
//!    only once the CRD is Established, so a Certificate applied now is accepted).
//! 2. **The operator answers**, shown by one of:
//!    - its leader-election Lease (the default; the Helm chart runs leader election): held,
//!      and renewed within its lease duration (plus 5 s for clock skew) by this machine's
//!      clock — or, whatever the clocks say, renewed while this command watched it. Only a
//!      live leader that reaches the API server renews it. `--lease NAMESPACE/NAME` names it;
//!      otherwise a Lease named `certsmith` (the chart's, for a release named certsmith) or
//!      `certsmith-controller` (the binary's default) in any namespace will do;
//!    - `--operator-url URL`: `URL/readyz` answers 200 (the operator's health port, 9402,
//!      through a Service, `kubectl port-forward` or from inside the cluster) — for an
//!      operator without leader election;
//!    - `--crds-only` skips this part.
//!
//! Exit 0 with one line saying what was seen; otherwise exit 1 with one line saying what is
//! missing, after retrying every 2 s for `--wait` (default: no retry).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::ListParams;

use super::{CliError, explain};

/// The Lease names looked for when `--lease` is not given.
pub const DEFAULT_LEASE_NAMES: [&str; 2] = ["certsmith", "certsmith-controller"];

/// Slack for the clocks of this machine and the operator's node.
const CLOCK_SKEW: i64 = 5;

#[derive(clap::Args, Debug, Clone)]
pub struct ApiArgs {
    /// Keep trying this long, as a Go duration (`30s`, `2m`); default: check once.
    #[arg(long, default_value = "0s", value_parser = crate::api::duration::parse)]
    pub wait: Duration,
    /// Ask the operator itself: GET <URL>/readyz must answer 200 (e.g. http://localhost:9402
    /// after `kubectl port-forward`). Instead of looking at its Lease.
    #[arg(long, conflicts_with = "lease")]
    pub operator_url: Option<String>,
    /// The operator's leader-election Lease, NAMESPACE/NAME. Default: a Lease named certsmith
    /// or certsmith-controller in any namespace.
    #[arg(long)]
    pub lease: Option<String>,
    /// Only check that the CRDs are served.
    #[arg(long, conflicts_with_all = ["operator_url", "lease"])]
    pub crds_only: bool,
}

pub async fn api(client: kube::Client, args: ApiArgs) -> Result<String, CliError> {
    let started = tokio::time::Instant::now();
    let deadline = started + args.wait;
    let mut watch = Watch::default();
    loop {
        match once(&client, &args, &mut watch).await {
            Ok(line) => return Ok(format!("{line}\n")),
            Err(reason) => {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(if args.wait.is_zero() {
                        reason
                    } else {
                        CliError(format!(
                            "not ready after {}: {reason}",
                            crate::api::duration::format(args.wait)
                        ))
                    });
                }
                tokio::time::sleep((deadline - now).min(Duration::from_secs(2))).await;
            }
        }
    }
}

/// The renew times first seen for each Lease: one that moves shows a live holder whatever
/// the clocks say.
#[derive(Default)]
struct Watch {
    first_seen: BTreeMap<String, Option<String>>,
}

async fn once(
    client: &kube::Client,
    args: &ApiArgs,
    watch: &mut Watch,
) -> Result<String, CliError> {
    let group = <crate::api::Certificate as kube::Resource>::group(&());
    let served = served(client, &group).await?;
    if args.crds_only {
        return Ok(served);
    }
    let operator = match &args.operator_url {
        Some(url) => readyz(url).await?,
        None => lease(client, args.lease.as_deref(), watch).await?,
    };
    Ok(format!("{served}; {operator}"))
}

/// Discovery lists the three resources (certificates, issuers, clusterissuers) of
/// `<group>/v1alpha1`; the group is a parameter so tests can ask about one that is not there.
pub async fn served(client: &kube::Client, group: &str) -> Result<String, CliError> {
    let version = format!("{group}/v1alpha1");
    let resources = match client.list_api_group_resources(&version).await {
        Ok(list) => list.resources,
        Err(kube::Error::Api(status)) if status.code == 404 => {
            return Err(CliError(format!(
                "{version} is not served: the certsmith CRDs are not installed (`certsmith crds | kubectl apply --server-side -f -`)"
            )));
        }
        Err(e) => return Err(explain(e, &format!("the {version} API"))),
    };
    let missing: Vec<&str> = ["certificates", "issuers", "clusterissuers"]
        .into_iter()
        .filter(|want| !resources.iter().any(|r| r.name == *want))
        .collect();
    if !missing.is_empty() {
        return Err(CliError(format!(
            "{version} does not serve {}: the certsmith CRDs are installed only in part",
            missing.join(", ")
        )));
    }
    Ok(format!(
        "{version} served (certificates, issuers, clusterissuers)"
    ))
}

async fn readyz(base: &str) -> Result<String, CliError> {
    let url = format!("{}/readyz", base.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| CliError(format!("cannot build an HTTP client: {e}")))?;
    let response = http.get(&url).send().await.map_err(|e| {
        CliError(format!(
            "the operator does not answer at {url}: {}",
            super::chain(&e)
        ))
    })?;
    let status = response.status();
    if status.is_success() {
        Ok(format!(
            "operator ready ({url} answered {})",
            status.as_u16()
        ))
    } else {
        Err(CliError(format!(
            "the operator is not ready: {url} answered {status}"
        )))
    }
}

async fn lease(
    client: &kube::Client,
    named: Option<&str>,
    watch: &mut Watch,
) -> Result<String, CliError> {
    let leases = match named {
        Some(named) => {
            let Some((namespace, name)) = named.split_once('/') else {
                return Err(CliError(format!(
                    "--lease {named}: expected NAMESPACE/NAME"
                )));
            };
            let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
            match api.get_opt(name).await {
                Ok(Some(lease)) => vec![lease],
                Ok(None) => {
                    return Err(CliError(format!(
                        "no Lease {named}: the operator has not run with leader election under that name"
                    )));
                }
                Err(e) => return Err(explain(e, &format!("Lease {named}"))),
            }
        }
        None => {
            let api: Api<Lease> = Api::all(client.clone());
            let mut found = Vec::new();
            for name in DEFAULT_LEASE_NAMES {
                let params = ListParams::default().fields(&format!("metadata.name={name}"));
                match api.list(&params).await {
                    Ok(list) => found.extend(list.items),
                    Err(e) => {
                        return Err(match explain(e, "Leases") {
                            CliError(m) if m.starts_with("forbidden") => CliError(format!(
                                "{m} (name the operator's Lease with --lease NAMESPACE/NAME, or use --operator-url)"
                            )),
                            other => other,
                        });
                    }
                }
            }
            if found.is_empty() {
                return Err(CliError(format!(
                    "no operator Lease ({} in any namespace): the operator is not running with leader election; name its Lease with --lease NAMESPACE/NAME, or check it with --operator-url",
                    DEFAULT_LEASE_NAMES.join(" or ")
                )));
            }
            found
        }
    };
    let now = jiff::Timestamp::now().as_second();
    let mut reasons = Vec::new();
    for lease in &leases {
        match judge(lease, now, watch) {
            Ok(line) => return Ok(line),
            Err(reason) => reasons.push(reason),
        }
    }
    Err(CliError(reasons.join("; ")))
}

/// Whether one Lease shows a live holder (pure but for `watch`).
fn judge(lease: &Lease, now: i64, watch: &mut Watch) -> Result<String, String> {
    let id = format!(
        "{}/{}",
        lease.metadata.namespace.as_deref().unwrap_or_default(),
        lease.metadata.name.as_deref().unwrap_or_default()
    );
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.filter(|h| !h.is_empty());
    let renewed = spec.renew_time.as_ref().map(|t| t.0.as_second());
    let renew_text = spec.renew_time.as_ref().map(|t| t.0.to_string());
    let first = watch
        .first_seen
        .entry(id.clone())
        .or_insert_with(|| renew_text.clone())
        .clone();
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let Some(holder) = holder else {
        return Err(format!(
            "Lease {id} is not held by anyone (the operator stopped or is starting)"
        ));
    };
    let Some(renewed) = renewed else {
        return Err(format!("Lease {id} has no renew time"));
    };
    let age = now - renewed;
    if age <= duration + CLOCK_SKEW {
        return Ok(format!(
            "operator answers (Lease {id} held by {holder}, renewed {}s ago)",
            age.max(0)
        ));
    }
    if first != renew_text {
        return Ok(format!(
            "operator answers (Lease {id} held by {holder}, renewed while watched)"
        ));
    }
    Err(format!(
        "Lease {id} held by {holder} was last renewed {}s ago, longer than its {duration}s lease: the operator is not running (or this machine's clock is off)",
        age
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: Option<&str>, renewed: Option<i64>) -> Lease {
        Lease {
            metadata: kube::api::ObjectMeta {
                name: Some("certsmith".into()),
                namespace: Some("ops".into()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: Some(15),
                renew_time: renewed.map(|s| {
                    MicroTime(
                        jiff::Timestamp::from_second(s).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
                    )
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_lease_renewed_within_its_duration_shows_a_live_operator() {
        let mut watch = Watch::default();
        let line = judge(&lease(Some("pod-a"), Some(1000)), 1010, &mut watch).unwrap();
        assert_eq!(
            line,
            "operator answers (Lease ops/certsmith held by pod-a, renewed 10s ago)"
        );
        // Within the skew allowance.
        assert!(judge(&lease(Some("pod-a"), Some(1000)), 1020, &mut watch).is_ok());
    }

    #[test]
    fn a_stale_or_released_lease_does_not() {
        let mut watch = Watch::default();
        let stale = judge(&lease(Some("pod-a"), Some(1000)), 1100, &mut watch).unwrap_err();
        assert!(
            stale.contains("last renewed 100s ago, longer than its 15s lease"),
            "{stale}"
        );
        let released = judge(&lease(None, Some(1000)), 1001, &mut watch).unwrap_err();
        assert!(released.contains("not held by anyone"), "{released}");
        let empty = judge(&lease(Some(""), Some(1000)), 1001, &mut watch).unwrap_err();
        assert!(empty.contains("not held by anyone"), "{empty}");
    }

    #[test]
    fn a_renewal_seen_while_waiting_counts_whatever_the_clocks_say() {
        let mut watch = Watch::default();
        // This machine's clock is an hour ahead: the renew time looks stale ...
        assert!(judge(&lease(Some("pod-a"), Some(1000)), 4600, &mut watch).is_err());
        // ... but it moved since it was first seen.
        let line = judge(&lease(Some("pod-a"), Some(1005)), 4605, &mut watch).unwrap();
        assert!(line.contains("renewed while watched"), "{line}");
    }
}
