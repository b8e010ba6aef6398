//! Kubernetes SVIDs: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
//!
//! Parsed exactly, not by pattern: the scheme and trust domain as written (lower case, as
//! the SPIFFE specification requires), exactly four path segments, the namespace a DNS-1123
//! label and the ServiceAccount a DNS-1123 subdomain, so no `.`, `..`, `%`, `?`, `#`, `@`,
//! `:` or empty segment can reach a relying party.

/// The parts of a Kubernetes SVID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Svid<'a> {
    pub trust_domain: &'a str,
    pub namespace: &'a str,
    pub service_account: &'a str,
}

/// The SVID of `service_account` in `namespace` under `trust_domain`.
pub fn svid(trust_domain: &str, namespace: &str, service_account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A lower-case DNS name (trust domains, ServiceAccount names).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A namespace name.
pub fn is_namespace_name(s: &str) -> bool {
    is_dns_label(s)
}

/// Parse `uri` as a Kubernetes SVID; the error says what is wrong, for a denial message.
pub fn parse(uri: &str) -> Result<Svid<'_>, String> {
    const FORM: &str = "spiffe://<trust domain>/ns/<namespace>/sa/<service account>";
    let Some(rest) = uri.strip_prefix("spiffe://") else {
        return Err(format!("is not of the form {FORM}"));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [trust_domain, "ns", namespace, "sa", service_account] = parts.as_slice() else {
        return Err(format!("is not of the form {FORM}"));
    };
    if !is_dns_subdomain(trust_domain) {
        return Err("has a trust domain that is not a lower-case DNS name".into());
    }
    if !is_namespace_name(namespace) {
        return Err("has a namespace that is not a namespace name".into());
    }
    if !is_dns_subdomain(service_account) {
        return Err("has a service account that is not a ServiceAccount name".into());
    }
    Ok(Svid {
        trust_domain,
        namespace,
        service_account,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly_the_kubernetes_form() {
        assert_eq!(
            parse("spiffe://cluster.local/ns/agents/sa/billing-agent"),
            Ok(Svid {
                trust_domain: "cluster.local",
                namespace: "agents",
                service_account: "billing-agent"
            })
        );
        assert_eq!(
            svid("cluster.local", "agents", "billing-agent"),
            "spiffe://cluster.local/ns/agents/sa/billing-agent"
        );
        assert!(parse("spiffe://cluster.local/ns/a/sa/x.y").is_ok());
        for bad in [
            "SPIFFE://cluster.local/ns/a/sa/x",
            "spiffe://Cluster.local/ns/a/sa/x",
            "spiffe://cluster.local./ns/a/sa/x",
            "spiffe://cluster.local:443/ns/a/sa/x",
            "spiffe://u@cluster.local/ns/a/sa/x",
            "spiffe://cluster.local/ns/a/sa/x/",
            "spiffe://cluster.local/ns/a/sa/x/y",
            "spiffe://cluster.local/ns/a/sa/",
            "spiffe://cluster.local/ns//sa/x",
            "spiffe://cluster.local/ns/a.b/sa/x",
            "spiffe://cluster.local/ns/A/sa/x",
            "spiffe://cluster.local/ns/a/sa/X",
            "spiffe://cluster.local/ns/a/sa/..",
            "spiffe://cluster.local/ns/a/sa/x%2F..",
            "spiffe://cluster.local/ns/a/sa/x?y",
            "spiffe://cluster.local/ns/a/sa/x#y",
            "spiffe://cluster.local/ns/a/sa/*",
            "spiffe://cluster.local/ns/a/serviceaccount/x",
            "spiffe://cluster.local/x/ns/a/sa/x",
            "spiffe://xn--bcher-kva.example/ns/a/sa/x\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
