//! The CLI (`certsmith status | renew | inspect secret | check api | completion`) as a user
//! runs it: the real binary, kubeconfig resolution, the local API server, and its error
//! messages.

use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use serde_json::json;

use certsmith::api::{Certificate, Issuer};

use crate::support::{
    Operator, OperatorProcess, TestNamespace, env, install_crds, leaf, secret, wait_for,
    wait_reissued,
};

fn run(kubeconfig: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_certsmith"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run certsmith")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A kubeconfig like the admin's, with another server or a bearer token instead of the
/// admin's client certificate.
fn variant_kubeconfig(dir: &std::path::Path, server: Option<&str>, token: Option<&str>) -> String {
    let admin = std::fs::read_to_string(env("KUBECONFIG")).expect("kubeconfig");
    let mut doc: serde_json::Value = certsmith::yaml::from_str(&admin).expect("yaml");
    if let Some(server) = server {
        doc["clusters"][0]["cluster"]["server"] = server.into();
    }
    if let Some(token) = token {
        doc["users"][0]["user"] = json!({"token": token});
    }
    let path = dir.join(format!("kubeconfig-{}", crate::support::rand_u32()));
    std::fs::write(&path, certsmith::yaml::to_string(&doc).expect("yaml")).expect("write");
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn status_renew_and_inspect_against_the_api_server() {
    let ns = TestNamespace::new("cli").await;
    install_crds(&ns.client).await;
    let operator = Operator::start(&ns.name).await;
    ns.apply::<Issuer>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Issuer", "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}})).await;
    for (name, labels) in [("web", json!({})), ("api", json!({"team": "payments"}))] {
        ns.apply::<Certificate>(json!({"apiVersion": "certsmith.dev/v1alpha1", "kind": "Certificate", "metadata": {"name": name, "labels": labels},
                                       "spec": {"secretName": format!("{name}-tls"), "issuerRef": {"name": "selfsigned"}, "dnsNames": [format!("{name}.example")]}}))
            .await;
    }
    let certs = ns.api::<Certificate>();
    wait_for("both Ready", Duration::from_secs(60), || {
        let certs = certs.clone();
        async move {
            let items = certs.list(&Default::default()).await.ok()?.items;
            (items
                .iter()
                .filter(|c| {
                    c.status.as_ref().is_some_and(|s| {
                        s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                    })
                })
                .count()
                == 2)
                .then_some(())
        }
    })
    .await;
    let kubeconfig = env("KUBECONFIG");

    let fleet = run(&kubeconfig, &["status", "-n", &ns.name]);
    assert!(fleet.status.success(), "{}", stderr(&fleet));
    let text = stdout(&fleet);
    assert!(
        text.contains("NAMESPACE")
            && text.contains("RENEWS IN")
            && text.contains("Issuer/selfsigned"),
        "{text}"
    );
    assert!(text.contains("2 certificates: 2 ready"), "{text}");
    assert!(text.contains("soonest expiry"), "{text}");

    let one = run(&kubeconfig, &["status", "-n", &ns.name, "web"]);
    let text = stdout(&one);
    assert!(
        text.contains("Conditions:")
            && text.contains("Recent events:")
            && text.contains("DNS:web.example"),
        "{text}"
    );
    assert!(
        text.contains("Key matches certificate:      yes")
            && text.contains("Chain verifies against ca.crt: yes"),
        "{text}"
    );

    let inspect = run(
        &kubeconfig,
        &["inspect", "secret", "web-tls", "-n", &ns.name],
    );
    let text = stdout(&inspect);
    let serial = leaf(&secret(&ns, "web-tls").await).serial;
    assert!(
        text.contains(&format!("Serial:        {serial}"))
            && text.contains("Key:           Ecdsa 256"),
        "{text}"
    );
    // Verified by webpki, as rustls will: the selfSigned issuer's leaf is its own anchor.
    assert!(
        text.contains("Chain verifies against ca.crt: yes (webpki, the verifier rustls uses)")
            && text.contains("Usable as mTLS server: yes, client: yes\n")
            && text.contains("note: as a server, for clients dialling DNS:web.example")
            && text.contains("Usages:        digital signature, server auth, client auth")
            && text.contains("CA:            no"),
        "{text}"
    );

    // renew NAME re-issues that one; --all with a selector only the matching ones.
    let renew = run(&kubeconfig, &["renew", "-n", &ns.name, "web"]);
    assert!(
        stdout(&renew).contains(&format!("renewal requested: {}/web", ns.name)),
        "{}",
        stderr(&renew)
    );
    wait_reissued(&ns, "web-tls", &serial).await;
    let selected = run(
        &kubeconfig,
        &["renew", "--all", "-n", &ns.name, "-l", "team=payments"],
    );
    let text = stdout(&selected);
    assert!(
        text.contains(&format!("renewal requested: {}/api", ns.name)) && !text.contains("/web"),
        "{text}"
    );
    assert!(
        text.contains("1 certificate(s) will be re-issued"),
        "{text}"
    );
    operator.stop().await;
    ns.delete().await;
}

#[tokio::test]
async fn errors_say_what_is_wrong() {
    let ns = TestNamespace::new("cli-errors").await;
    install_crds(&ns.client).await;
    let dir = tempfile::tempdir().expect("dir");
    let kubeconfig = env("KUBECONFIG");

    let missing = run(&kubeconfig, &["status", "-n", &ns.name, "nope"]);
    assert!(!missing.status.success());
    assert_eq!(
        stderr(&missing).trim(),
        format!("error: Certificate {}/nope not found", ns.name)
    );

    let secret = run(&kubeconfig, &["inspect", "secret", "nope", "-n", &ns.name]);
    assert_eq!(
        stderr(&secret).trim(),
        format!("error: Secret {}/nope not found", ns.name)
    );

    let unreachable = variant_kubeconfig(dir.path(), Some("https://127.0.0.1:1"), None);
    let down = run(&unreachable, &["status", "-A"]);
    assert!(!down.status.success());
    assert!(
        stderr(&down).starts_with("error: cannot reach the Kubernetes API"),
        "{}",
        stderr(&down)
    );

    let nothing = run("/nonexistent/kubeconfig", &["status"]);
    assert!(
        stderr(&nothing).starts_with("error: no Kubernetes configuration found"),
        "{}",
        stderr(&nothing)
    );

    // A ServiceAccount without RBAC is refused, and the CLI says so.
    let sa = ServiceAccount {
        metadata: kube::api::ObjectMeta {
            name: Some("nobody".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    ns.api::<ServiceAccount>()
        .create(&PostParams::default(), &sa)
        .await
        .expect("sa");
    let request = k8s_openapi::api::authentication::v1::TokenRequest::default();
    let token = ns
        .api::<ServiceAccount>()
        .create_token_request("nobody", &PostParams::default(), &request)
        .await
        .expect("token")
        .status
        .expect("status")
        .token;
    let limited = variant_kubeconfig(dir.path(), None, Some(&token));
    let forbidden = run(&limited, &["status", "-n", &ns.name]);
    assert!(
        stderr(&forbidden).starts_with("error: forbidden:"),
        "{}",
        stderr(&forbidden)
    );
    let renew = run(&limited, &["renew", "-n", &ns.name, "x"]);
    assert!(
        stderr(&renew).starts_with("error: forbidden:"),
        "{}",
        stderr(&renew)
    );

    let usage = run(&kubeconfig, &["renew", "-n", &ns.name]);
    assert_eq!(
        stderr(&usage).trim(),
        "error: name one Certificate or pass --all"
    );
    ns.delete().await;
}

#[tokio::test]
async fn kubectl_finds_it_as_the_certsmith_plugin() {
    let ns = TestNamespace::new("cli-plugin").await;
    install_crds(&ns.client).await;
    let dir = tempfile::tempdir().expect("dir");
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_certsmith"),
        dir.path().join("kubectl-certsmith"),
    )
    .expect("symlink");
    let kubectl = format!("{}/kubectl", env("CERTSMITH_TESTENV_KUBE_BIN"));
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(kubectl)
        .args(["certsmith", "status", "-n", &ns.name])
        .env("PATH", path)
        .env("KUBECONFIG", env("KUBECONFIG"))
        .output()
        .expect("kubectl");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("0 certificates"), "{}", stdout(&out));
    ns.delete().await;
}

/// `certsmith completion SHELL` prints a script the shell loads and completes with. bash is
/// always there; zsh and fish are checked where installed.
#[test]
fn completion_scripts_complete_in_their_shells() {
    let bin = env!("CARGO_BIN_EXE_certsmith");
    let bash = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <({bin} completion bash) && COMP_WORDS=(certsmith con) && COMP_CWORD=1 \
             && _certsmith certsmith con certsmith && echo \"${{COMPREPLY[@]}}\""
        ))
        .output()
        .expect("bash");
    assert!(bash.status.success(), "{}", stderr(&bash));
    assert_eq!(stdout(&bash).trim(), "controller convert");

    let unknown = Command::new(bin)
        .args(["completion", "tcsh"])
        .output()
        .expect("run");
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("possible values: bash"),
        "{}",
        stderr(&unknown)
    );

    let installed = |shell: &str| {
        Command::new(shell)
            .arg("-c")
            .arg("exit 0")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if installed("fish") {
        let fish = Command::new("fish")
            .arg("-c")
            .arg(format!(
                "{bin} completion fish | source; complete -C 'certsmith con'"
            ))
            .output()
            .expect("fish");
        assert!(
            stdout(&fish).starts_with("controller\t"),
            "{}{}",
            stdout(&fish),
            stderr(&fish)
        );
    }
    if installed("zsh") {
        let script = Command::new(bin)
            .args(["completion", "zsh"])
            .output()
            .expect("run");
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("_certsmith");
        std::fs::write(&file, &script.stdout).expect("write");
        let zsh = Command::new("zsh")
            .arg("-n")
            .arg(&file)
            .output()
            .expect("zsh");
        assert!(zsh.status.success(), "{}", stderr(&zsh));
    }
}

/// `check api` against the real API server: the CRDs served, then the operator's Lease —
/// missing, acquired while `--wait` waits, found without being named, and stale once the
/// operator is killed.
#[tokio::test]
async fn check_api_waits_for_the_crds_and_the_operators_lease() {
    let ns = TestNamespace::new("cli-check").await;
    install_crds(&ns.client).await;
    let kubeconfig = env("KUBECONFIG");
    let lease = format!("{}/certsmith-controller", ns.name);

    let crds = run(&kubeconfig, &["check", "api", "--crds-only"]);
    assert!(crds.status.success(), "{}", stderr(&crds));
    assert_eq!(
        stdout(&crds),
        "certsmith.dev/v1alpha1 served (certificates, issuers, clusterissuers)\n"
    );

    let none = run(&kubeconfig, &["check", "api", "--lease", &lease]);
    assert_eq!(none.status.code(), Some(1));
    assert_eq!(
        stderr(&none).trim(),
        format!(
            "error: no Lease {lease}: the operator has not run with leader election under that name"
        )
    );

    // A wait that starts before the operator does ends once it holds its Lease.
    let waiting = Command::new(env!("CARGO_BIN_EXE_certsmith"))
        .args(["check", "api", "--lease", &lease, "--wait", "60s"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start check api");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let operator = OperatorProcess::start(
        &ns.name,
        &[
            "--leader-elect",
            "--leader-election-namespace",
            &ns.name,
            "--leader-election-lease-duration",
            "3s",
        ],
    );
    let waited = tokio::task::spawn_blocking(move || waiting.wait_with_output())
        .await
        .expect("join")
        .expect("check api");
    assert!(waited.status.success(), "{}", stderr(&waited));
    let text = stdout(&waited);
    assert!(
        text.starts_with("certsmith.dev/v1alpha1 served (certificates, issuers, clusterissuers); operator answers (Lease ")
            && text.contains(&format!("{lease} held by ")),
        "{text}"
    );
    // Without --lease: a Lease named certsmith-controller in any namespace will do.
    let found = run(&kubeconfig, &["check", "api"]);
    assert!(found.status.success(), "{}", stderr(&found));

    // Killed, the operator renews nothing: after the lease duration (and the skew allowance)
    // the check fails, with the reason, once --wait is over.
    drop(operator);
    tokio::time::sleep(Duration::from_secs(9)).await;
    let stale = run(
        &kubeconfig,
        &["check", "api", "--lease", &lease, "--wait", "2s"],
    );
    assert_eq!(stale.status.code(), Some(1));
    let text = stderr(&stale);
    assert!(
        text.starts_with(&format!(
            "error: not ready after 2s: Lease {lease} held by "
        )) && text.contains("longer than its 3s lease: the operator is not running"),
        "{text}"
    );
    ns.delete().await;
}

/// `check api --operator-url`: the operator's /readyz, for an operator without leader election.
/// (Multi-threaded: the in-process operator serves /readyz while the CLI blocks this thread.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_api_asks_the_operator_itself_with_operator_url() {
    let ns = TestNamespace::new("cli-readyz").await;
    install_crds(&ns.client).await;
    let kubeconfig = env("KUBECONFIG");
    let operator = Operator::start(&ns.name).await;
    let url = format!("http://{}", operator.http);
    let ready = run(
        &kubeconfig,
        &["check", "api", "--operator-url", &url, "--wait", "60s"],
    );
    assert!(ready.status.success(), "{}", stderr(&ready));
    assert!(
        stdout(&ready).ends_with(&format!("operator ready ({url}/readyz answered 200)\n")),
        "{}",
        stdout(&ready)
    );
    operator.stop().await;

    let down = run(
        &kubeconfig,
        &["check", "api", "--operator-url", &url, "--wait", "2s"],
    );
    assert_eq!(down.status.code(), Some(1));
    assert!(
        stderr(&down).starts_with(&format!(
            "error: not ready after 2s: the operator does not answer at {url}/readyz"
        )),
        "{}",
        stderr(&down)
    );
    let usage = run(
        &kubeconfig,
        &["check", "api", "--crds-only", "--operator-url", &url],
    );
    assert!(
        stderr(&usage).contains("cannot be used with"),
        "{}",
        stderr(&usage)
    );
    ns.delete().await;
}

/// Discovery without the CRDs, and with only some of them, on the real API server: asked
/// about a group of this test's own, so the CRDs every other test uses stay in place.
#[tokio::test]
async fn check_api_says_which_crds_are_missing() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{DeleteParams, Patch, PatchParams};
    let client = crate::support::admin_client().await;
    let group = format!("check-{:08x}.certsmith.test", crate::support::rand_u32());

    let missing = certsmith::cli::check::served(&client, &group)
        .await
        .unwrap_err()
        .0;
    assert_eq!(
        missing,
        format!(
            "{group}/v1alpha1 is not served: the certsmith CRDs are not installed (`certsmith crds | kubectl apply --server-side -f -`)"
        )
    );

    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    let name = format!("certificates.{group}");
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "certificates", "singular": "certificate", "kind": "Certificate"},
                 "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .expect("crd");
    crds.patch(
        &name,
        &PatchParams::apply("certsmith-tests"),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply crd");
    let partial = wait_for("the partial group served", Duration::from_secs(30), || {
        let client = client.clone();
        let group = group.clone();
        async move {
            let e = certsmith::cli::check::served(&client, &group)
                .await
                .unwrap_err();
            e.0.contains("installed only in part").then_some(e.0)
        }
    })
    .await;
    assert_eq!(
        partial,
        format!(
            "{group}/v1alpha1 does not serve issuers, clusterissuers: the certsmith CRDs are installed only in part"
        )
    );
    let _ = crds.delete(&name, &DeleteParams::default()).await;
}
