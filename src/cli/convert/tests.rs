use serde_json::{Value, json};

use super::map::vault_sign_path;
use super::*;

fn one(doc: Value) -> (Option<Value>, Vec<(String, String)>) {
    let converted = convert_document(&doc);
    (
        converted.object.map(|o| o.to_value()),
        converted
            .notes
            .into_iter()
            .map(|n| (n.path, n.message))
            .collect(),
    )
}

fn paths(notes: &[(String, String)]) -> Vec<&str> {
    notes.iter().map(|(p, _)| p.as_str()).collect()
}

fn cert(spec: Value) -> Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
           "metadata": {"name": "web", "namespace": "apps"}, "spec": spec})
}

fn issuer(kind: &str, namespace: Option<&str>, spec: Value) -> Value {
    let mut meta = json!({"name": "vault"});
    if let Some(ns) = namespace {
        meta["namespace"] = json!(ns);
    }
    json!({"apiVersion": "cert-manager.io/v1", "kind": kind, "metadata": meta, "spec": spec})
}

fn origin(n: usize) -> Origin {
    Origin {
        source: "in.yaml".into(),
        document: n,
        item: None,
    }
}

#[test]
fn every_certificate_field_certsmith_has_maps_one_to_one() {
    let (object, notes) = one(cert(json!({
        "secretName": "web-tls",
        "issuerRef": {"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"},
        "commonName": "web",
        "dnsNames": ["web.apps.svc", "*.web.example"],
        "ipAddresses": ["10.0.0.1", "::1"],
        "uris": ["spiffe://cluster.local/ns/apps/sa/web"],
        "emailAddresses": ["ops@example.com"],
        "subject": {"organizations": ["Acme"], "organizationalUnits": ["Ops"], "countries": ["DE"],
                    "localities": ["Berlin"], "provinces": ["BE"]},
        "duration": "2160h0m0s",
        "renewBefore": "360h",
        "privateKey": {"algorithm": "RSA", "size": 4096, "encoding": "PKCS8", "rotationPolicy": "Never"},
        "usages": ["digital signature", "key encipherment", "server auth", "client auth"],
        "isCA": false,
        "secretTemplate": {"labels": {"team": "web"}, "annotations": {"reflector/enabled": "true"}},
        "encodeUsagesInRequest": true,
    })));
    assert_eq!(notes, vec![], "nothing to report");
    assert_eq!(
        object.unwrap(),
        json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {
            "secretName": "web-tls",
            "issuerRef": {"name": "ca", "kind": "ClusterIssuer"},
            "commonName": "web",
            "dnsNames": ["web.apps.svc", "*.web.example"],
            "ipAddresses": ["10.0.0.1", "::1"],
            "uris": ["spiffe://cluster.local/ns/apps/sa/web"],
            "emailAddresses": ["ops@example.com"],
            "subject": {"organizations": ["Acme"], "organizationalUnits": ["Ops"], "countries": ["DE"],
                        "localities": ["Berlin"], "provinces": ["BE"]},
            "duration": "2160h0m0s",
            "renewBefore": "360h",
            "privateKey": {"algorithm": "RSA", "size": 4096, "encoding": "PKCS8", "rotationPolicy": "Never"},
            "usages": ["digital signature", "key encipherment", "server auth", "client auth"],
            "secretTemplate": {"labels": {"team": "web"}, "annotations": {"reflector/enabled": "true"}},
        }})
    );
}

#[test]
fn the_key_keeps_cert_managers_defaults_rsa_and_pkcs1() {
    let minimal =
        json!({"secretName": "s", "issuerRef": {"name": "ca"}, "dnsNames": ["a.example"]});
    let (object, notes) = one(cert(minimal.clone()));
    assert!(notes.is_empty(), "{notes:?}");
    let object = object.unwrap();
    assert_eq!(
        object["spec"]["privateKey"],
        json!({"algorithm": "RSA", "encoding": "PKCS1"})
    );
    assert_eq!(
        object["spec"]["issuerRef"],
        json!({"name": "ca", "kind": "Issuer"})
    );
    // Unset rotationPolicy stays unset: certsmith's Always, cert-manager's since v1.18.
    assert!(object["spec"]["privateKey"].get("rotationPolicy").is_none());
    // Unset usages stay unset: certsmith's defaults apply.
    assert!(object["spec"].get("usages").is_none());

    let mut ecdsa = minimal.clone();
    ecdsa["privateKey"] = json!({"algorithm": "ECDSA"});
    assert_eq!(
        one(cert(ecdsa)).0.unwrap()["spec"]["privateKey"],
        json!({"algorithm": "ECDSA", "encoding": "PKCS1"})
    );
    let mut ed = minimal.clone();
    ed["privateKey"] = json!({"algorithm": "Ed25519", "size": 256});
    let (object, notes) = one(cert(ed));
    assert_eq!(
        object.unwrap()["spec"]["privateKey"],
        json!({"algorithm": "Ed25519"})
    );
    assert_eq!(paths(&notes), ["spec.privateKey.size"]);
    let mut ed_pkcs1 = minimal.clone();
    ed_pkcs1["privateKey"] = json!({"algorithm": "Ed25519", "encoding": "PKCS1"});
    let (object, notes) = one(cert(ed_pkcs1));
    assert_eq!(
        object.unwrap()["spec"]["privateKey"],
        json!({"algorithm": "Ed25519"})
    );
    assert_eq!(paths(&notes), ["spec.privateKey.encoding"]);
    // A size alone is an RSA size, as cert-manager reads it.
    let mut sized = minimal;
    sized["privateKey"] = json!({"size": 8192});
    assert_eq!(
        one(cert(sized)).0.unwrap()["spec"]["privateKey"],
        json!({"algorithm": "RSA", "size": 8192, "encoding": "PKCS1"})
    );
}

#[test]
fn key_sizes_certsmith_lacks_round_up_and_say_so() {
    let with_key = |key: Value| {
        one(cert(
            json!({"secretName": "s", "issuerRef": {"name": "ca"}, "dnsNames": ["a"], "privateKey": key}),
        ))
    };
    let (object, notes) = with_key(json!({"algorithm": "RSA", "size": 3000}));
    assert_eq!(object.unwrap()["spec"]["privateKey"]["size"], json!(3072));
    assert_eq!(paths(&notes), ["spec.privateKey.size"]);
    assert!(notes[0].1.contains("3000 becomes 3072"), "{notes:?}");
    let (object, notes) = with_key(json!({"algorithm": "ECDSA", "size": 1024}));
    assert!(object.unwrap()["spec"]["privateKey"].get("size").is_none());
    assert!(notes[0].1.contains("1024 dropped"), "{notes:?}");
    let (_, notes) =
        with_key(json!({"algorithm": "DSA", "rotationPolicy": "Sometimes", "encoding": "DER"}));
    assert_eq!(
        paths(&notes),
        [
            "spec.privateKey.algorithm",
            "spec.privateKey.encoding",
            "spec.privateKey.rotationPolicy"
        ]
    );
}

#[test]
fn every_field_certsmith_cannot_honour_is_reported_with_its_path() {
    let (object, notes) = one(cert(json!({
        "secretName": "s",
        "issuerRef": {"name": "ca"},
        "commonName": "web",
        "literalSubject": "CN=web,O=Acme",
        "subject": {"organizations": ["Acme"], "streetAddresses": ["Main St"], "postalCodes": ["1"], "serialNumber": "7"},
        "otherNames": [{"oid": "1.3.6.1.4.1.311.20.2.3", "utf8Value": "upn@example.com"}],
        "keystores": {"jks": {"create": true, "passwordSecretRef": {"name": "p", "key": "k"}}},
        "additionalOutputFormats": [{"type": "CombinedPEM"}, {"type": "DER"}],
        "nameConstraints": {"critical": true, "permitted": {"dnsDomains": ["example.com"]}},
        "revisionHistoryLimit": 3,
        "encodeUsagesInRequest": false,
        "signatureAlgorithm": "SHA384WithRSA",
        "renewal": {"policy": "Disabled"},
        "someFutureField": {"x": 1},
    })));
    assert!(object.is_some(), "the rest still converts");
    let mut got = paths(&notes);
    got.sort();
    assert_eq!(
        got,
        [
            "spec.encodeUsagesInRequest",
            "spec.literalSubject",
            "spec.nameConstraints",
            "spec.otherNames",
            "spec.renewal",
            "spec.revisionHistoryLimit",
            "spec.signatureAlgorithm",
            "spec.someFutureField",
            "spec.subject.postalCodes",
            "spec.subject.serialNumber",
            "spec.subject.streetAddresses",
        ]
    );
    let message = |path: &str| {
        notes
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, m)| m.as_str())
            .unwrap()
    };
    let spec = &object.expect("converted")["spec"];
    assert_eq!(
        spec["additionalOutputFormats"],
        json!([{"type": "CombinedPEM"}, {"type": "DER"}])
    );
    assert_eq!(
        spec["keystores"],
        json!({"jks": {"create": true, "passwordSecretRef": {"name": "p", "key": "k"}}})
    );
    assert!(message("spec.someFutureField").contains("no such field"));
}

#[test]
fn issuer_refs_keep_name_and_kind_and_report_foreign_groups() {
    let with_ref = |r: Value| {
        one(cert(
            json!({"secretName": "s", "issuerRef": r, "dnsNames": ["a"]}),
        ))
    };
    for (r, kind) in [
        (json!({"name": "x"}), "Issuer"),
        (
            json!({"name": "x", "kind": "Issuer", "group": "cert-manager.io"}),
            "Issuer",
        ),
        (
            json!({"name": "x", "kind": "ClusterIssuer"}),
            "ClusterIssuer",
        ),
        (
            json!({"name": "x", "kind": "AWSPCAIssuer", "group": "awspca.cert-manager.io"}),
            "Issuer",
        ),
        (
            json!({"name": "x", "kind": "AWSPCAClusterIssuer", "group": "awspca.cert-manager.io"}),
            "ClusterIssuer",
        ),
    ] {
        let (object, notes) = with_ref(r.clone());
        assert!(notes.is_empty(), "{r}: {notes:?}");
        assert_eq!(
            object.unwrap()["spec"]["issuerRef"],
            json!({"name": "x", "kind": kind}),
            "{r}"
        );
    }
    let (object, notes) = with_ref(
        json!({"name": "x", "kind": "GoogleCASClusterIssuer", "group": "cas-issuer.jetstack.io"}),
    );
    assert_eq!(
        object.unwrap()["spec"]["issuerRef"]["kind"],
        json!("ClusterIssuer")
    );
    assert_eq!(paths(&notes), ["spec.issuerRef.group"]);
    assert!(
        notes[0]
            .1
            .contains("cas-issuer.jetstack.io is an external issuer"),
        "{notes:?}"
    );
    let (_, notes) = with_ref(json!({"name": "x", "kind": "Signer"}));
    assert_eq!(paths(&notes), ["spec.issuerRef.kind"]);
    let (object, notes) = with_ref(json!({"kind": "Issuer"}));
    assert!(object.is_none());
    assert_eq!(paths(&notes), ["spec.issuerRef.name"]);
    let (object, notes) = one(cert(json!({"secretName": "s", "dnsNames": ["a"]})));
    assert!(object.is_none());
    assert_eq!(paths(&notes), ["spec.issuerRef"]);
}

#[test]
fn usages_take_cert_managers_aliases_and_report_the_rest() {
    let (object, notes) = one(cert(
        json!({"secretName": "s", "issuerRef": {"name": "ca"}, "dnsNames": ["a"],
        "usages": ["signing", "s/mime", "ipsec user", "server auth", "digital signature", 7]}),
    ));
    assert_eq!(
        object.unwrap()["spec"]["usages"],
        json!(["digital signature", "email protection", "server auth"])
    );
    assert_eq!(paths(&notes), ["spec.usages[2]", "spec.usages[5]"]);
    let (object, notes) = one(cert(
        json!({"secretName": "s", "issuerRef": {"name": "ca"}, "dnsNames": ["a"],
        "usages": ["netscape sgc"]}),
    ));
    assert!(object.unwrap()["spec"].get("usages").is_none());
    assert_eq!(paths(&notes), ["spec.usages[0]", "spec.usages"]);
}

#[test]
fn durations_outside_certsmiths_grammar_are_reported_and_dropped() {
    let (object, notes) = one(cert(
        json!({"secretName": "s", "issuerRef": {"name": "ca"}, "dnsNames": ["a"],
        "duration": "1h30m", "renewBefore": "1500000us", "renewBeforePercentage": 25}),
    ));
    let spec = object.unwrap()["spec"].clone();
    assert_eq!(spec["duration"], json!("1h30m"));
    assert!(spec.get("renewBefore").is_none());
    assert_eq!(spec["renewBeforePercentage"], json!(25));
    assert_eq!(paths(&notes), ["spec.renewBefore"]);
    let (object, notes) = one(cert(
        json!({"secretName": "s", "issuerRef": {"name": "ca"}, "dnsNames": ["a"],
        "renewBeforePercentage": 100, "duration": "0s"}),
    ));
    assert!(
        object.unwrap()["spec"]
            .get("renewBeforePercentage")
            .is_none()
    );
    assert_eq!(
        paths(&notes),
        ["spec.duration", "spec.renewBeforePercentage"]
    );
}

#[test]
fn a_certificate_with_no_identity_certsmith_can_request_is_not_converted() {
    let (object, notes) = one(cert(json!({"secretName": "s", "issuerRef": {"name": "ca"},
        "literalSubject": "CN=x", "otherNames": [{"oid": "1.2.3", "utf8Value": "v"}]})));
    assert!(object.is_none());
    assert_eq!(
        paths(&notes),
        ["spec.literalSubject", "spec.otherNames", "spec"]
    );
    let (object, notes) = one(cert(
        json!({"issuerRef": {"name": "ca"}, "dnsNames": ["a"]}),
    ));
    assert!(object.is_none());
    assert_eq!(paths(&notes), ["spec.secretName"]);
}

#[test]
fn metadata_keeps_what_the_user_wrote_and_drops_what_the_cluster_wrote() {
    let doc = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {
            "name": "web", "namespace": "apps",
            "labels": {"app": "web"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                "cert-manager.io/issue-temporary-certificate": "true",
                "team": "web",
            },
            "uid": "1234", "resourceVersion": "99", "generation": 3, "creationTimestamp": "2024-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
            "ownerReferences": [{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "web", "uid": "u"}],
            "finalizers": ["x"],
        },
        "spec": {"secretName": "s", "issuerRef": {"name": "ca"}, "dnsNames": ["a"]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let (object, notes) = one(doc);
    assert_eq!(
        object.unwrap()["metadata"],
        json!({"name": "web", "namespace": "apps", "labels": {"app": "web"}, "annotations": {"team": "web"}})
    );
    assert_eq!(
        paths(&notes),
        [
            "metadata.annotations[cert-manager.io/issue-temporary-certificate]",
            "metadata.ownerReferences",
            "metadata.finalizers"
        ]
    );
}

#[test]
fn self_signed_and_ca_issuers_convert_and_their_url_fields_are_reported() {
    let (object, notes) = one(issuer(
        "ClusterIssuer",
        Some("ignored"),
        json!({"selfSigned": {}}),
    ));
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(
        object.unwrap(),
        json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "ClusterIssuer", "metadata": {"name": "vault"}, "spec": {"selfSigned": {}}})
    );
    let (object, notes) = one(issuer(
        "Issuer",
        Some("apps"),
        json!({"ca": {"secretName": "root",
        "crlDistributionPoints": ["http://crl"], "ocspServers": ["http://ocsp"], "issuingCertificateURLs": []}}),
    ));
    assert_eq!(
        object.unwrap()["spec"],
        json!({"ca": {"secretName": "root", "crlDistributionPoints": ["http://crl"]}})
    );
    assert_eq!(paths(&notes), ["spec.ca.ocspServers"]);
    let (_, notes) = one(issuer(
        "Issuer",
        Some("apps"),
        json!({"selfSigned": {"crlDistributionPoints": ["http://crl"]}}),
    ));
    assert_eq!(paths(&notes), ["spec.selfSigned.crlDistributionPoints"]);
}

#[test]
fn vault_token_and_approle_auth_map_with_cert_managers_default_keys() {
    let (object, notes) = one(issuer(
        "Issuer",
        Some("apps"),
        json!({"vault": {
        "server": "https://vault.example:8200", "path": "pki_int/sign/web", "namespace": "team-a",
        "caBundle": "LS0tLS1CRUdJTg==",
        "auth": {"tokenSecretRef": {"name": "vault-token"}}}}),
    ));
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(
        object.unwrap()["spec"]["vault"],
        json!({"server": "https://vault.example:8200", "path": "pki_int/sign/web", "namespace": "team-a",
               "caBundle": "LS0tLS1CRUdJTg==", "auth": {"tokenSecretRef": {"name": "vault-token", "key": "token"}}})
    );
    let (object, notes) = one(issuer(
        "Issuer",
        Some("apps"),
        json!({"vault": {
        "server": "https://vault.example:8200", "path": "pki/sign/web",
        "caBundleSecretRef": {"name": "vault-ca"},
        "auth": {"appRole": {"path": "approle", "roleId": "6a1c", "secretRef": {"name": "vault-approle", "key": "secretId"}}}}}),
    ));
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(
        object.unwrap()["spec"]["vault"],
        json!({"server": "https://vault.example:8200", "path": "pki/sign/web",
               "caBundleSecretRef": {"name": "vault-ca", "key": "ca.crt"},
               "auth": {"appRole": {"path": "approle", "roleId": "6a1c", "secretRef": {"name": "vault-approle", "key": "secretId"}}}})
    );
    // AppRole's secret key has no default in cert-manager either.
    let (object, notes) = one(issuer(
        "Issuer",
        Some("apps"),
        json!({"vault": {
        "server": "https://v", "path": "pki/sign/web",
        "auth": {"appRole": {"path": "approle", "roleId": "r", "secretRef": {"name": "s"}}}}}),
    ));
    assert!(object.is_none());
    assert_eq!(
        paths(&notes),
        [
            "spec.vault.auth.appRole.secretRef.key",
            "spec.vault.auth.appRole",
            "spec.vault.auth"
        ]
    );
}

#[test]
fn vault_kubernetes_auth_keeps_the_audiences_cert_manager_sends() {
    let spec = |sa: Value| {
        json!({"vault": {"server": "https://vault.example:8200", "path": "pki/sign/web",
            "auth": {"kubernetes": {"mountPath": "/v1/auth/kubernetes", "role": "issuer", "serviceAccountRef": sa}}}})
    };
    let (object, notes) = one(issuer(
        "Issuer",
        Some("apps"),
        spec(json!({"name": "vault-auth", "audiences": ["extra"]})),
    ));
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(
        object.unwrap()["spec"]["vault"]["auth"],
        json!({"kubernetes": {"role": "issuer", "serviceAccountRef": {"name": "vault-auth",
            "audiences": ["extra", "vault://apps/vault", "https://vault.example:8200"]}}})
    );
    let (object, _) = one(issuer(
        "ClusterIssuer",
        None,
        spec(json!({"name": "vault-auth"})),
    ));
    assert_eq!(
        object.unwrap()["spec"]["vault"]["auth"]["kubernetes"]["serviceAccountRef"]["audiences"],
        json!(["vault://vault", "https://vault.example:8200"])
    );
    // A namespaced Issuer whose manifest has no namespace: the audience cannot be written.
    let (object, notes) = one(issuer("Issuer", None, spec(json!({"name": "vault-auth"}))));
    assert_eq!(
        object.unwrap()["spec"]["vault"]["auth"]["kubernetes"]["serviceAccountRef"]["audiences"],
        json!(["https://vault.example:8200"])
    );
    assert_eq!(
        paths(&notes),
        ["spec.vault.auth.kubernetes.serviceAccountRef.audiences"]
    );
    // A stored token and another mount.
    let (object, notes) = one(issuer(
        "Issuer",
        Some("apps"),
        json!({"vault": {"server": "https://v", "path": "pki/sign/web",
        "auth": {"kubernetes": {"mountPath": "/v1/auth/cluster-b", "role": "issuer", "secretRef": {"name": "sa-token"}}}}}),
    ));
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(
        object.unwrap()["spec"]["vault"]["auth"],
        json!({"kubernetes": {"mountPath": "cluster-b", "role": "issuer", "secretRef": {"name": "sa-token", "key": "token"}}})
    );
}

#[test]
fn vault_features_certsmith_lacks_are_reported() {
    let (object, notes) = one(issuer(
        "Issuer",
        Some("apps"),
        json!({"vault": {
        "server": "https://v", "path": "pki/sign/web", "serverName": "vault.internal",
        "clientCertSecretRef": {"name": "c", "key": "tls.crt"}, "clientKeySecretRef": {"name": "c", "key": "tls.key"},
        "auth": {"tokenSecretRef": {"name": "t", "key": "token"}}}}),
    ));
    assert!(object.is_some());
    assert_eq!(
        paths(&notes),
        [
            "spec.vault.clientCertSecretRef",
            "spec.vault.clientKeySecretRef",
            "spec.vault.serverName"
        ]
    );
    let (object, notes) = one(issuer(
        "Issuer",
        Some("apps"),
        json!({"vault": {
        "server": "https://v", "path": "pki/issue/web",
        "auth": {"clientCertificate": {"secretName": "c"}}}}),
    ));
    assert!(object.is_none());
    assert_eq!(
        paths(&notes),
        [
            "spec.vault.path",
            "spec.vault.auth.clientCertificate",
            "spec.vault.auth"
        ]
    );
    let (_, notes) = one(issuer(
        "Issuer",
        Some("apps"),
        json!({"vault": {
        "server": "https://v", "path": "pki/sign/web", "auth": {"aws": {"role": "r"}}}}),
    ));
    assert!(paths(&notes).contains(&"spec.vault.auth.aws"));
    let (object, notes) = one(issuer("Issuer", Some("apps"), json!({})));
    assert!(object.is_none());
    assert_eq!(paths(&notes), ["spec"]);
}

#[test]
fn vault_sign_paths_match_certsmiths_schema() {
    for ok in [
        "pki/sign/web",
        "pki_int/sign/agents",
        "a/b/sign/r@x",
        "pki/sign-verbatim",
        "pki/sign-verbatim/web",
    ] {
        assert!(vault_sign_path(ok), "{ok}");
    }
    for bad in [
        "pki/issue/web",
        "sign/web",
        "pki/sign",
        "/pki/sign/web",
        "pki//sign/web",
        "pki/sign/web/x",
    ] {
        assert!(!vault_sign_path(bad), "{bad}");
    }
}

#[test]
fn acme_and_venafi_issuers_are_not_converted_and_their_certificates_say_so() {
    let conversion = convert(vec![
        (
            origin(1),
            issuer(
                "ClusterIssuer",
                None,
                json!({"acme": {"server": "https://acme", "privateKeySecretRef": {"name": "k"}}}),
            ),
        ),
        (
            origin(2),
            issuer("Issuer", Some("apps"), json!({"venafi": {"zone": "z"}})),
        ),
        (
            origin(3),
            cert(
                json!({"secretName": "s", "issuerRef": {"name": "vault", "kind": "ClusterIssuer"}, "dnsNames": ["a"]}),
            ),
        ),
        (
            origin(4),
            cert(json!({"secretName": "s", "issuerRef": {"name": "vault"}, "dnsNames": ["a"]})),
        ),
        (
            origin(5),
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "other", "namespace": "elsewhere"},
            "spec": {"secretName": "s", "issuerRef": {"name": "vault"}, "dnsNames": ["a"]}}),
        ),
    ]);
    assert_eq!(conversion.objects.len(), 3);
    let found: Vec<String> = conversion.findings.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        found,
        [
            "in.yaml (document 1): ClusterIssuer vault: spec.acme: certsmith has no ACME issuer (Let's Encrypt and other ACME CAs): this issuer is not converted",
            "in.yaml (document 2): Issuer apps/vault: spec.venafi: certsmith has no Venafi / CyberArk issuer: this issuer is not converted",
            "in.yaml (document 3): Certificate apps/web: spec.issuerRef: names ClusterIssuer vault, which was not converted: nothing will issue this certificate until that issuer exists",
            "in.yaml (document 4): Certificate apps/web: spec.issuerRef: names Issuer apps/vault, which was not converted: nothing will issue this certificate until that issuer exists",
            "in.yaml (document 4): Certificate apps/web: metadata.name: the same certsmith Certificate as in.yaml (document 3): one would replace the other",
        ]
    );
}

#[test]
fn aws_pca_issuers_become_aws_pca_issuers() {
    let arn = "arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/0e2f7c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
    let (object, notes) = one(
        json!({"apiVersion": "awspca.cert-manager.io/v1beta1", "kind": "AWSPCAIssuer",
        "metadata": {"name": "pca", "namespace": "apps"},
        "spec": {"arn": arn, "region": "eu-west-1",
                 "secretRef": {"name": "aws-creds", "namespace": "apps",
                               "accessKeyIDSelector": {"key": "id"}, "secretAccessKeySelector": {"key": "secret"}},
                 "pcaTemplate": {"defaultTemplateName": "EndEntityCertificate/V1"}}}),
    );
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(
        object.unwrap(),
        json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "pca", "namespace": "apps"},
               "spec": {"awsPCA": {"arn": arn, "region": "eu-west-1",
                   "templateArn": "arn:aws:acm-pca:::template/EndEntityCertificate/V1",
                   "credentials": {"secretRef": {"name": "aws-creds", "accessKeyIdKey": "id", "secretAccessKeyKey": "secret"}}}}})
    );
    let gov = "arn:aws-us-gov:acm-pca:us-gov-west-1:111122223333:certificate-authority/abc";
    let (object, notes) = one(
        json!({"apiVersion": "awspca.cert-manager.io/v1beta1", "kind": "AWSPCAClusterIssuer",
        "metadata": {"name": "pca"},
        "spec": {"arn": gov, "role": "arn:aws-us-gov:iam::111122223333:role/issuer",
                 "secretRef": {"name": "aws-creds", "namespace": "aws-privateca-issuer"},
                 "pcaTemplate": {"defaultTemplateName": "SubordinateCACertificate_PathLen0/V1"}}}),
    );
    let object = object.unwrap();
    assert_eq!(object["kind"], json!("ClusterIssuer"));
    assert_eq!(
        object["spec"]["awsPCA"],
        json!({"arn": gov, "templateArn": "arn:aws-us-gov:acm-pca:::template/SubordinateCACertificate_PathLen0/V1",
               "credentials": {"secretRef": {"name": "aws-creds"}}, "role": "arn:aws-us-gov:iam::111122223333:role/issuer"})
    );
    assert_eq!(paths(&notes), ["spec.secretRef.namespace"]);
    assert!(
        notes[0].1.contains("cluster-resource namespace"),
        "{notes:?}"
    );
    // A namespaced issuer's Secret in another namespace.
    let (_, notes) = one(
        json!({"apiVersion": "awspca.cert-manager.io/v1beta1", "kind": "AWSPCAIssuer",
        "metadata": {"name": "pca", "namespace": "apps"},
        "spec": {"arn": arn, "secretRef": {"name": "aws-creds", "namespace": "shared"}, "disableRateLimit": true}}),
    );
    assert_eq!(
        paths(&notes),
        ["spec.secretRef.namespace", "spec.disableRateLimit"]
    );
    let (object, notes) = one(
        json!({"apiVersion": "awspca.cert-manager.io/v1beta1", "kind": "AWSPCAIssuer",
        "metadata": {"name": "pca", "namespace": "apps"}, "spec": {"region": "eu-west-1"}}),
    );
    assert!(object.is_none());
    assert_eq!(paths(&notes), ["spec.arn"]);
}

#[test]
fn lists_are_unpacked_and_items_keep_their_position() {
    let docs = vec![
        (
            origin(1),
            json!({"apiVersion": "v1", "kind": "List", "items": [
                cert(json!({"secretName": "a", "issuerRef": {"name": "ca"}, "dnsNames": ["a"]})),
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
                issuer("Issuer", Some("apps"), json!({"selfSigned": {}})),
            ]}),
        ),
        (
            origin(2),
            json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateList", "items": [
                {"metadata": {"name": "b", "namespace": "apps"}, "spec": {"secretName": "b", "issuerRef": {"name": "ca"}, "dnsNames": ["b"],
                  "keystores": {"pkcs12": {"create": true}}}},
            ]}),
        ),
    ];
    let conversion = convert(docs);
    let kinds: Vec<(String, &str)> = conversion
        .objects
        .iter()
        .map(|(o, obj)| (o.to_string(), obj.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("in.yaml (document 1, item 1)".to_string(), "Certificate"),
            ("in.yaml (document 1, item 3)".to_string(), "Issuer"),
            ("in.yaml (document 2, item 1)".to_string(), "Certificate"),
        ]
    );
    assert_eq!(conversion.skipped, 1);
    assert_eq!(
        conversion
            .findings
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>(),
        [
            "in.yaml (document 2, item 1): Certificate apps/b: spec.keystores.pkcs12.passwordSecretRef: missing: certsmith needs the password's Secret and key; this keystore is not converted"
        ]
    );
}

#[test]
fn cert_manager_annotations_on_other_objects_are_reported_and_the_objects_left_out() {
    let conversion = convert(vec![
        (
            origin(1),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "shop", "namespace": "web", "annotations": {
                "cert-manager.io/cluster-issuer": "letsencrypt", "cert-manager.io/duration": "48h", "nginx.ingress.kubernetes.io/ssl-redirect": "true"}},
            "spec": {"tls": [{"hosts": ["shop.example.com", "www.shop.example.com"], "secretName": "shop-tls"}]}}),
        ),
        (
            origin(2),
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "hook", "annotations": {"cert-manager.io/inject-ca-from": "apps/hook-cert"}}}),
        ),
        (
            origin(3),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
        ),
        (
            origin(4),
            json!({"apiVersion": "acme.cert-manager.io/v1", "kind": "Order", "metadata": {"name": "o"}}),
        ),
        (
            origin(5),
            json!({"apiVersion": "cert-manager.io/v1alpha2", "kind": "Certificate", "metadata": {"name": "old"}}),
        ),
        (
            origin(6),
            json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest", "metadata": {"name": "cr"}}),
        ),
        (
            origin(7),
            json!({"apiVersion": "trust.cert-manager.io/v1alpha1", "kind": "Bundle", "metadata": {"name": "b"}}),
        ),
    ]);
    assert!(conversion.objects.is_empty());
    assert_eq!(conversion.skipped, 1);
    let found: Vec<String> = conversion
        .findings
        .iter()
        .map(|f| format!("{}: {}", f.object, f.note.path))
        .collect();
    assert_eq!(
        found,
        [
            "Ingress web/shop: metadata.annotations[cert-manager.io/cluster-issuer, cert-manager.io/duration]",
            "ValidatingWebhookConfiguration hook: metadata.annotations[cert-manager.io/inject-ca-from]",
            "Order o: kind",
            "Certificate old: apiVersion",
            "CertificateRequest cr: kind",
            "Bundle b: kind",
        ]
    );
    let shim = &conversion.findings[0].note.message;
    assert!(
        shim.contains("no ingress-shim")
            && shim.contains("secretName shop-tls with dnsNames [shop.example.com, www.shop.example.com], issued by ClusterIssuer letsencrypt"),
        "{shim}"
    );
}

#[test]
fn inputs_parse_as_yaml_streams_or_json_and_errors_name_the_file() {
    let docs = parse(
        "a.yaml",
        "---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\n---\n---\nkind: Secret\n",
        false,
    )
    .unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].0.to_string(), "a.yaml (document 2)");
    let docs = parse("b.json", r#"{"kind": "A"} {"kind": "B"}"#, true).unwrap();
    assert_eq!(docs.len(), 2);
    assert!(
        parse("c.yaml", "a: [", false)
            .unwrap_err()
            .starts_with("c.yaml: not valid YAML")
    );
    assert!(
        parse("d.json", "{", true)
            .unwrap_err()
            .starts_with("d.json: not valid JSON")
    );
}

#[test]
fn output_is_a_yaml_stream_of_certsmith_objects_that_reads_back_typed() {
    let conversion = convert(vec![
        (
            origin(1),
            cert(
                json!({"secretName": "s", "issuerRef": {"name": "ca"}, "dnsNames": ["a"], "commonName": "yes"}),
            ),
        ),
        (
            origin(2),
            issuer("ClusterIssuer", None, json!({"selfSigned": {}})),
        ),
    ]);
    let text = render(&conversion).unwrap();
    assert!(text.starts_with("---\n# converted from in.yaml (document 1)\napiVersion: certsmith.dev/v1alpha1\nkind: Certificate\n"), "{text}");
    // A YAML 1.1 reader (kubectl) must not read "yes" as a boolean.
    assert!(
        text.contains("commonName: 'yes'") || text.contains("commonName: \"yes\""),
        "{text}"
    );
    let back: Vec<Value> = crate::yaml::documents(&text).unwrap();
    assert_eq!(back.len(), 2);
    let _: crate::api::Certificate = serde_json::from_value(back[0].clone()).unwrap();
    let _: crate::api::ClusterIssuer = serde_json::from_value(back[1].clone()).unwrap();
    assert_eq!(
        report(&conversion),
        "converted 2 object(s) (1 Certificate, 1 ClusterIssuer); 0 finding(s); 0 other document(s) left out\n"
    );
}

#[test]
fn wrong_types_are_reported_not_guessed() {
    let (object, notes) = one(cert(json!({"secretName": "s", "issuerRef": {"name": "ca"},
        "dnsNames": "a.example", "ipAddresses": [1], "isCA": "true", "subject": "O=x", "commonName": "c"})));
    assert!(object.is_some());
    assert_eq!(
        paths(&notes),
        [
            "spec.dnsNames",
            "spec.ipAddresses[0]",
            "spec.subject",
            "spec.isCA"
        ]
    );
}
