//! The companion commands: see the fleet (`status`), act on it (`renew`), look inside a
//! Secret (`inspect secret`), check Certificates against issuers' policies (`policy check`),
//! convert cert-manager manifests (`convert`) and wait for the API (`check api`). Also usable
//! as the kubectl plugin `kubectl-certsmith`.

pub mod check;
pub mod convert;
pub mod inspect;
pub mod policy;
pub mod renew;
pub mod revoke;
pub mod rotate;
pub mod status;

use kube::Client;

/// A user-facing error: one clear sentence, no backtrace.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

/// Connect with the usual kubeconfig resolution (KUBECONFIG, ~/.kube/config, in-cluster).
pub async fn client() -> Result<Client, CliError> {
    let config = kube::Config::infer().await.map_err(|e| {
        CliError(format!(
            "no Kubernetes configuration found (KUBECONFIG, ~/.kube/config or in-cluster): {e}"
        ))
    })?;
    let url = config.cluster_url.clone();
    Client::try_from(config).map_err(|e| CliError(format!("cannot set up a client for {url}: {e}")))
}

/// Explain a Kubernetes API error in the terms a user acts on. `what` names the object.
pub fn explain(error: kube::Error, what: &str) -> CliError {
    match error {
        kube::Error::Api(status) if status.code == 404 && status.message.contains("could not find the requested resource") => CliError(
            "the certsmith CRDs are not installed in this cluster (install them: `certsmith crds | kubectl apply --server-side -f -`)".into(),
        ),
        kube::Error::Api(status) if status.code == 404 => CliError(format!("{what} not found")),
        kube::Error::Api(status) if status.code == 403 => CliError(format!("forbidden: {}", status.message)),
        kube::Error::Api(status) => CliError(format!("the API server refused the request ({}): {}", status.code, status.message)),
        other => CliError(format!("cannot reach the Kubernetes API: {}", chain(&other))),
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        source = s.source();
    }
    text
}

/// "3h12m", "45s", or "overdue" for a moment in the past.
pub fn until(now: i64, then: i64) -> String {
    if then <= now {
        return "due now".into();
    }
    let secs = then - now;
    let (d, h, m, s) = (
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::{explain, until};

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: message.into(),
            ..Default::default()
        }))
    }

    #[test]
    fn api_errors_become_one_actionable_sentence() {
        let no_crds = explain(
            api_error(404, "the server could not find the requested resource"),
            "Certificates",
        );
        assert!(
            no_crds
                .0
                .starts_with("the certsmith CRDs are not installed"),
            "{no_crds}"
        );
        assert_eq!(
            explain(
                api_error(404, "certificates.certsmith.dev \"x\" not found"),
                "Certificate a/x"
            )
            .0,
            "Certificate a/x not found"
        );
        assert!(
            explain(api_error(403, "cannot list"), "x")
                .0
                .starts_with("forbidden: cannot list")
        );
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(until(0, 45), "45s");
        assert_eq!(until(0, 125), "2m05s");
        assert_eq!(until(0, 3 * 3600 + 720), "3h12m");
        assert_eq!(until(0, 90 * 86400 + 3600), "90d01h");
        assert_eq!(until(10, 5), "due now");
    }
}
