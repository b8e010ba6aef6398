//! YAML in and out, with the YAML crate kube already brings (serde-saphyr): one reader and one
//! writer for the CRDs, `certsmith convert` and the tests.

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use serde_saphyr::{DeserializeError, SerializeError};

/// Serialize one document the way `kubectl` users read it: long strings (CEL rules, patterns)
/// stay on one line instead of being folded (`>`), multi-line ones become literal blocks (`|`).
/// Strings that YAML 1.1 readers (Go's yaml packages, hence kubectl and Helm) would take for
/// booleans, numbers or null are quoted.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, SerializeError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.folded_wrap_chars = usize::MAX;
    serde_saphyr::to_string_with_options(value, options)
}

/// Parse one YAML document.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, DeserializeError> {
    serde_saphyr::from_str(text)
}

/// Parse a stream of YAML documents (`---` separated); empty documents are skipped.
pub fn documents<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, DeserializeError> {
    serde_saphyr::from_multiple(text)
}
