//! Reconcilers and their wiring. Each reconciler gathers (I/O), decides (pure), acts (I/O).

pub mod ca_rotation;
pub mod certificate;
pub mod certificate_cache;
pub mod certificate_index;
pub mod context;
pub mod emergency_rotation;
pub mod events;
pub mod issuer;
pub mod limits;
pub mod pod_certificate;
pub mod run;
pub mod secret_feed;
pub mod secret_refs;
pub mod trust_bundle;
pub mod watched;

pub use context::{Context, Settings};

/// Errors that make a controller retry with its own backoff: API failures, and a replica
/// that may no longer write. Everything else is reported in status and scheduled explicitly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("this replica is not the leader (any more): nothing is written")]
    NotLeading,
}

use kube::api::DynamicObject;
use serde::de::DeserializeOwned;

/// Turn a watched dynamic object into its typed form. Objects are watched untyped so that one
/// that does not deserialize is reported on its own instead of failing the whole watch.
pub fn typed<K: DeserializeOwned>(obj: &DynamicObject) -> Result<K, String> {
    let value = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| e.to_string())
}
