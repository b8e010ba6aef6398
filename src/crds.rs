//! The CRD manifests, generated from the Rust types (`certsmith crds`, and `crds/` on disk).

use kube::CustomResourceExt;

use crate::api::{Certificate, ClusterIssuer, Issuer};

/// Every CRD as one multi-document YAML stream, in a stable order.
pub fn render() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in [Certificate::crd(), Issuer::crd(), ClusterIssuer::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
