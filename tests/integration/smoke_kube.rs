//! The local control plane is a real Kubernetes API server: schema and CEL validation,
//! watches, TokenReview, RBAC, garbage collection, namespace deletion.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

use crate::support::{TestNamespace, admin_client, install_crds, service_account_client, wait_for};

#[tokio::test]
async fn api_server_enforces_crd_schema_and_cel_rules() {
    let ns = TestNamespace::new("smoke-crd").await;
    install_crds(&ns.client).await;
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        ns.client.clone(),
        &ns.name,
        &kube::core::ApiResource::erase::<certsmith::api::Certificate>(&()),
    );
    let cert = |name: &str, spec: serde_json::Value| -> kube::api::DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate",
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("object")
    };
    let base = serde_json::json!({"secretName": "s", "issuerRef": {"name": "i"}, "dnsNames": ["a.example"]});
    api.create(&PostParams::default(), &cert("valid", base.clone()))
        .await
        .expect("a valid Certificate is accepted");

    let mut schema_violation = base.clone();
    schema_violation["duration"] = "ten days".into();
    let err = api
        .create(
            &PostParams::default(),
            &cert("bad-schema", schema_violation),
        )
        .await
        .expect_err("schema violation");
    assert!(err.to_string().contains("spec.duration"), "{err}");

    let mut cel_violation = base.clone();
    cel_violation["duration"] = "1h".into();
    cel_violation["renewBefore"] = "2h".into();
    let err = api
        .create(&PostParams::default(), &cert("bad-cel", cel_violation))
        .await
        .expect_err("CEL violation");
    assert!(
        err.to_string()
            .contains("renewBefore must be shorter than duration"),
        "{err}"
    );
    ns.delete().await;
}

#[tokio::test]
async fn a_watch_on_one_client_sees_a_secret_created_by_another() {
    let ns = TestNamespace::new("smoke-watch").await;
    let watcher_client = admin_client().await;
    let secrets: Api<Secret> = Api::namespaced(watcher_client, &ns.name);
    let mut stream = watcher(
        secrets,
        watcher::Config::default().fields("metadata.name=shared"),
    )
    .applied_objects()
    .boxed();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("shared".into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    };
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    let seen = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("watch event in time");
    let seen = seen.expect("stream open").expect("watch ok");
    assert_eq!(seen.metadata.name.as_deref(), Some("shared"));
    ns.delete().await;
}

#[tokio::test]
async fn service_account_tokens_pass_token_review_and_rbac_refuses_unbound_accounts() {
    let ns = TestNamespace::new("smoke-sa").await;
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("robot".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    ns.api::<ServiceAccount>()
        .create(&PostParams::default(), &sa)
        .await
        .expect("create sa");

    let robot = service_account_client(&ns.client, &ns.name, "robot").await;
    // TokenReview of the robot's own token, performed by the admin.
    let token_request = k8s_openapi::api::authentication::v1::TokenRequest::default();
    let token = Api::<ServiceAccount>::namespaced(ns.client.clone(), &ns.name)
        .create_token_request("robot", &PostParams::default(), &token_request)
        .await
        .expect("token")
        .status
        .expect("status")
        .token;
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviewed = Api::<TokenReview>::all(ns.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("token review");
    let status = reviewed.status.expect("review status");
    assert_eq!(status.authenticated, Some(true));
    assert_eq!(
        status.user.and_then(|u| u.username).as_deref(),
        Some(format!("system:serviceaccount:{}:robot", ns.name).as_str())
    );

    let err = Api::<Secret>::namespaced(robot, &ns.name)
        .list(&Default::default())
        .await
        .expect_err("no RBAC, no access");
    match err {
        kube::Error::Api(status) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403, got {other}"),
    }
    ns.delete().await;
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_child_and_namespaces_terminate() {
    let ns = TestNamespace::new("smoke-gc").await;
    let cms = ns.api::<ConfigMap>();
    let owner = cms
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("owner".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("owner");
    let reference = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().expect("uid"),
        ..Default::default()
    };
    let child = ConfigMap {
        metadata: ObjectMeta {
            name: Some("child".into()),
            owner_references: Some(vec![reference]),
            ..Default::default()
        },
        ..Default::default()
    };
    cms.create(&PostParams::default(), &child)
        .await
        .expect("child");
    cms.delete("owner", &DeleteParams::default())
        .await
        .expect("delete owner");
    wait_for("child garbage-collected", Duration::from_secs(60), || {
        let cms = cms.clone();
        async move {
            cms.get_opt("child")
                .await
                .ok()
                .and_then(|c| c.is_none().then_some(()))
        }
    })
    .await;

    let name = ns.name.clone();
    let namespaces: Api<Namespace> = Api::all(ns.client.clone());
    ns.delete().await;
    wait_for(
        "namespace deletion completes",
        Duration::from_secs(90),
        || {
            let (namespaces, name) = (namespaces.clone(), name.clone());
            async move {
                namespaces
                    .get_opt(&name)
                    .await
                    .ok()
                    .and_then(|n| n.is_none().then_some(()))
            }
        },
    )
    .await;
}
