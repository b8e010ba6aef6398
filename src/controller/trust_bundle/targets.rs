//! Writing a bundle: a ConfigMap named after the TrustBundle in every selected namespace, and
//! optionally a ClusterTrustBundle. Writes happen only when the content differs; a target
//! that exists without the `certsmith.dev/trust-bundle=<name>` label is someone else's and is
//! never touched (`TargetConflict`). Creating is a POST (it fails on an existing object, so
//! nothing is taken over), updating a PUT at the version read (nothing newer is overwritten),
//! deleting is preconditioned on UID and version.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use k8s_openapi::api::certificates::v1beta1::{ClusterTrustBundle, ClusterTrustBundleSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::api::{LabelSelector, TrustBundle};
use crate::reason::{Problem, Reason};

use super::{BUNDLE_LABEL, Bundles};

/// Parallel writes while syncing one bundle's namespaces.
const PARALLEL_WRITES: usize = 8;

/// What syncing the targets came to.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Namespaces holding the current bundle.
    pub namespaces: i32,
    /// What was written or removed, for the Event.
    pub changes: Vec<String>,
    /// Targets refused (not ours) or that failed to write.
    pub problems: Vec<Problem>,
}

/// Whether a namespace is selected: it matches and is not being deleted (nothing can be
/// written into a terminating namespace, and what it holds goes with it).
pub fn selects(selector: &LabelSelector, namespace: &ObjectMeta) -> bool {
    let empty = BTreeMap::new();
    namespace.deletion_timestamp.is_none()
        && selector.matches(namespace.labels.as_ref().unwrap_or(&empty))
}

/// The namespaces the operator serves that `selector` selects.
pub fn selected(
    stores: &[Store<PartialObjectMeta<Namespace>>],
    selector: &LabelSelector,
) -> BTreeSet<String> {
    stores
        .iter()
        .flat_map(|s| s.state())
        .filter(|ns| selects(selector, &ns.metadata))
        .map(|ns| ns.name_any())
        .collect()
}

/// Whether an object carries the label naming `bundle` as its writer.
pub fn ours(meta: &ObjectMeta, bundle: &str) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(BUNDLE_LABEL))
        .is_some_and(|v| v == bundle)
}

/// The owner reference every target carries: deleting the TrustBundle deletes them (the
/// garbage collector; a namespaced object may have a cluster-scoped owner).
fn owner(tb: &TrustBundle) -> OwnerReference {
    OwnerReference {
        api_version: TrustBundle::api_version(&()).into_owned(),
        kind: TrustBundle::kind(&()).into_owned(),
        name: tb.name_any(),
        uid: tb.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

/// `meta` as it should be: our label, our owner reference (replacing one to an earlier
/// TrustBundle of the same name), everything else as found.
fn owned_meta(meta: &ObjectMeta, tb: &TrustBundle) -> ObjectMeta {
    let mut meta = meta.clone();
    meta.managed_fields = None;
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(BUNDLE_LABEL.into(), tb.name_any());
    let mine = owner(tb);
    let mut refs: Vec<OwnerReference> = meta
        .owner_references
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| !(r.kind == mine.kind && r.name == mine.name))
        .collect();
    refs.push(mine);
    meta.owner_references = Some(refs);
    meta
}

/// Whether `meta` is ours with exactly our owner reference.
fn owned_as_wanted(meta: &ObjectMeta, tb: &TrustBundle) -> bool {
    let mine = owner(tb);
    let refs: Vec<&OwnerReference> = meta
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.kind == mine.kind && r.name == mine.name)
        .collect();
    ours(meta, &tb.name_any()) && refs.len() == 1 && refs[0].uid == mine.uid
}

/// The ConfigMap a namespace should hold (built over the live one, if any).
fn desired_config_map(
    tb: &TrustBundle,
    namespace: &str,
    key: &str,
    pem: &str,
    live: Option<&ConfigMap>,
) -> ConfigMap {
    let meta = match live {
        Some(live) => live.metadata.clone(),
        None => ObjectMeta {
            name: Some(tb.name_any()),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
    };
    ConfigMap {
        metadata: owned_meta(&meta, tb),
        data: Some(BTreeMap::from([(key.to_string(), pem.to_string())])),
        binary_data: None,
        immutable: None,
    }
}

/// Whether a live ConfigMap holds exactly what it should.
fn config_map_up_to_date(live: &ConfigMap, tb: &TrustBundle, key: &str, pem: &str) -> bool {
    let data_ok = live
        .data
        .as_ref()
        .is_some_and(|d| d.len() == 1 && d.get(key).is_some_and(|v| v == pem));
    let binary_empty = live.binary_data.as_ref().is_none_or(BTreeMap::is_empty);
    data_ok && binary_empty && owned_as_wanted(&live.metadata, tb)
}

/// What was checked of a namespace's ConfigMap: it held (or was given) `digest` at `version`.
/// With the metadata cache showing the same version, the next reconcile skips the read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    version: String,
    digest: String,
}

fn digest(tb: &TrustBundle, key: &str, pem: &str) -> String {
    let mut h = Sha256::new();
    for part in [tb.metadata.uid.as_deref().unwrap_or_default(), key, pem] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

enum Held {
    Already,
    Written,
}

/// Write the bundle into every selected namespace, and remove it from namespaces no longer
/// selected.
pub async fn sync_config_maps(b: &Bundles, tb: &TrustBundle, pem: &str) -> Outcome {
    let name = tb.name_any();
    let key = tb.spec.target.config_map.key.as_str();
    let targets = selected(&b.namespaces, &tb.spec.target.namespace_selector);
    let want = digest(tb, key, pem);
    let want = want.as_str();
    let results: Vec<(String, Result<Held, Problem>)> =
        futures::stream::iter(targets.iter().cloned())
            .map(|ns| async move {
                let result = sync_one(b, tb, &ns, key, pem, want).await;
                (ns, result)
            })
            .buffer_unordered(PARALLEL_WRITES)
            .collect()
            .await;
    let mut outcome = Outcome::default();
    for (ns, result) in results {
        match result {
            Ok(Held::Already) => outcome.namespaces += 1,
            Ok(Held::Written) => {
                outcome.namespaces += 1;
                outcome.changes.push(format!("wrote {ns}/{name}"));
            }
            Err(p) => outcome.problems.push(p),
        }
    }
    // Ours, but in a namespace no longer selected (a terminating one empties itself).
    let stale: Vec<std::sync::Arc<PartialObjectMeta<ConfigMap>>> = b
        .config_maps
        .iter()
        .flat_map(|s| s.state())
        .filter(|cm| cm.name_any() == name && ours(&cm.metadata, &name))
        .filter(|cm| !targets.contains(&cm.namespace().unwrap_or_default()))
        .filter(|cm| !terminating(b, &cm.namespace().unwrap_or_default()))
        .collect();
    for cm in stale {
        let ns = cm.namespace().unwrap_or_default();
        match delete_exactly(
            &Api::<ConfigMap>::namespaced(b.ctx.client.clone(), &ns),
            &cm.metadata,
            &b.ctx,
        )
        .await
        {
            Ok(()) => outcome.changes.push(format!("removed {ns}/{name}")),
            Err(e) => outcome.problems.push(Problem::new(
                Reason::TargetWriteFailed,
                format!("removing ConfigMap {ns}/{name}: {e}"),
            )),
        }
        if let Ok(mut verified) = b.verified.lock() {
            verified.remove(&(ns, name.clone()));
        }
    }
    outcome.problems.sort_by(|a, b| a.message.cmp(&b.message));
    outcome
}

fn terminating(b: &Bundles, namespace: &str) -> bool {
    let reference = ObjectRef::<PartialObjectMeta<Namespace>>::new(namespace);
    b.namespaces
        .iter()
        .filter_map(|s| s.get(&reference))
        .any(|ns| ns.metadata.deletion_timestamp.is_some())
}

/// One namespace's ConfigMap.
async fn sync_one(
    b: &Bundles,
    tb: &TrustBundle,
    ns: &str,
    key: &str,
    pem: &str,
    want: &str,
) -> Result<Held, Problem> {
    let name = tb.name_any();
    let cache_key = (ns.to_string(), name.clone());
    let reference = ObjectRef::<PartialObjectMeta<ConfigMap>>::new(&name).within(ns);
    let cached_version = b
        .config_maps
        .iter()
        .find_map(|s| s.get(&reference))
        .filter(|cm| ours(&cm.metadata, &name))
        .and_then(|cm| cm.resource_version());
    let known = b
        .verified
        .lock()
        .ok()
        .and_then(|v| v.get(&cache_key).cloned());
    if let (Some(version), Some(known)) = (&cached_version, &known)
        && known.version == *version
        && known.digest == want
    {
        return Ok(Held::Already);
    }
    let api: Api<ConfigMap> = Api::namespaced(b.ctx.client.clone(), ns);
    let failed = |e: kube::Error| {
        Problem::new(
            Reason::TargetWriteFailed,
            format!("writing ConfigMap {ns}/{name}: {e}"),
        )
    };
    let live = api.get_opt(&name).await.map_err(|e| {
        Problem::new(
            Reason::TargetWriteFailed,
            format!("reading ConfigMap {ns}/{name}: {e}"),
        )
    })?;
    let remember = |written: &ConfigMap| {
        if let (Some(version), Ok(mut verified)) = (written.resource_version(), b.verified.lock()) {
            verified.insert(
                cache_key.clone(),
                Verified {
                    version,
                    digest: want.to_string(),
                },
            );
        }
    };
    let params = PostParams {
        field_manager: Some(crate::secret::FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match live {
        Some(live) if !ours(&live.metadata, &name) => Err(Problem::new(
            Reason::TargetConflict,
            format!(
                "ConfigMap {ns}/{name} exists and was not written by this TrustBundle (no {BUNDLE_LABEL}={name} label): left alone"
            ),
        )),
        Some(live) if config_map_up_to_date(&live, tb, key, pem) => {
            remember(&live);
            Ok(Held::Already)
        }
        Some(live) => {
            leading(&b.ctx)?;
            let desired = desired_config_map(tb, ns, key, pem, Some(&live));
            let written = api
                .replace(&name, &params, &desired)
                .await
                .map_err(failed)?;
            remember(&written);
            Ok(Held::Written)
        }
        None => {
            leading(&b.ctx)?;
            let desired = desired_config_map(tb, ns, key, pem, None);
            let written = api.create(&params, &desired).await.map_err(failed)?;
            remember(&written);
            Ok(Held::Written)
        }
    }
}

fn leading(ctx: &super::super::Context) -> Result<(), Problem> {
    if ctx.is_leading() {
        Ok(())
    } else {
        Err(Problem::new(
            Reason::TargetWriteFailed,
            "this replica is not the leader (any more): nothing is written",
        ))
    }
}

/// Delete exactly the object seen (UID and version): never one that replaced it since, nor
/// one changed since (it is looked at again). Already gone is fine.
async fn delete_exactly<K>(
    api: &Api<K>,
    meta: &ObjectMeta,
    ctx: &super::super::Context,
) -> Result<(), String>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    leading(ctx).map_err(|p| p.message)?;
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    match api
        .delete(meta.name.as_deref().unwrap_or_default(), &params)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// The ClusterTrustBundle name for a TrustBundle: its own name, or with a signer
/// `<signer, / as :>:<name>` (the API server requires that prefix).
pub fn cluster_trust_bundle_name(tb: &TrustBundle) -> Option<String> {
    let target = tb.spec.target.cluster_trust_bundle.as_ref()?;
    Some(match &target.signer_name {
        Some(signer) => format!("{}:{}", signer.replace('/', ":"), tb.name_any()),
        None => tb.name_any(),
    })
}

/// What syncing the ClusterTrustBundle came to: the one this TrustBundle holds now.
#[derive(Debug, Default)]
pub struct ClusterOutcome {
    pub name: Option<String>,
    pub changes: Vec<String>,
    pub problems: Vec<Problem>,
}

/// Write the ClusterTrustBundle the spec asks for (CA certificates only), and remove the one
/// written before (`previous`, from status) if the spec no longer asks for it.
pub async fn sync_cluster_trust_bundle(
    ctx: &super::super::Context,
    tb: &TrustBundle,
    ca_pem: &str,
    previous: Option<&str>,
) -> ClusterOutcome {
    let api: Api<ClusterTrustBundle> = Api::all(ctx.client.clone());
    let mut outcome = ClusterOutcome::default();
    let wanted = cluster_trust_bundle_name(tb);
    if let Some(name) = &wanted {
        match write_cluster_trust_bundle(ctx, &api, tb, name, ca_pem).await {
            Ok(written) => {
                outcome.name = Some(name.clone());
                if written {
                    outcome
                        .changes
                        .push(format!("wrote ClusterTrustBundle {name}"));
                }
            }
            Err(p) => {
                // Still ours if it was before: the status keeps naming it for clean-up.
                if previous == Some(name.as_str()) {
                    outcome.name = Some(name.clone());
                }
                outcome.problems.push(p);
            }
        }
    }
    if let Some(old) = previous.filter(|old| wanted.as_deref() != Some(*old)) {
        let removed = match api.get_opt(old).await {
            Ok(Some(live)) if ours(&live.metadata, &tb.name_any()) => {
                delete_exactly(&api, &live.metadata, ctx)
                    .await
                    .map(|()| true)
            }
            Ok(_) => Ok(false),
            Err(e) => Err(e.to_string()),
        };
        match removed {
            Ok(true) => outcome
                .changes
                .push(format!("removed ClusterTrustBundle {old}")),
            Ok(false) => {}
            Err(e) => {
                outcome.name = outcome.name.or(Some(old.to_string()));
                outcome.problems.push(Problem::new(
                    Reason::TargetWriteFailed,
                    format!("removing ClusterTrustBundle {old}: {e}"),
                ));
            }
        }
    }
    outcome
}

/// Create or update one ClusterTrustBundle; whether it was written.
async fn write_cluster_trust_bundle(
    ctx: &super::super::Context,
    api: &Api<ClusterTrustBundle>,
    tb: &TrustBundle,
    name: &str,
    ca_pem: &str,
) -> Result<bool, Problem> {
    let signer = tb
        .spec
        .target
        .cluster_trust_bundle
        .as_ref()
        .and_then(|t| t.signer_name.clone());
    if ca_pem.is_empty() {
        return Err(Problem::new(
            Reason::BundleEmpty,
            format!(
                "the bundle holds no CA certificate, so no ClusterTrustBundle {name} is written"
            ),
        ));
    }
    let failed = |what: &str, e: kube::Error| {
        let hint = match &e {
            kube::Error::Api(s) if s.code == 404 => {
                " (is certificates.k8s.io/v1beta1 ClusterTrustBundle served? It is beta: --runtime-config and the ClusterTrustBundle feature gate)"
            }
            _ => "",
        };
        Problem::new(
            Reason::TargetWriteFailed,
            format!("{what} ClusterTrustBundle {name}: {e}{hint}"),
        )
    };
    let live = api.get_opt(name).await.map_err(|e| failed("reading", e))?;
    let params = PostParams {
        field_manager: Some(crate::secret::FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let spec = ClusterTrustBundleSpec {
        signer_name: signer,
        trust_bundle: ca_pem.to_string(),
    };
    match live {
        Some(live) if !ours(&live.metadata, &tb.name_any()) => Err(Problem::new(
            Reason::TargetConflict,
            format!(
                "ClusterTrustBundle {name} exists and was not written by this TrustBundle (no {BUNDLE_LABEL}={} label): left alone",
                tb.name_any()
            ),
        )),
        Some(live) if live.spec == spec && owned_as_wanted(&live.metadata, tb) => Ok(false),
        Some(live) => {
            leading(ctx)?;
            let desired = ClusterTrustBundle {
                metadata: owned_meta(&live.metadata, tb),
                spec,
            };
            api.replace(name, &params, &desired)
                .await
                .map_err(|e| failed("writing", e))?;
            Ok(true)
        }
        None => {
            leading(ctx)?;
            let meta = ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            };
            let desired = ClusterTrustBundle {
                metadata: owned_meta(&meta, tb),
                spec,
            };
            api.create(&params, &desired)
                .await
                .map_err(|e| failed("writing", e))?;
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(spec: serde_json::Value) -> TrustBundle {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "certsmith.dev/v1alpha1", "kind": "TrustBundle",
            "metadata": {"name": "agents", "uid": "u-1"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn spec(selector: serde_json::Value, ctb: Option<serde_json::Value>) -> serde_json::Value {
        let mut target =
            serde_json::json!({"configMap": {"key": "ca.crt"}, "namespaceSelector": selector});
        if let Some(ctb) = ctb {
            target["clusterTrustBundle"] = ctb;
        }
        serde_json::json!({"sources": [{"inLine": "x"}], "target": target})
    }

    fn namespace(labels: &[(&str, &str)], terminating: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some("ns".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            deletion_timestamp: terminating.then_some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
            ),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn namespace_selectors_match_labels_and_expressions_and_skip_terminating_namespaces() {
        let tb = bundle(spec(
            serde_json::json!({"matchLabels": {"trust": "agents"},
                "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]},
                                     {"key": "legacy", "operator": "DoesNotExist"}]}),
            None,
        ));
        let s = tb.spec.target.namespace_selector.clone();
        assert!(selects(&s, &namespace(&[("trust", "agents")], false)));
        assert!(selects(
            &s,
            &namespace(&[("trust", "agents"), ("env", "prod")], false)
        ));
        assert!(!selects(
            &s,
            &namespace(&[("trust", "agents"), ("env", "dev")], false)
        ));
        assert!(!selects(
            &s,
            &namespace(&[("trust", "agents"), ("legacy", "")], false)
        ));
        assert!(!selects(&s, &namespace(&[("trust", "other")], false)));
        assert!(!selects(&s, &namespace(&[("trust", "agents")], true)));
        let all = bundle(spec(serde_json::json!({}), None));
        assert!(selects(
            &all.spec.target.namespace_selector,
            &namespace(&[], false)
        ));
    }

    #[test]
    fn a_config_map_is_ours_only_with_our_label_and_up_to_date_only_exactly() {
        let tb = bundle(spec(serde_json::json!({}), None));
        let desired = desired_config_map(&tb, "app", "ca.crt", "PEM", None);
        assert_eq!(desired.metadata.namespace.as_deref(), Some("app"));
        assert!(ours(&desired.metadata, "agents") && !ours(&desired.metadata, "other"));
        assert!(config_map_up_to_date(&desired, &tb, "ca.crt", "PEM"));
        assert!(!config_map_up_to_date(&desired, &tb, "ca.crt", "PEM2"));
        assert!(!config_map_up_to_date(&desired, &tb, "bundle.pem", "PEM"));
        let mut extra = desired.clone();
        extra
            .data
            .get_or_insert_default()
            .insert("other".into(), "x".into());
        assert!(!config_map_up_to_date(&extra, &tb, "ca.crt", "PEM"));
        // A TrustBundle re-created under the same name takes its ConfigMaps over: the owner
        // reference to the old one is replaced, others are kept.
        let mut foreign_owner = desired.clone();
        foreign_owner.metadata.owner_references = Some(vec![
            OwnerReference {
                uid: "u-0".into(),
                ..owner(&tb)
            },
            OwnerReference {
                kind: "Deployment".into(),
                name: "x".into(),
                uid: "d".into(),
                api_version: "apps/v1".into(),
                ..OwnerReference::default()
            },
        ]);
        assert!(!config_map_up_to_date(&foreign_owner, &tb, "ca.crt", "PEM"));
        let fixed = desired_config_map(&tb, "app", "ca.crt", "PEM", Some(&foreign_owner));
        let refs = fixed.metadata.owner_references.clone().unwrap();
        assert_eq!(refs.len(), 2);
        assert!(refs.iter().any(|r| r.uid == "u-1") && refs.iter().any(|r| r.uid == "d"));
        assert!(config_map_up_to_date(&fixed, &tb, "ca.crt", "PEM"));
    }

    #[test]
    fn cluster_trust_bundle_names_carry_the_signer_prefix() {
        assert_eq!(
            cluster_trust_bundle_name(&bundle(spec(serde_json::json!({}), None))),
            None
        );
        assert_eq!(
            cluster_trust_bundle_name(&bundle(spec(
                serde_json::json!({}),
                Some(serde_json::json!({}))
            ))),
            Some("agents".into())
        );
        assert_eq!(
            cluster_trust_bundle_name(&bundle(spec(
                serde_json::json!({}),
                Some(serde_json::json!({"signerName": "example.com/agents"}))
            ))),
            Some("example.com:agents:agents".into())
        );
    }
}
