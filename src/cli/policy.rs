//! `certsmith policy check -f FILE|DIR|- [-n NS]`: would the issuers in the cluster sign these
//! Certificates? For pull-request checks in a GitOps repository. Read-only: it GETs the
//! issuers, and when a policy needs them the namespaces and ServiceAccounts.
//!
//! Exit status: 0 every Certificate is allowed, 1 at least one is denied, 2 at least one
//! could not be checked (its issuer or namespace is missing, a manifest is invalid).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{Api, Client};
use serde_json::Value;

use crate::api::policy::Policy;
use crate::api::{CertificateSpec, ClusterIssuer, GROUP, Issuer, IssuerKind};
use crate::policy::{self, Denial, Lookups, Request};

use super::{CliError, explain};

/// Exit status when at least one Certificate is denied.
pub const EXIT_DENIED: i32 = 1;
/// Exit status when at least one Certificate could not be checked (and none was denied).
pub const EXIT_UNCHECKED: i32 = 2;

/// What to check.
pub struct CheckArgs {
    /// Files, directories (their `.yaml`, `.yml` and `.json` files) or `-` for stdin.
    pub files: Vec<PathBuf>,
    /// Descend into subdirectories.
    pub recursive: bool,
    /// The namespace of manifests that name none.
    pub namespace: String,
    /// The operator's cluster-resource namespace (the default isCA rule depends on it).
    pub cluster_resource_namespace: String,
}

/// The printed report and the exit status.
#[derive(Debug)]
pub struct Report {
    pub text: String,
    pub exit_code: i32,
}

/// A Certificate from the input.
#[derive(Debug, Clone)]
pub struct CertificateDoc {
    pub source: String,
    pub namespace: Option<String>,
    pub name: String,
    pub spec: Result<CertificateSpec, String>,
}

/// Everything the input holds that a check can use.
#[derive(Debug, Default)]
pub struct Manifests {
    pub certificates: Vec<CertificateDoc>,
    /// Namespaces in the input, by name, with their labels (for ones not yet in the cluster).
    pub namespaces: HashMap<String, BTreeMap<String, String>>,
    /// ServiceAccounts in the input, as (namespace or None, name).
    pub service_accounts: Vec<(Option<String>, String)>,
    /// Issuers and ClusterIssuers in the input, for ones not yet in the cluster.
    pub issuers: HashMap<(IssuerKind, Option<String>, String), Option<Policy>>,
}

/// The outcome for one Certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied(Vec<Denial>),
    /// Could not be checked; why.
    Unchecked(String),
}

/// One Certificate's line in the report.
#[derive(Debug, Clone)]
pub struct Checked {
    pub certificate: String,
    pub issuer: String,
    pub outcome: Outcome,
    /// The issuer's policy summary, and notes (issuer or ServiceAccount from the input).
    pub policy: Option<String>,
    pub notes: Vec<String>,
}

pub async fn check(client: Client, args: CheckArgs) -> Result<Report, CliError> {
    let manifests = read_inputs(&args.files, args.recursive)?;
    let mut cluster = Cluster::new(client);
    let mut results = Vec::new();
    for doc in &manifests.certificates {
        results.push(check_one(&mut cluster, &manifests, doc, &args).await?);
    }
    Ok(render(&results))
}

/// Read every input and parse its documents.
pub fn read_inputs(files: &[PathBuf], recursive: bool) -> Result<Manifests, CliError> {
    if files.is_empty() {
        return Err(CliError(
            "name the manifests to check with -f FILE, -f DIR or -f -".into(),
        ));
    }
    let mut texts = Vec::new();
    for file in files {
        if file.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| CliError(format!("reading stdin: {e}")))?;
            texts.push(("stdin".to_string(), text));
        } else {
            collect_files(file, recursive, true, &mut texts)?;
        }
    }
    let mut manifests = Manifests::default();
    for (source, text) in &texts {
        parse_documents(source, text, &mut manifests)?;
    }
    Ok(manifests)
}

fn collect_files(
    path: &Path,
    recursive: bool,
    named: bool,
    out: &mut Vec<(String, String)>,
) -> Result<(), CliError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| CliError(format!("{shown}: {e}")))?;
    if meta.is_dir() {
        if !named && !recursive {
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| CliError(format!("{shown}: {e}")))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            let manifest = entry
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
            if entry.is_dir() || manifest {
                collect_files(&entry, recursive, false, out)?;
            }
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| CliError(format!("{shown}: {e}")))?;
    out.push((shown, text));
    Ok(())
}

/// Parse a multi-document YAML (or JSON) stream; `List` items are flattened.
pub fn parse_documents(source: &str, text: &str, out: &mut Manifests) -> Result<(), CliError> {
    let documents: Vec<Value> =
        crate::yaml::documents(text).map_err(|e| CliError(format!("{source}: {e}")))?;
    for (i, value) in documents.into_iter().enumerate() {
        add_object(&format!("{source}#{}", i + 1), value, out);
    }
    Ok(())
}

fn add_object(source: &str, value: Value, out: &mut Manifests) {
    let kind = value["kind"].as_str().unwrap_or_default().to_string();
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let namespace = value["metadata"]["namespace"].as_str().map(str::to_string);
    let name = value["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match (group, kind.as_str()) {
        (_, "List") => {
            if let Some(items) = value["items"].as_array() {
                for item in items {
                    add_object(source, item.clone(), out);
                }
            }
        }
        (GROUP, "Certificate") => {
            let spec = serde_json::from_value::<CertificateSpec>(value["spec"].clone())
                .map_err(|e| format!("invalid spec: {e}"));
            let spec = if name.is_empty() {
                Err("metadata.name is missing".to_string())
            } else {
                spec
            };
            out.certificates.push(CertificateDoc {
                source: source.to_string(),
                namespace,
                name,
                spec,
            });
        }
        (GROUP, "Issuer" | "ClusterIssuer") => {
            let (issuer_kind, namespace) = if kind == "Issuer" {
                (IssuerKind::Issuer, namespace)
            } else {
                (IssuerKind::ClusterIssuer, None)
            };
            let policy = serde_json::from_value::<Policy>(value["spec"]["policy"].clone()).ok();
            out.issuers.insert((issuer_kind, namespace, name), policy);
        }
        ("", "Namespace") => {
            let labels =
                serde_json::from_value(value["metadata"]["labels"].clone()).unwrap_or_default();
            out.namespaces.insert(name, labels);
        }
        ("", "ServiceAccount") => out.service_accounts.push((namespace, name)),
        _ => {}
    }
}

/// Cached read-only lookups.
struct Cluster {
    client: Client,
    issuers: HashMap<(IssuerKind, String, String), Option<Option<Policy>>>,
    namespaces: HashMap<String, Option<BTreeMap<String, String>>>,
}

impl Cluster {
    fn new(client: Client) -> Self {
        Cluster {
            client,
            issuers: HashMap::new(),
            namespaces: HashMap::new(),
        }
    }

    /// The issuer's policy; None when the issuer does not exist.
    async fn issuer(
        &mut self,
        kind: IssuerKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Option<Policy>>, CliError> {
        let key = (kind, namespace.to_string(), name.to_string());
        if let Some(found) = self.issuers.get(&key) {
            return Ok(found.clone());
        }
        let found = match kind {
            IssuerKind::Issuer => Api::<Issuer>::namespaced(self.client.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(|e| explain(e, &format!("Issuer {namespace}/{name}")))?
                .map(|i| i.spec.policy),
            IssuerKind::ClusterIssuer => Api::<ClusterIssuer>::all(self.client.clone())
                .get_opt(name)
                .await
                .map_err(|e| explain(e, &format!("ClusterIssuer {name}")))?
                .map(|i| i.spec.0.policy),
        };
        self.issuers.insert(key, found.clone());
        Ok(found)
    }

    /// The namespace's labels; None when it does not exist.
    async fn namespace_labels(
        &mut self,
        namespace: &str,
    ) -> Result<Option<BTreeMap<String, String>>, CliError> {
        if let Some(found) = self.namespaces.get(namespace) {
            return Ok(found.clone());
        }
        let found = Api::<Namespace>::all(self.client.clone())
            .get_opt(namespace)
            .await
            .map_err(|e| explain(e, &format!("Namespace {namespace}")))?
            .map(|n| n.metadata.labels.unwrap_or_default());
        self.namespaces.insert(namespace.to_string(), found.clone());
        Ok(found)
    }

    async fn service_account_exists(&self, namespace: &str, name: &str) -> Result<bool, CliError> {
        Ok(
            Api::<ServiceAccount>::namespaced(self.client.clone(), namespace)
                .get_opt(name)
                .await
                .map_err(|e| explain(e, &format!("ServiceAccount {namespace}/{name}")))?
                .is_some(),
        )
    }
}

async fn check_one(
    cluster: &mut Cluster,
    manifests: &Manifests,
    doc: &CertificateDoc,
    args: &CheckArgs,
) -> Result<Checked, CliError> {
    let namespace = doc.namespace.as_deref().unwrap_or(&args.namespace);
    let mut checked = Checked {
        certificate: format!("{namespace}/{}", doc.name),
        issuer: String::new(),
        outcome: Outcome::Allowed,
        policy: None,
        notes: Vec::new(),
    };
    let spec = match &doc.spec {
        Ok(spec) => spec,
        Err(e) => {
            checked.issuer = "-".into();
            checked.outcome = Outcome::Unchecked(format!("{}: {e}", doc.source));
            return Ok(checked);
        }
    };
    let kind = spec.issuer_ref.kind;
    let issuer_name = &spec.issuer_ref.name;
    checked.issuer = format!("{}/{issuer_name}", kind.as_str());
    let policy = match cluster.issuer(kind, namespace, issuer_name).await? {
        Some(policy) => policy,
        None => {
            let input_key = (
                kind,
                (kind == IssuerKind::Issuer).then(|| namespace.to_string()),
                issuer_name.clone(),
            );
            let from_input = manifests.issuers.get(&input_key).or_else(|| {
                // An Issuer in the input without a namespace lands in the default one.
                (kind == IssuerKind::Issuer && namespace == args.namespace)
                    .then(|| manifests.issuers.get(&(kind, None, issuer_name.clone())))
                    .flatten()
            });
            match from_input {
                Some(policy) => {
                    checked
                        .notes
                        .push("issuer not in the cluster yet: checked against the manifest".into());
                    policy.clone()
                }
                None => {
                    let what = match kind {
                        IssuerKind::Issuer => format!("Issuer {namespace}/{issuer_name}"),
                        IssuerKind::ClusterIssuer => format!("ClusterIssuer {issuer_name}"),
                    };
                    checked.outcome = Outcome::Unchecked(format!(
                        "issuer missing: {what} does not exist in the cluster (nor in the manifests checked); the Certificate would wait for it"
                    ));
                    return Ok(checked);
                }
            }
        }
    };
    checked.policy = Some(policy::summary(policy.as_ref(), kind));
    let Lookups {
        namespace_labels: labels_needed,
        service_account,
    } = policy::lookups(policy.as_ref(), kind, namespace, spec);
    let labels = if labels_needed {
        match cluster.namespace_labels(namespace).await? {
            Some(labels) => Some(labels),
            None => match manifests.namespaces.get(namespace) {
                Some(labels) => {
                    checked.notes.push(
                        "namespace not in the cluster yet: its labels from the manifest".into(),
                    );
                    Some(labels.clone())
                }
                None => {
                    checked.outcome = Outcome::Unchecked(format!(
                        "namespace {namespace} does not exist in the cluster (nor in the manifests checked), and the issuer's policy selects namespaces by label"
                    ));
                    return Ok(checked);
                }
            },
        }
    } else {
        None
    };
    let service_account_exists = match &service_account {
        None => None,
        Some(sa) => {
            let mut exists = cluster.service_account_exists(namespace, sa).await?;
            if !exists
                && manifests.service_accounts.iter().any(|(ns, name)| {
                    name == sa && ns.as_deref().unwrap_or(&args.namespace) == namespace
                })
            {
                checked.notes.push(format!(
                    "ServiceAccount {namespace}/{sa} not in the cluster yet: found in the manifests"
                ));
                exists = true;
            }
            Some(exists)
        }
    };
    let request = Request {
        namespace,
        name: &doc.name,
        spec,
        issuer_kind: kind,
        in_cluster_resource_namespace: namespace == args.cluster_resource_namespace,
        namespace_labels: labels.as_ref(),
        service_account_exists,
    };
    let denials = policy::denials(policy.as_ref(), &request);
    if !denials.is_empty() {
        checked.outcome = Outcome::Denied(denials);
    }
    Ok(checked)
}

/// The report (pure): one line per Certificate, its denials below it, a summary line.
pub fn render(results: &[Checked]) -> Report {
    let mut text = String::new();
    let width = results
        .iter()
        .map(|r| r.certificate.len())
        .max()
        .unwrap_or(0);
    let (mut allowed, mut denied, mut unchecked) = (0, 0, 0);
    for r in results {
        let status = match &r.outcome {
            Outcome::Allowed => {
                allowed += 1;
                "allowed"
            }
            Outcome::Denied(_) => {
                denied += 1;
                "DENIED "
            }
            Outcome::Unchecked(_) => {
                unchecked += 1;
                "ERROR  "
            }
        };
        let _ = writeln!(
            text,
            "{status}  {:width$}  {}",
            r.certificate,
            r.issuer,
            width = width
        );
        match &r.outcome {
            Outcome::Allowed => {}
            Outcome::Denied(denials) => {
                for d in denials {
                    let _ = writeln!(text, "         - {}", d.message);
                }
                if let Some(summary) = &r.policy {
                    let _ = writeln!(text, "         policy: {summary}");
                }
            }
            Outcome::Unchecked(why) => {
                let _ = writeln!(text, "         - {why}");
            }
        }
        for note in &r.notes {
            let _ = writeln!(text, "         note: {note}");
        }
    }
    let total = results.len();
    if total == 0 {
        text.push_str("no Certificates (certsmith.dev/v1alpha1) in the input\n");
    } else {
        let _ = writeln!(
            text,
            "{total} Certificate{}: {allowed} allowed, {denied} denied, {unchecked} not checked",
            if total == 1 { "" } else { "s" }
        );
    }
    let exit_code = if denied > 0 {
        EXIT_DENIED
    } else if unchecked > 0 {
        EXIT_UNCHECKED
    } else {
        0
    };
    Report { text, exit_code }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: agents, labels: {tenant: "yes"}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: orders-agent, namespace: agents}
---
apiVersion: certsmith.dev/v1alpha1
kind: Certificate
metadata: {name: orders-agent, namespace: agents}
spec:
  secretName: orders-agent-tls
  issuerRef: {name: agents-ca, kind: ClusterIssuer}
  uris: [spiffe://cluster.local/ns/agents/sa/orders-agent]
---
# a comment-only document
---
{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate", "metadata": {"name": "web"},
   "spec": {"secretName": "web-tls", "issuerRef": {"name": "local"}, "dnsNames": ["web.a.svc"]}},
  {"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "local"},
   "spec": {"selfSigned": {}, "policy": {"maxDuration": "24h"}}}]}
---
apiVersion: certsmith.dev/v1alpha1
kind: Certificate
metadata: {name: broken}
spec: {secretName: x}
"#;

    #[test]
    fn reads_every_kind_of_document_it_can_use() {
        let mut m = Manifests::default();
        parse_documents("in.yaml", INPUT, &mut m).unwrap();
        assert_eq!(m.certificates.len(), 3);
        assert_eq!(m.certificates[0].namespace.as_deref(), Some("agents"));
        assert_eq!(m.certificates[0].source, "in.yaml#3");
        assert!(m.certificates[1].spec.is_ok());
        assert!(
            m.certificates[2]
                .spec
                .as_ref()
                .is_err_and(|e| e.contains("issuerRef"))
        );
        assert_eq!(
            m.namespaces.get("agents").and_then(|l| l.get("tenant")),
            Some(&"yes".to_string())
        );
        assert_eq!(
            m.service_accounts,
            [(Some("agents".into()), "orders-agent".into())]
        );
        let policy = m
            .issuers
            .get(&(IssuerKind::Issuer, None, "local".into()))
            .unwrap();
        assert_eq!(
            policy.as_ref().and_then(|p| p.max_duration.as_deref()),
            Some("24h")
        );
        assert!(parse_documents("bad.yaml", "a: [", &mut m).is_err());
    }

    #[test]
    fn the_report_and_exit_status() {
        let line = |outcome: Outcome| Checked {
            certificate: "a/web".into(),
            issuer: "ClusterIssuer/ca".into(),
            outcome,
            policy: Some("no isCA".into()),
            notes: vec![],
        };
        let allowed = render(&[line(Outcome::Allowed)]);
        assert_eq!(allowed.exit_code, 0);
        assert_eq!(
            allowed.text,
            "allowed  a/web  ClusterIssuer/ca\n1 Certificate: 1 allowed, 0 denied, 0 not checked\n"
        );
        let denial = Denial {
            field: policy::Field::IsCa,
            message: "isCA: no".into(),
        };
        let mixed = render(&[
            line(Outcome::Unchecked("issuer missing: x".into())),
            line(Outcome::Denied(vec![denial])),
        ]);
        assert_eq!(mixed.exit_code, EXIT_DENIED);
        assert!(
            mixed.text.contains(
                "DENIED   a/web  ClusterIssuer/ca\n         - isCA: no\n         policy: no isCA\n"
            ),
            "{}",
            mixed.text
        );
        assert!(
            mixed
                .text
                .contains("ERROR    a/web  ClusterIssuer/ca\n         - issuer missing: x\n")
        );
        assert_eq!(
            render(&[line(Outcome::Unchecked("x".into()))]).exit_code,
            EXIT_UNCHECKED
        );
        assert_eq!(render(&[]).exit_code, 0);
    }

    #[test]
    fn directories_are_read_in_order_and_only_manifests() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "kind: Namespace\napiVersion: v1\nmetadata: {name: b}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.yml"),
            "kind: Namespace\napiVersion: v1\nmetadata: {name: a}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not: yaml: at: all: [").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("sub/c.json"),
            r#"{"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "c"}}"#,
        )
        .unwrap();
        let flat = read_inputs(&[dir.path().to_path_buf()], false).unwrap();
        assert_eq!(flat.namespaces.len(), 2);
        let deep = read_inputs(&[dir.path().to_path_buf()], true).unwrap();
        assert_eq!(deep.namespaces.len(), 3);
        assert!(read_inputs(&[dir.path().join("missing.yaml")], false).is_err());
        assert!(read_inputs(&[], false).is_err());
    }
}
