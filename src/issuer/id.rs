//! Which issuer: its kind, namespace (for an Issuer) and name. The key of every per-issuer
//! cache and limit, and the source of the audience of tokens minted for it.

use std::fmt;

use crate::api::{IssuerKind, IssuerRef};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IssuerId {
    pub kind: IssuerKind,
    /// Set for an Issuer, None for a ClusterIssuer.
    pub namespace: Option<String>,
    pub name: String,
}

impl IssuerId {
    pub fn issuer(namespace: &str, name: &str) -> Self {
        IssuerId {
            kind: IssuerKind::Issuer,
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }

    pub fn cluster_issuer(name: &str) -> Self {
        IssuerId {
            kind: IssuerKind::ClusterIssuer,
            namespace: None,
            name: name.to_string(),
        }
    }

    /// The issuer a Certificate in `namespace` names.
    pub fn referenced(namespace: &str, issuer_ref: &IssuerRef) -> Self {
        match issuer_ref.kind {
            IssuerKind::Issuer => Self::issuer(namespace, &issuer_ref.name),
            IssuerKind::ClusterIssuer => Self::cluster_issuer(&issuer_ref.name),
        }
    }

    pub fn is_cluster_issuer(&self) -> bool {
        self.kind == IssuerKind::ClusterIssuer
    }

    /// The audience that names this issuer in tokens minted for it (as cert-manager does):
    /// `vault://<namespace>/<name>`, or `vault://<name>` for a ClusterIssuer.
    pub fn vault_audience(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("vault://{ns}/{}", self.name),
            None => format!("vault://{}", self.name),
        }
    }
}

/// `Issuer <namespace>/<name>` or `ClusterIssuer <name>`, for messages and logs.
impl fmt::Display for IssuerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind.as_str(), self.name),
            None => write!(f, "{} {}", self.kind.as_str(), self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_kind_and_audience() {
        let issuer = IssuerId::issuer("agents", "vault");
        assert_eq!(issuer.vault_audience(), "vault://agents/vault");
        assert_eq!(issuer.to_string(), "Issuer agents/vault");
        let cluster = IssuerId::cluster_issuer("vault");
        assert_eq!(cluster.vault_audience(), "vault://vault");
        assert!(cluster.is_cluster_issuer() && !issuer.is_cluster_issuer());
        let r = IssuerRef {
            name: "vault".into(),
            kind: IssuerKind::ClusterIssuer,
        };
        assert_eq!(IssuerId::referenced("agents", &r), cluster);
    }
}
