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
    Operator, TestNamespace, env, install_crds, leaf, secret, wait_for, wait_reissued,
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
    assert!(
        text.contains("Chain verifies against ca.crt: yes"),
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
