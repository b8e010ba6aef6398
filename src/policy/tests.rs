use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::api::policy::Policy;

fn spec(fields: serde_json::Value) -> CertificateSpec {
    let mut base = json!({"secretName": "s", "issuerRef": {"name": "i"}});
    if let Some(map) = fields.as_object() {
        for (k, v) in map {
            base[k] = v.clone();
        }
    }
    serde_json::from_value(base).unwrap()
}

fn policy(value: serde_json::Value) -> Policy {
    serde_json::from_value(value).unwrap()
}

/// A request from Certificate `web` in namespace `a` to a ClusterIssuer.
fn request<'a>(spec: &'a CertificateSpec) -> Request<'a> {
    Request {
        namespace: "a",
        name: "web",
        spec,
        issuer_kind: IssuerKind::ClusterIssuer,
        in_cluster_resource_namespace: false,
        namespace_labels: None,
        service_account_exists: None,
    }
}

fn spiffe_policy() -> Policy {
    policy(json!({
        "allowed": {
            "commonName": ["{name}"],
            "dnsNames": ["{name}.{namespace}.svc", "{name}.{namespace}.svc.cluster.local"],
        },
        "spiffe": {"trustDomain": "cluster.local", "requireServiceAccount": true},
        "maxDuration": "24h",
        "keyAlgorithms": [{"algorithm": "ECDSA", "sizes": [256, 384]}, {"algorithm": "Ed25519"}],
        "usages": ["digital signature", "server auth", "client auth"],
    }))
}

fn denied(policy: Option<&Policy>, request: &Request<'_>) -> Denial {
    evaluate(policy, request).expect_err("denied")
}

#[test]
fn without_a_policy_everything_but_a_tenants_ca_is_allowed() {
    let s = spec(
        json!({"dnsNames": ["anything.payments.svc"], "uris": ["spiffe://cluster.local/ns/payments/sa/billing"]}),
    );
    assert_eq!(evaluate(None, &request(&s)), Ok(()));
    let ca = spec(json!({"commonName": "tenant CA", "isCA": true}));
    let d = denied(None, &request(&ca));
    assert_eq!(d.field, Field::IsCa);
    assert!(d.message.contains("cluster-resource namespace"), "{d}");
    // In the cluster-resource namespace, or from a namespaced Issuer: as before.
    let in_crn = Request {
        in_cluster_resource_namespace: true,
        ..request(&ca)
    };
    assert_eq!(evaluate(None, &in_crn), Ok(()));
    let issuer = Request {
        issuer_kind: IssuerKind::Issuer,
        ..request(&ca)
    };
    assert_eq!(evaluate(None, &issuer), Ok(()));
    assert_eq!(
        lookups(None, IssuerKind::ClusterIssuer, "a", &ca),
        Lookups::default()
    );
}

#[test]
fn is_ca_defaults_to_false_under_a_policy_and_can_be_allowed() {
    let ca = spec(json!({"commonName": "sub CA", "isCA": true}));
    let p = policy(json!({"maxDuration": "8760h"}));
    for r in [
        request(&ca),
        Request {
            in_cluster_resource_namespace: true,
            ..request(&ca)
        },
        Request {
            issuer_kind: IssuerKind::Issuer,
            ..request(&ca)
        },
    ] {
        assert_eq!(denied(Some(&p), &r).field, Field::IsCa);
    }
    let p = policy(json!({"isCA": true, "usages": ["digital signature"]}));
    // The CA usages implied by isCA are not judged by `usages`.
    let ca = spec(json!({"commonName": "sub CA", "isCA": true, "usages": ["digital signature"]}));
    assert_eq!(evaluate(Some(&p), &request(&ca)), Ok(()));
}

#[test]
fn the_issue_example_message() {
    let p = policy(json!({"allowed": {"uris": ["spiffe://cluster.local/ns/{namespace}/sa/*"]}}));
    let s = spec(json!({"uris": ["spiffe://cluster.local/ns/payments/sa/billing"]}));
    let d = denied(Some(&p), &request(&s));
    assert_eq!(d.field, Field::Uris);
    assert_eq!(
        d.message,
        r#"uris[0] "spiffe://cluster.local/ns/payments/sa/billing" matches none of spiffe://cluster.local/ns/{namespace}/sa/*"#
    );
    let own = spec(json!({"uris": ["spiffe://cluster.local/ns/a/sa/billing"]}));
    assert_eq!(evaluate(Some(&p), &request(&own)), Ok(()));
}

#[test]
fn a_kind_not_listed_is_not_allowed_once_allowed_is_set() {
    let p = policy(json!({"allowed": {"dnsNames": ["*.{namespace}.svc"]}}));
    assert_eq!(
        evaluate(Some(&p), &request(&spec(json!({"dnsNames": ["x.a.svc"]})))),
        Ok(())
    );
    for (fields, field) in [
        (json!({"commonName": "x"}), Field::CommonName),
        (json!({"ipAddresses": ["10.0.0.1"]}), Field::IpAddresses),
        (json!({"uris": ["https://a.example/"]}), Field::Uris),
        (
            json!({"emailAddresses": ["x@a.example"]}),
            Field::EmailAddresses,
        ),
        (json!({"dnsNames": ["x.a.svc", "x.b.svc"]}), Field::DnsNames),
    ] {
        let s = spec(fields);
        let d = denied(Some(&p), &request(&s));
        assert_eq!(d.field, field, "{d}");
    }
    let d = denied(Some(&p), &request(&spec(json!({"commonName": "x"}))));
    assert_eq!(
        d.message,
        r#"commonName "x": the issuer's policy allows no commonName"#
    );
    let d = denied(
        Some(&p),
        &request(&spec(json!({"dnsNames": ["x.a.svc", "x.b.svc"]}))),
    );
    assert_eq!(
        d.message,
        r#"dnsNames[1] "x.b.svc" matches none of *.{namespace}.svc"#
    );
    // A policy without names rules leaves names alone.
    let p = policy(json!({"maxDuration": "24h"}));
    let s = spec(json!({"commonName": "x", "dnsNames": ["x.payments.svc"], "duration": "1h"}));
    assert_eq!(evaluate(Some(&p), &request(&s)), Ok(()));
}

#[test]
fn ip_addresses_by_cidr() {
    let p = policy(json!({"allowed": {"ipAddresses": ["10.0.0.0/8", "fd00::/64"]}}));
    let ok = spec(json!({"ipAddresses": ["10.1.2.3", "::ffff:10.9.9.9", "fd00::1"]}));
    assert_eq!(evaluate(Some(&p), &request(&ok)), Ok(()));
    let d = denied(
        Some(&p),
        &request(&spec(json!({"ipAddresses": ["10.0.0.1", "192.168.0.1"]}))),
    );
    assert_eq!(
        d.message,
        r#"ipAddresses[1] "192.168.0.1" matches none of 10.0.0.0/8, fd00::/64"#
    );
}

#[test]
fn spiffe_requires_exactly_one_svid_of_the_namespace() {
    let p = spiffe_policy();
    let good = spec(json!({
        "commonName": "web", "dnsNames": ["web.a.svc"], "duration": "1h",
        "uris": ["spiffe://cluster.local/ns/a/sa/web-sa"],
    }));
    let needs = lookups(Some(&p), IssuerKind::ClusterIssuer, "a", &good);
    assert_eq!(
        needs,
        Lookups {
            namespace_labels: false,
            service_account: Some("web-sa".into())
        }
    );
    let exists = Request {
        service_account_exists: Some(true),
        ..request(&good)
    };
    assert_eq!(evaluate(Some(&p), &exists), Ok(()));
    // Missing, or not checked: denied.
    let missing = Request {
        service_account_exists: Some(false),
        ..request(&good)
    };
    let d = denied(Some(&p), &missing);
    assert_eq!(d.field, Field::ServiceAccount);
    assert!(
        d.message.contains("ServiceAccount a/web-sa does not exist"),
        "{d}"
    );
    assert_eq!(
        denied(Some(&p), &request(&good)).field,
        Field::ServiceAccount
    );

    let cases = [
        (json!([]), "requires exactly one URI SAN"),
        (
            json!([
                "spiffe://cluster.local/ns/a/sa/x",
                "spiffe://cluster.local/ns/a/sa/y"
            ]),
            "the Certificate has 2",
        ),
        (
            json!(["spiffe://cluster.local/ns/payments/sa/billing"]),
            r#"uris[0] "spiffe://cluster.local/ns/payments/sa/billing" matches none of spiffe://cluster.local/ns/a/sa/<service account>"#,
        ),
        (
            json!(["spiffe://other.domain/ns/a/sa/x"]),
            "matches none of spiffe://cluster.local/ns/a/sa/<service account>",
        ),
        (
            json!(["spiffe://cluster.local/ns/a/sa/x/../../payments/sa/billing"]),
            "is not of the form",
        ),
        (json!(["https://a.example/"]), "is not of the form"),
    ];
    for (uris, expected) in cases {
        let s = spec(json!({"commonName": "web", "uris": uris}));
        let r = Request {
            service_account_exists: Some(true),
            ..request(&s)
        };
        let d = denied(Some(&p), &r);
        assert_eq!(d.field, Field::Uris, "{d}");
        assert!(d.message.contains(expected), "{d}");
        assert_eq!(
            lookups(Some(&p), IssuerKind::ClusterIssuer, "a", &s).service_account,
            None
        );
    }
    // With spiffe and no `allowed`, the SVID is the only name allowed.
    let only = policy(json!({"spiffe": {"trustDomain": "cluster.local"}}));
    let s = spec(json!({"uris": ["spiffe://cluster.local/ns/a/sa/x"]}));
    assert_eq!(evaluate(Some(&only), &request(&s)), Ok(()));
    let s = spec(json!({"uris": ["spiffe://cluster.local/ns/a/sa/x"], "dnsNames": ["x.a.svc"]}));
    assert_eq!(denied(Some(&only), &request(&s)).field, Field::DnsNames);
    // `allowed.uris` narrows the SVID further.
    let narrowed = policy(json!({"spiffe": {"trustDomain": "cluster.local"},
                                 "allowed": {"uris": ["spiffe://cluster.local/ns/{namespace}/sa/{name}"]}}));
    let s = spec(json!({"uris": ["spiffe://cluster.local/ns/a/sa/web"]}));
    assert_eq!(evaluate(Some(&narrowed), &request(&s)), Ok(()));
    let s = spec(json!({"uris": ["spiffe://cluster.local/ns/a/sa/other"]}));
    assert_eq!(denied(Some(&narrowed), &request(&s)).field, Field::Uris);
    // One denial for a foreign SVID, not one per rule.
    let s = spec(json!({"uris": ["spiffe://cluster.local/ns/payments/sa/web"]}));
    assert_eq!(denials(Some(&narrowed), &request(&s)).len(), 1);
}

#[test]
fn namespaces_by_name_and_selector() {
    let s = spec(json!({"dnsNames": ["x.example"]}));
    let p = policy(json!({"namespaces": {"matchNames": ["a", "b"]}}));
    assert_eq!(evaluate(Some(&p), &request(&s)), Ok(()));
    let other = Request {
        namespace: "c",
        ..request(&s)
    };
    let d = denied(Some(&p), &other);
    assert_eq!(d.field, Field::Namespace);
    assert_eq!(
        d.message,
        r#"namespace "c" is not one of the ClusterIssuer's namespaces (a, b)"#
    );

    let p = policy(json!({"namespaces": {"selector": {
        "matchLabels": {"tenant": "yes"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold", "silver"]},
                             {"key": "frozen", "operator": "DoesNotExist"}],
    }}}));
    assert!(lookups(Some(&p), IssuerKind::ClusterIssuer, "a", &s).namespace_labels);
    assert!(!lookups(Some(&p), IssuerKind::Issuer, "a", &s).namespace_labels);
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let good = labels(&[("tenant", "yes"), ("tier", "gold")]);
    let with = |l: &BTreeMap<String, String>| -> Result<(), Denial> {
        evaluate(
            Some(&p),
            &Request {
                namespace_labels: Some(l),
                ..request(&s)
            },
        )
    };
    assert_eq!(with(&good), Ok(()));
    for (bad, unmet) in [
        (labels(&[("tier", "gold")]), "tenant=yes"),
        (
            labels(&[("tenant", "yes"), ("tier", "bronze")]),
            "tier in (gold,silver)",
        ),
        (
            labels(&[("tenant", "yes"), ("tier", "gold"), ("frozen", "")]),
            "!frozen",
        ),
    ] {
        let d = with(&bad).expect_err("denied");
        assert!(d.message.ends_with(unmet), "{d}");
    }
    // Labels needed but not gathered: denied.
    let d = denied(Some(&p), &request(&s));
    assert!(
        d.message.contains("labels of namespace \"a\" are unknown"),
        "{d}"
    );

    // Both criteria must hold.
    let both = policy(
        json!({"namespaces": {"matchNames": ["a"], "selector": {"matchLabels": {"tenant": "yes"}}}}),
    );
    let r = Request {
        namespace_labels: Some(&good),
        namespace: "b",
        ..request(&s)
    };
    assert_eq!(denied(Some(&both), &r).field, Field::Namespace);

    // On a namespaced Issuer, `namespaces` is refused.
    let issuer = Request {
        issuer_kind: IssuerKind::Issuer,
        ..request(&s)
    };
    let d = denied(
        Some(&policy(json!({"namespaces": {"matchNames": ["a"]}}))),
        &issuer,
    );
    assert!(d.message.contains("only for ClusterIssuers"), "{d}");
}

#[test]
fn duration_keys_and_usages() {
    let p = spiffe_policy();
    let base = json!({"commonName": "web", "uris": ["spiffe://cluster.local/ns/a/sa/web"], "duration": "24h"});
    let with = |extra: serde_json::Value| {
        let mut fields = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            fields[k] = v.clone();
        }
        let s = spec(fields);
        evaluate(
            Some(&p),
            &Request {
                service_account_exists: Some(true),
                ..request(&s)
            },
        )
    };
    assert_eq!(with(json!({})), Ok(()));
    let d = with(json!({"duration": "24h1s"})).expect_err("too long");
    assert_eq!(d.field, Field::Duration);
    assert_eq!(
        d.message,
        r#"duration "24h1s" exceeds the issuer's maxDuration 24h"#
    );
    let d = with(json!({"duration": null})).expect_err("default too long");
    assert_eq!(
        d.message,
        "duration (default 2160h) exceeds the issuer's maxDuration 24h"
    );

    assert_eq!(
        with(json!({"privateKey": {"algorithm": "ECDSA", "size": 384}})),
        Ok(())
    );
    assert_eq!(
        with(json!({"privateKey": {"algorithm": "Ed25519"}})),
        Ok(())
    );
    let d = with(json!({"privateKey": {"algorithm": "ECDSA", "size": 521}})).expect_err("521");
    assert_eq!(d.field, Field::PrivateKey);
    assert_eq!(
        d.message,
        "privateKey ECDSA 521 is not among the issuer's keyAlgorithms (ECDSA 256/384, Ed25519)"
    );
    let d = with(json!({"privateKey": {"algorithm": "RSA"}})).expect_err("RSA");
    assert!(
        d.message.starts_with("privateKey RSA 2048 is not among"),
        "{d}"
    );

    assert_eq!(
        with(json!({"usages": ["digital signature", "client auth"]})),
        Ok(())
    );
    let d = with(json!({"usages": ["digital signature", "code signing"]})).expect_err("usage");
    assert_eq!(d.field, Field::Usages);
    assert!(
        d.message.starts_with("usages code signing not allowed"),
        "{d}"
    );
    let tight = policy(json!({"usages": ["digital signature", "client auth"]}));
    let s = spec(json!({"commonName": "x"}));
    let d = denied(Some(&tight), &request(&s));
    assert!(
        d.message.contains("server auth (the default usages)"),
        "{d}"
    );
}

#[test]
fn every_denial_is_reported_in_a_fixed_order() {
    let p = spiffe_policy();
    let s = spec(json!({
        "commonName": "root", "isCA": true, "dnsNames": ["x.payments.svc"],
        "uris": ["spiffe://cluster.local/ns/payments/sa/billing"], "duration": "8760h",
        "privateKey": {"algorithm": "RSA"}, "usages": ["code signing"],
    }));
    let fields: Vec<Field> = denials(Some(&p), &request(&s))
        .iter()
        .map(|d| d.field)
        .collect();
    assert_eq!(
        fields,
        [
            Field::IsCa,
            Field::CommonName,
            Field::DnsNames,
            Field::Uris,
            Field::Duration,
            Field::PrivateKey,
            Field::Usages
        ]
    );
    assert_eq!(denied(Some(&p), &request(&s)).field, Field::IsCa);
}

#[test]
fn a_malformed_policy_fails_closed() {
    let p = policy(json!({"allowed": {"dnsNames": ["*.{ns}.svc"]}}));
    let s = spec(json!({"dnsNames": ["x.a.svc"]}));
    let d = denied(Some(&p), &request(&s));
    assert_eq!(d.field, Field::Policy);
    assert!(d.message.contains("unknown placeholder"), "{d}");
    let p = policy(json!({"maxDuration": "forever"}));
    assert_eq!(denied(Some(&p), &request(&s)).field, Field::Policy);
}

#[test]
fn messages_are_bounded_and_quote_values_safely() {
    let p = policy(json!({"allowed": {"commonName": ["{name}"]}}));
    let s = spec(json!({"commonName": "evil\u{202e}name"}));
    let d = denied(Some(&p), &request(&s));
    assert!(d.message.contains(r"\u{202e}"), "{d}");
    let long = format!("https://a.example/{}", "x".repeat(2000));
    let p = policy(
        json!({"allowed": {"uris": (0..64).map(|i| format!("https://{i}.example/{}", "y".repeat(900))).collect::<Vec<_>>()}}),
    );
    let s = spec(json!({"uris": [long]}));
    let d = denied(Some(&p), &request(&s));
    assert!(d.message.len() <= 700, "{}", d.message.len());
    assert!(d.message.ends_with(" more)"), "{}", d.message);
    // Escapes do not blow the bound either.
    let s = spec(json!({"uris": [format!("https://a.example/{}", "\u{202e}".repeat(600))]}));
    assert!(denied(Some(&p), &request(&s)).message.len() <= 700);
    let d = denied(
        Some(&p),
        &request(&spec(json!({"commonName": "\u{1}".repeat(64)}))),
    );
    assert!(d.message.len() <= 700, "{}", d.message.len());
}

#[test]
fn svid_helper_for_pods() {
    let p = spiffe_policy();
    assert_eq!(
        svid_for(&p, "agents", "billing-agent").as_deref(),
        Some("spiffe://cluster.local/ns/agents/sa/billing-agent")
    );
    assert_eq!(svid_for(&Policy::default(), "a", "b"), None);
}

#[test]
fn summaries_tell_a_tenant_what_it_may_ask_for() {
    assert_eq!(
        summary(None, IssuerKind::ClusterIssuer),
        "none: any names; isCA only in the cluster-resource namespace"
    );
    assert_eq!(summary(None, IssuerKind::Issuer), "none: any names");
    let mut p = spiffe_policy();
    p.namespaces = Some(
        serde_json::from_value(
            json!({"matchNames": ["agents"], "selector": {"matchLabels": {"tenant": "yes"}}}),
        )
        .unwrap(),
    );
    assert_eq!(
        summary(Some(&p), IssuerKind::ClusterIssuer),
        "namespaces agents and selector tenant=yes; names CN {name}, DNS {name}.{namespace}.svc {name}.{namespace}.svc.cluster.local, SVID spiffe://cluster.local/ns/{namespace}/sa/<existing service account>; maxDuration 24h; keys ECDSA 256/384, Ed25519; usages digital signature,server auth,client auth; no isCA"
    );
    assert_eq!(
        summary(
            Some(&policy(json!({"isCA": true}))),
            IssuerKind::ClusterIssuer
        ),
        "any names; isCA allowed"
    );
    let huge = policy(
        json!({"allowed": {"dnsNames": (0..64).map(|i| format!("*.{i}.{{namespace}}.example")).collect::<Vec<_>>()}}),
    );
    let line = summary(Some(&huge), IssuerKind::Issuer);
    assert!(
        line.len() <= MAX_SUMMARY_BYTES && line.ends_with('…'),
        "{line}"
    );
}

#[test]
fn field_labels_are_a_fixed_set() {
    let labels: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
    assert_eq!(
        labels,
        [
            "namespace",
            "isCA",
            "commonName",
            "dnsNames",
            "ipAddresses",
            "uris",
            "emailAddresses",
            "serviceAccount",
            "duration",
            "privateKey",
            "usages",
            "policy"
        ]
    );
}

#[test]
fn a_single_size_counts_like_a_list_of_one() {
    let p = policy(
        json!({"keyAlgorithms": [{"algorithm": "RSA", "size": 3072}, {"algorithm": "ECDSA", "sizes": [256], "size": 384}]}),
    );
    let key = |algorithm: &str, size: u32| {
        spec(json!({"commonName": "web", "privateKey": {"algorithm": algorithm, "size": size}}))
    };
    for (algorithm, size, ok) in [
        ("RSA", 3072, true),
        ("RSA", 2048, false),
        ("ECDSA", 256, true),
        ("ECDSA", 384, true),
        ("ECDSA", 521, false),
    ] {
        let s = key(algorithm, size);
        assert_eq!(
            evaluate(Some(&p), &request(&s)).is_ok(),
            ok,
            "{algorithm} {size}"
        );
    }
}
