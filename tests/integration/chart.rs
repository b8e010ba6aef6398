//! The Helm chart: lint, kube-score, every value documented, config/ rendered from it, and
//! the rendered manifests accepted by the real API server. Its RBAC is proven in `rbac.rs`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::support::{TestNamespace, env};

pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/certsmith");

/// The bin directory of helm and kube-score: `$CERTSMITH_TOOLS_BIN` (set by `make test`), else
/// what tests/testenv/tools/build.sh prints (cached after the first build), so the chart
/// tests also run by hand with only the test environment's env file sourced.
fn tools_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("CERTSMITH_TOOLS_BIN") {
            return bin;
        }
        let out = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/testenv/tools/build.sh"
            ))
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/testenv/tools/build.sh");
        assert!(out.status.success(), "tests/testenv/tools/build.sh failed");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}

/// Run `command` with `args`, feeding it `stdin`; whether it succeeded, and its stdout then
/// stderr.
fn run(mut command: Command, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let program = format!("{:?}", command.get_program());
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Run a chart tool (helm, kube-score) built by tests/testenv/tools/build.sh.
pub fn tool(name: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    run(Command::new(format!("{}/{name}", tools_bin())), args, stdin)
}

/// kubectl against the test environment's API server.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut command = Command::new("kubectl");
    command.env("KUBECONFIG", env("KUBECONFIG"));
    run(command, args, stdin)
}

pub fn template(namespace: &str, sets: &[&str]) -> String {
    let mut args = vec!["template", "certsmith", CHART, "--namespace", namespace];
    for s in sets {
        args.extend(["--set", s]);
    }
    let (ok, out) = tool("helm", &args, None);
    assert!(ok, "helm template failed: {out}");
    out
}

const FULL: &[&str] = &[
    "replicaCount=2",
    "prometheus.servicemonitor.enabled=true",
    "prometheus.rules.enabled=true",
    "podDisruptionBudget.enabled=true",
    "vault.issuerServers={https://vault.example:8200}",
    "vault.tokenServiceAccounts[0].name=vault-auth",
];

#[test]
fn the_chart_lints_and_scores_clean() {
    let (ok, out) = tool("helm", &["lint", "--strict", CHART], None);
    assert!(ok, "{out}");
    let mut all = vec!["lint", "--strict", CHART, "--set", "watchNamespaces={a,b}"];
    for s in FULL {
        all.extend(["--set", s]);
    }
    let (ok, out) = tool("helm", &all, None);
    assert!(ok, "{out}");
    // Ignored checks: imagePullPolicy Always (a pinned tag with IfNotPresent is the norm) and
    // a NetworkPolicy (the operator must reach the API server, Vault and AWS, which differ by
    // cluster; not shipped).
    for rendered in [
        template("certsmith", &[]),
        template("certsmith", &[FULL, &["watchNamespaces={a,b}"]].concat()),
    ] {
        let (ok, out) = tool(
            "kube-score",
            &[
                "score",
                "--ignore-test",
                "container-image-pull-policy",
                "--ignore-test",
                "pod-networkpolicy",
                "-",
            ],
            Some(&rendered),
        );
        assert!(ok, "kube-score found critical problems:\n{out}");
    }
}

/// Leaf keys of values.yaml (`a.b.c`) with their values: scalars, lists and empty maps.
fn value_keys(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                let path = if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                value_keys(&path, v, out);
            }
        }
        _ => out.push((prefix.to_string(), value.clone())),
    }
}

#[test]
fn every_value_is_documented_in_the_chart_readme() {
    let values: serde_json::Value = certsmith::yaml::from_str(
        &std::fs::read_to_string(format!("{CHART}/values.yaml")).expect("values.yaml"),
    )
    .expect("parse values.yaml");
    let readme = std::fs::read_to_string(format!("{CHART}/README.md")).expect("README");
    let mut keys = Vec::new();
    value_keys("", &values, &mut keys);
    assert!(keys.len() > 40, "{keys:?}");
    // A row documents its key and, for free-form maps (securityContext, resources), all of
    // the key's children.
    let documented = |key: &str| {
        let parts: Vec<&str> = key.split('.').collect();
        (1..=parts.len()).any(|n| readme.contains(&format!("| `{}` |", parts[..n].join("."))))
    };
    let missing: Vec<_> = keys
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !documented(k))
        .collect();
    assert!(
        missing.is_empty(),
        "values not in charts/certsmith/README.md: {missing:?}"
    );
    // A key with a row of its own shows its default, as values.yaml has it.
    let mut wrong = Vec::new();
    for (key, value) in &keys {
        let Some(row) = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
        else {
            continue;
        };
        let shown = row.split('|').nth(2).unwrap_or_default().trim();
        let default = match value {
            serde_json::Value::String(s) if s.is_empty() => "\"\"".to_string(),
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Array(v) if v.is_empty() => "[]".to_string(),
            serde_json::Value::Object(m) if m.is_empty() => "{}".to_string(),
            other => panic!("{key}: a non-empty collection needs a prose default: {other:?}"),
        };
        if shown != format!("`{default}`") {
            wrong.push(format!(
                "{key}: README says {shown}, values.yaml has `{default}`"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "stale defaults in the chart README: {wrong:#?}"
    );
}

#[test]
fn config_default_is_the_chart_rendered_with_defaults() {
    let rendered = template("certsmith", &[]);
    let on_disk = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/default/certsmith.yaml"
    ))
    .expect("config/default/certsmith.yaml");
    let body = on_disk.split_once('\n').map_or("", |(_, rest)| rest);
    assert!(
        body == rendered,
        "config/default/certsmith.yaml is stale: run `make manifests` and commit the result"
    );
    // And it is a working kustomize base: the Namespace plus everything the chart renders.
    let (ok, built) = kubectl(
        &[
            "kustomize",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/default"),
        ],
        None,
    );
    assert!(ok, "kubectl kustomize config/default failed:\n{built}");
    let kinds = |yaml: &str| {
        let mut kinds: Vec<String> = yaml
            .lines()
            .filter_map(|l| l.strip_prefix("kind: "))
            .map(str::to_string)
            .collect();
        kinds.sort();
        kinds
    };
    let mut want = kinds(&rendered);
    want.push("Namespace".into());
    want.sort();
    assert_eq!(kinds(&built), want, "{built}");
}

#[tokio::test]
async fn rendered_manifests_are_accepted_by_the_api_server() {
    let ns = TestNamespace::new("chart-dry").await;
    // ServiceMonitor and PrometheusRule need prometheus-operator's CRDs, which this API server
    // does not have; they are linted above.
    for sets in [
        vec![],
        vec![
            "watchNamespaces={default,kube-public}",
            "replicaCount=2",
            "podDisruptionBudget.enabled=true",
        ],
    ] {
        let rendered = template(&ns.name, &sets);
        let (ok, out) = kubectl(
            &["apply", "--dry-run=server", "--server-side", "-f", "-"],
            Some(&rendered),
        );
        assert!(ok, "dry-run apply of {sets:?} failed:\n{out}");
        assert!(
            out.contains("deployment.apps/certsmith serverside-applied (server dry run)"),
            "{out}"
        );
    }
    ns.delete().await;
}

#[test]
fn the_allowed_vault_servers_reach_the_operator_flags() {
    let rendered = template(
        "certsmith",
        &["vault.issuerServers={https://vault.example:8200,https://vault2.example/team-a/}"],
    );
    assert!(
        rendered.contains(
            "- --issuer-vault-servers=https://vault.example:8200,https://vault2.example/team-a/"
        ),
        "{rendered}"
    );
    assert!(!template("certsmith", &[]).contains("--issuer-vault-servers"));
}

#[test]
fn service_account_tokens_are_minted_only_for_the_service_accounts_values_name() {
    // Default: no Vault login token may be minted at all.
    let rendered = template("certsmith", &[]);
    assert!(
        !rendered.contains("serviceaccounts/token"),
        "a token rule with no ServiceAccount named:\n{rendered}"
    );
    // Named: exactly those, by resourceNames, in their namespaces (default: the
    // cluster-resource namespace, where ClusterIssuers' ServiceAccounts live).
    let rendered = template(
        "certsmith",
        &[
            "vault.tokenServiceAccounts[0].name=vault-auth",
            "vault.tokenServiceAccounts[1].namespace=agents",
            "vault.tokenServiceAccounts[1].name=agents-vault",
        ],
    );
    let rules: Vec<(String, serde_json::Value)> =
        certsmith::yaml::documents::<serde_json::Value>(&rendered)
            .expect("rendered chart yaml")
            .into_iter()
            .filter(|doc| doc["kind"].as_str() == Some("Role"))
            .flat_map(|role| {
                let ns = role["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let rules = role["rules"].as_array().cloned().unwrap_or_default();
                rules.into_iter().map(move |rule| (ns.clone(), rule))
            })
            .filter(|(_, rule)| {
                rule["resources"].as_array().is_some_and(|r| {
                    r.iter()
                        .any(|r| r.as_str() == Some("serviceaccounts/token"))
                })
            })
            .collect();
    let granted: Vec<(String, Vec<String>)> = rules
        .iter()
        .map(|(ns, rule)| {
            let names = rule["resourceNames"]
                .as_array()
                .map(|n| {
                    n.iter()
                        .filter_map(|n| n.as_str())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            (ns.clone(), names)
        })
        .collect();
    assert_eq!(
        granted,
        vec![
            ("agents".to_string(), vec!["agents-vault".to_string()]),
            ("certsmith".to_string(), vec!["vault-auth".to_string()]),
        ],
        "{rendered}"
    );
    // Never the operator's own ServiceAccount: that token would be the operator's power.
    let (ok, out) = tool(
        "helm",
        &[
            "template",
            "certsmith",
            CHART,
            "--namespace",
            "certsmith",
            "--set",
            "vault.tokenServiceAccounts[0].name=certsmith",
        ],
        None,
    );
    assert!(!ok && out.contains("own ServiceAccount"), "{out}");
}
