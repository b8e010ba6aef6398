//! OpenBao fixtures shared by the tests: a PKI (root, intermediate, role, policy; made by
//! tests/testenv/openbao/pki.sh, as `make bench` makes its own), the auth methods the Vault
//! issuer logs in with, and a private OpenBao that a test may pause.

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::support::{Bao, TestNamespace, WAIT, env, rand_u32, wait_for};

/// A root mount, an intermediate mount signed by it (imported with its root, so Vault returns
/// the root in ca_chain), a role for *.example.test and a policy allowing only signing.
pub(crate) struct Pki {
    pub(crate) bao: Bao,
    pub(crate) id: String,
    pub(crate) root_pem: String,
    pub(crate) policy: String,
}

impl Pki {
    pub(crate) fn sign_path(&self) -> String {
        format!("int-{}/sign/agents", self.id)
    }

    /// A new PKI on `bao` from tests/testenv/openbao/pki.sh (the one `make bench` uses too);
    /// `role` overrides fields of the role `agents`.
    pub(crate) async fn setup(bao: Bao, role: Value) -> Self {
        let id = format!("{:08x}", rand_u32());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testenv/openbao/pki.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .arg(&id)
            .arg(role.to_string())
            .env("VAULT_ADDR", &bao.addr)
            .env("VAULT_TOKEN", &bao.token)
            .output()
            .expect("run pki.sh");
        assert!(
            out.status.success(),
            "pki.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let made: Value = serde_json::from_slice(&out.stdout).expect("pki.sh prints JSON");
        let text = |k: &str| made[k].as_str().expect("pki.sh field").to_string();
        Pki {
            root_pem: text("root_pem"),
            policy: text("policy"),
            bao,
            id,
        }
    }

    /// A token with only the signing policy, stored in a Secret in `ns`.
    pub(crate) async fn token_secret(&self, ns: &TestNamespace, name: &str) {
        let token = self
            .bao
            .post(
                "auth/token/create",
                json!({"policies": [self.policy], "ttl": "1h"}),
            )
            .await;
        let token = token["auth"]["client_token"]
            .as_str()
            .expect("token")
            .to_string();
        secret(ns, name, "token", &token).await;
    }

    /// An AppRole auth mount and role; returns (mount, role_id) with the secret ID in a Secret.
    pub(crate) async fn approle(&self, ns: &TestNamespace, secret_name: &str) -> (String, String) {
        self.approle_with_ttl(ns, secret_name, "1h").await
    }

    pub(crate) async fn approle_with_ttl(
        &self,
        ns: &TestNamespace,
        secret_name: &str,
        ttl: &str,
    ) -> (String, String) {
        let mount = format!("approle-{}", self.id);
        self.bao
            .post(&format!("sys/auth/{mount}"), json!({"type": "approle"}))
            .await;
        self.bao
            .post(
                &format!("auth/{mount}/role/certsmith"),
                json!({"token_policies": [self.policy], "token_ttl": ttl, "token_max_ttl": "1h"}),
            )
            .await;
        let role_id = self
            .bao
            .get(&format!("auth/{mount}/role/certsmith/role-id"))
            .await["data"]["role_id"]
            .as_str()
            .expect("role id")
            .to_string();
        let secret_id = self
            .bao
            .post(&format!("auth/{mount}/role/certsmith/secret-id"), json!({}))
            .await;
        secret(
            ns,
            secret_name,
            "secret-id",
            secret_id["data"]["secret_id"].as_str().expect("secret id"),
        )
        .await;
        (mount, role_id)
    }

    /// A Kubernetes auth mount pointed at the local API server and a role bound to `sa`.
    /// OpenBao calls TokenReview with a reviewer ServiceAccount's token (system:auth-delegator);
    /// the operator logs in with a short-lived token minted for `sa` with audience `vault`.
    pub(crate) async fn kubernetes(&self, ns: &TestNamespace, sa: &str) -> String {
        self.kubernetes_with_audience(ns, sa, "vault").await
    }

    /// The same, with a role that requires tokens for `audience`.
    pub(crate) async fn kubernetes_with_audience(
        &self,
        ns: &TestNamespace,
        sa: &str,
        audience: &str,
    ) -> String {
        let mount = format!("k8s-{}", self.id);
        self.bao
            .post(&format!("sys/auth/{mount}"), json!({"type": "kubernetes"}))
            .await;
        for account in [sa, "vault-reviewer"] {
            let account = ServiceAccount {
                metadata: kube::api::ObjectMeta {
                    name: Some(account.into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            ns.api::<ServiceAccount>()
                .create(&PostParams::default(), &account)
                .await
                .expect("sa");
        }
        let binding: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": format!("{}-vault-reviewer", ns.name)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
            "subjects": [{"kind": "ServiceAccount", "name": "vault-reviewer", "namespace": ns.name}],
        }))
        .expect("binding");
        Api::<ClusterRoleBinding>::all(ns.client.clone())
            .create(&PostParams::default(), &binding)
            .await
            .expect("binding");
        let request = k8s_openapi::api::authentication::v1::TokenRequest {
            spec: k8s_openapi::api::authentication::v1::TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviewer = ns
            .api::<ServiceAccount>()
            .create_token_request("vault-reviewer", &PostParams::default(), &request)
            .await
            .expect("reviewer token");
        let config = crate::support::config().await;
        let ca =
            std::fs::read_to_string(format!("{}/certs/ca.crt", env("CERTSMITH_TESTENV_STATE")))
                .expect("cluster CA");
        let host = config.cluster_url.to_string();
        self.bao
            .post(
                &format!("auth/{mount}/config"),
                json!({"kubernetes_host": host.trim_end_matches('/'), "kubernetes_ca_cert": ca, "disable_local_ca_jwt": true,
                       "token_reviewer_jwt": reviewer.status.expect("status").token}),
            )
            .await;
        self.bao
            .post(
                &format!("auth/{mount}/role/certsmith"),
                json!({"bound_service_account_names": [sa], "bound_service_account_namespaces": [ns.name],
                       "token_policies": [self.policy], "audience": audience, "token_ttl": "1h"}),
            )
            .await;
        mount
    }
}

pub(crate) async fn secret(ns: &TestNamespace, name: &str, key: &str, value: &str) {
    let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {key: value}});
    ns.api::<Secret>()
        .patch(
            name,
            &PatchParams::apply("certsmith-tests").force(),
            &Patch::Apply(body),
        )
        .await
        .expect("secret");
}

/// A private OpenBao for the outage test, so pausing it cannot disturb other tests.
pub(crate) struct PrivateBao {
    child: std::process::Child,
    pub(crate) addr: String,
    pub(crate) token: String,
}

impl PrivateBao {
    pub(crate) async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let token = format!("root-{:08x}", rand_u32());
        let home = tempfile::tempdir().expect("home").keep();
        let child = std::process::Command::new(env("CERTSMITH_TESTENV_BAO_BIN"))
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={token}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
                "-dev-no-store-token",
            ])
            .env("HOME", home)
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_ADDR")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start bao");
        let addr = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_for("private OpenBao healthy", WAIT, || {
            let (http, addr) = (http.clone(), addr.clone());
            async move {
                http.get(format!("{addr}/v1/sys/health"))
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await;
        PrivateBao { child, addr, token }
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for PrivateBao {
    fn drop(&mut self) {
        self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
