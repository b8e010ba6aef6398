//! Reconcilers and their wiring. Each reconciler gathers (I/O), decides (pure), acts (I/O).

pub mod aws_pca;
pub mod certificate;
pub mod context;
pub mod issuer;
pub mod issuer_secret;
pub mod run;
pub mod vault;

pub use context::{Context, Settings};

use kube::api::DynamicObject;
use serde::de::DeserializeOwned;

/// Turn a watched dynamic object into its typed form. Objects are watched untyped so that one
/// that does not deserialize is reported on its own instead of failing the whole watch.
pub fn typed<K: DeserializeOwned>(obj: &DynamicObject) -> Result<K, String> {
    let value = serde_json::to_value(obj).map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| e.to_string())
}
