//! `certsmith renew`: ask the operator to re-issue, through the annotation it watches.

use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};

use crate::api::{Certificate, RENEW_ANNOTATION};

use super::{CliError, explain};

/// Which Certificates to renew.
pub enum Target {
    One {
        namespace: String,
        name: String,
    },
    All {
        namespace: Option<String>,
        selector: Option<String>,
    },
}

pub async fn renew(client: kube::Client, target: Target) -> Result<String, CliError> {
    let requested_at = jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({"metadata": {"annotations": {RENEW_ANNOTATION: requested_at}}});
    let mut triggered = Vec::new();
    match target {
        Target::One { namespace, name } => {
            let api: Api<Certificate> = Api::namespaced(client, &namespace);
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| explain(e, &format!("Certificate {namespace}/{name}")))?;
            triggered.push(format!("{namespace}/{name}"));
        }
        Target::All {
            namespace,
            selector,
        } => {
            let api: Api<Certificate> = match &namespace {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            let params = selector
                .as_deref()
                .map_or_else(ListParams::default, |s| ListParams::default().labels(s));
            let list = api
                .list(&params)
                .await
                .map_err(|e| explain(e, "Certificates"))?;
            for cert in list.items {
                let ns = cert.namespace().unwrap_or_default();
                let name = cert.name_any();
                Api::<Certificate>::namespaced(client.clone(), &ns)
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| explain(e, &format!("Certificate {ns}/{name}")))?;
                triggered.push(format!("{ns}/{name}"));
            }
        }
    }
    let mut out: String = triggered
        .iter()
        .map(|t| format!("renewal requested: {t}\n"))
        .collect();
    out.push_str(&format!(
        "{} certificate(s) will be re-issued with a new key (requested at {requested_at})\n",
        triggered.len()
    ));
    Ok(out)
}
