//! `certsmith convert` on a corpus of cert-manager manifests (tests/convert-corpus/), as users
//! run it: the real binary (also as the kubectl plugin), the findings on stderr, and the
//! output applied to the real API server with server-side dry-run, so the CRD schema and its
//! CEL rules judge every converted object.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use serde_json::Value;

use crate::support::{admin_client, env, install_crds};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/convert-corpus");

fn certsmith(args: &[&str], stdin: Option<&str>) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_certsmith")), args, stdin)
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(format!("{}/kubectl", env("CERTSMITH_TESTENV_KUBE_BIN")));
    command.env("KUBECONFIG", env("KUBECONFIG"));
    run(command, args, stdin)
}

fn run(mut command: Command, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// "file (document n): Kind ns/name: path" of every warning, the corpus path made relative.
fn warnings(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .map(|l| {
            let l = l.replace(&format!("{CORPUS}/"), "");
            // Drop the message: origin, object and path are the first three ": " fields.
            l.splitn(4, ": ").take(3).collect::<Vec<_>>().join(": ")
        })
        .collect()
}

/// What the corpus must report: every field certsmith cannot honour, by document and path.
const EXPECTED: &[&str] = &[
    "acme.yaml (document 1): ClusterIssuer letsencrypt-prod: spec.acme",
    "acme.yaml (document 2): Certificate sandbox/public-site: spec.issuerRef",
    "bootstrap-ca.yaml (document 4): Issuer sandbox/ca-issuer: spec.ca.ocspServers",
    "example-com.yaml (document 1): Certificate sandbox/example-com: spec.otherNames",
    "ingress.yaml (document 1): Ingress sandbox/myIngress: metadata.annotations[cert-manager.io/cluster-issuer, cert-manager.io/duration]",
    "keystores.yaml (document 1): Certificate sandbox/kafka-broker: spec.encodeUsagesInRequest",
    "keystores.yaml (document 1): Certificate sandbox/kafka-broker: spec.nameConstraints",
    "keystores.yaml (document 1): Certificate sandbox/kafka-broker: spec.revisionHistoryLimit",
    "vault/kubernetes.yaml (document 2): Issuer sandbox/vault-issuer-stored-token: spec.vault.serverName",
    "vault/kubernetes.yaml (document 3): Issuer sandbox/vault-issuer-client-cert: spec.vault.auth.clientCertificate",
    "vault/kubernetes.yaml (document 3): Issuer sandbox/vault-issuer-client-cert: spec.vault.auth",
];

#[tokio::test]
async fn the_corpus_converts_and_the_api_server_accepts_every_object() {
    let client = admin_client().await;
    install_crds(&client).await;

    let out = certsmith(&["convert", "-f", CORPUS], None);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(warnings(&stderr), EXPECTED, "{stderr}");
    assert!(
        stderr.ends_with(
            "converted 17 object(s) (7 Certificate, 4 ClusterIssuer, 6 Issuer); 11 finding(s); 1 other document(s) left out\n"
        ),
        "{stderr}"
    );
    // The ingress-shim finding says what to write instead.
    assert!(
        stderr.contains("write a Certificate per TLS entry: secretName myingress-cert with dnsNames [example.com], issued by ClusterIssuer letsencrypt-prod"),
        "{stderr}"
    );

    // Every object reads back as the certsmith type its kind names.
    let objects: Vec<Value> = certsmith::yaml::documents(&stdout).expect("output is YAML");
    assert_eq!(objects.len(), 17);
    for object in &objects {
        assert_eq!(object["apiVersion"], "certsmith.dev/v1alpha1", "{object}");
        let typed = match object["kind"].as_str() {
            Some("Certificate") => {
                serde_json::from_value::<certsmith::api::Certificate>(object.clone()).map(|_| ())
            }
            Some("Issuer") => {
                serde_json::from_value::<certsmith::api::Issuer>(object.clone()).map(|_| ())
            }
            Some("ClusterIssuer") => {
                serde_json::from_value::<certsmith::api::ClusterIssuer>(object.clone()).map(|_| ())
            }
            other => panic!("unexpected kind {other:?}"),
        };
        typed.unwrap_or_else(|e| panic!("{e}: {object}"));
    }
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} in the output"))
    };
    assert_eq!(
        find("ClusterIssuer", "vault-issuer")["spec"]["vault"]["auth"]["kubernetes"],
        serde_json::json!({"role": "my-app-1", "serviceAccountRef": {"name": "vault-issuer",
            "audiences": ["vault://vault-issuer", "https://vault.local"]}})
    );
    assert_eq!(
        find("Certificate", "rsa-cert-2048")["spec"]["issuerRef"],
        serde_json::json!({"name": "example", "kind": "ClusterIssuer"})
    );
    assert_eq!(
        find("Issuer", "example")["spec"]["awsPCA"]["templateArn"],
        "arn:aws:acm-pca:::template/EndEntityCertificate/V1"
    );
    assert!(find("Certificate", "api")["metadata"].get("uid").is_none());

    // The API server accepts all of it, CEL rules included (dry run: nothing is stored).
    let namespaces = ensure_namespaces(&client, &objects).await;
    let applied = kubectl(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=certsmith-convert-test",
            "-f",
            "-",
        ],
        Some(&stdout),
    );
    assert!(
        applied.status.success(),
        "{}{}",
        text(&applied.stdout),
        text(&applied.stderr)
    );
    assert_eq!(
        text(&applied.stdout)
            .matches("serverside-applied (server dry run)")
            .count(),
        17,
        "{}",
        text(&applied.stdout)
    );
    // ... and the dry run does judge: a key size certsmith does not generate is refused.
    let broken = stdout.replacen("size: 2048", "size: 1024", 1);
    assert_ne!(broken, stdout);
    let refused = kubectl(
        &["apply", "--server-side", "--dry-run=server", "-f", "-"],
        Some(&broken),
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("size must be 256, 384 or 521 for ECDSA"),
        "{}",
        text(&refused.stderr)
    );
    for ns in namespaces {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&ns, &DeleteParams::default())
            .await;
    }
}

/// Create the namespaces the output names that do not exist yet; returns those created.
async fn ensure_namespaces(client: &kube::Client, objects: &[Value]) -> Vec<String> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut wanted: Vec<&str> = objects
        .iter()
        .filter_map(|o| o["metadata"]["namespace"].as_str())
        .collect();
    wanted.sort();
    wanted.dedup();
    let mut created = Vec::new();
    for name in wanted {
        if api.get_opt(name).await.expect("get namespace").is_some() {
            continue;
        }
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        created.push(name.to_string());
    }
    created
}

#[test]
fn strict_fails_on_findings_and_passes_a_clean_input() {
    let findings = certsmith(
        &[
            "convert",
            "--strict",
            "-f",
            &format!("{CORPUS}/keystores.yaml"),
        ],
        None,
    );
    assert_eq!(
        findings.status.code(),
        Some(1),
        "{}",
        text(&findings.stderr)
    );
    // The output is written all the same.
    assert!(text(&findings.stdout).contains("name: kafka-broker"));

    let clean = certsmith(
        &["convert", "--strict", "-f", &format!("{CORPUS}/exported")],
        None,
    );
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean.stderr));
    assert_eq!(
        text(&clean.stderr),
        "converted 2 object(s) (1 Certificate, 1 Issuer); 0 finding(s); 0 other document(s) left out\n"
    );
}

#[test]
fn standard_input_files_and_errors() {
    let file = format!("{CORPUS}/vault/token.yaml");
    let from_file = certsmith(&["convert", "-f", &file], None);
    let from_stdin = certsmith(
        &["convert", "-f", "-"],
        Some(&std::fs::read_to_string(&file).expect("read")),
    );
    assert!(from_stdin.status.success(), "{}", text(&from_stdin.stderr));
    assert_eq!(
        text(&from_file.stdout).replace(&file, "-"),
        text(&from_stdin.stdout)
    );
    assert!(text(&from_stdin.stdout).starts_with("---\n# converted from - (document 1)\n"));

    // Several -f, in order.
    let two = certsmith(
        &[
            "convert",
            "-f",
            &file,
            "-f",
            &format!("{CORPUS}/vault/approle.yaml"),
        ],
        None,
    );
    let out = text(&two.stdout);
    assert!(
        out.find("name: vault-issuer\n") < out.find("name: vault-approle-issuer\n"),
        "{out}"
    );

    let missing = certsmith(&["convert", "-f", "/nonexistent/certs.yaml"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).starts_with("error: /nonexistent/certs.yaml: No such file"),
        "{}",
        text(&missing.stderr)
    );
    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "kind: [").expect("write");
    let invalid = certsmith(&["convert", "-f", &dir.path().display().to_string()], None);
    assert_eq!(invalid.status.code(), Some(2));
    assert!(
        text(&invalid.stderr).contains("bad.yaml: not valid YAML"),
        "{}",
        text(&invalid.stderr)
    );
    let usage = certsmith(&["convert"], None);
    assert!(!usage.status.success());
    assert!(
        text(&usage.stderr).contains("--filename"),
        "{}",
        text(&usage.stderr)
    );
}

#[test]
fn kubectl_certsmith_convert_works_as_a_plugin() {
    let dir = tempfile::tempdir().expect("dir");
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_certsmith"),
        dir.path().join("kubectl-certsmith"),
    )
    .expect("symlink");
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(format!("{}/kubectl", env("CERTSMITH_TESTENV_KUBE_BIN")));
    command.env("PATH", path);
    let out = run(
        command,
        &["certsmith", "convert", "-f", &format!("{CORPUS}/acme.yaml")],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("name: public-site"));
    assert!(text(&out.stderr).contains("spec.acme: certsmith has no ACME issuer"));
}
