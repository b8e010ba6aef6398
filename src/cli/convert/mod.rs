//! `certsmith convert -f FILE|DIR|-`: cert-manager manifests in, certsmith manifests out.
//!
//! Reads `cert-manager.io/v1` Certificates, Issuers and ClusterIssuers and aws-privateca-issuer's
//! `AWSPCAIssuer` / `AWSPCAClusterIssuer` from multi-document YAML or JSON (files, directories
//! searched recursively for `.yaml`, `.yml` and `.json`, or standard input), unpacks `List`s,
//! and writes the `certsmith.dev/v1alpha1` equivalents to standard output. Every field certsmith
//! cannot honour is reported on standard error with its document and path (see [`map`]);
//! other kinds of documents are left out of the output, and reported only when they carry
//! cert-manager annotations (ingress-shim, cainjector).

pub mod map;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use map::{Converted, Note, Object, convert_document};

/// Where a document came from: the file (or `-`), its position in the file, and its position
/// in a List (1-based, as people count).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub source: String,
    pub document: usize,
    pub item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            Some(item) => write!(
                f,
                "{} (document {}, item {item})",
                self.source, self.document
            ),
            None => write!(f, "{} (document {})", self.source, self.document),
        }
    }
}

/// One field of one document that certsmith cannot honour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub origin: Origin,
    /// "Certificate ns/name" (the input's kind).
    pub object: String,
    pub note: Note,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.object, self.note)
    }
}

/// The result of converting a set of documents.
#[derive(Debug, Default)]
pub struct Conversion {
    /// certsmith objects, in input order, with the document each came from.
    pub objects: Vec<(Origin, Object)>,
    pub findings: Vec<Finding>,
    /// Documents that were neither converted nor reported on: not cert-manager's business.
    pub skipped: usize,
}

/// Convert documents (pure). Lists are unpacked first; afterwards, Certificates naming an
/// issuer that was in the input but could not be converted, and two inputs converting to the
/// same certsmith object, are reported too.
pub fn convert(documents: Vec<(Origin, Value)>) -> Conversion {
    let mut out = Conversion::default();
    // (kind, namespace, name) of issuers in the input that were not converted, and why.
    let mut not_converted: BTreeMap<(String, Option<String>, String), String> = BTreeMap::new();
    let mut certificates = Vec::new();
    for (origin, doc) in unpack_lists(documents) {
        let converted = convert_document(&doc);
        if !converted.relevant {
            out.skipped += 1;
            continue;
        }
        let kind = doc["kind"].as_str().unwrap_or_default();
        let meta = &doc["metadata"];
        if matches!(
            kind,
            "Issuer" | "ClusterIssuer" | "AWSPCAIssuer" | "AWSPCAClusterIssuer"
        ) && converted.object.is_none()
        {
            let certsmith_kind = if kind.ends_with("ClusterIssuer") {
                "ClusterIssuer"
            } else {
                "Issuer"
            };
            let namespace = (certsmith_kind == "Issuer")
                .then(|| meta["namespace"].as_str().map(str::to_string))
                .flatten();
            not_converted.insert(
                (
                    certsmith_kind.to_string(),
                    namespace,
                    meta["name"].as_str().unwrap_or_default().to_string(),
                ),
                converted.describe.clone(),
            );
        }
        for note in converted.notes {
            out.findings.push(Finding {
                origin: origin.clone(),
                object: converted.describe.clone(),
                note,
            });
        }
        if let Some(object) = converted.object {
            if let Object::Certificate(cert) = &object {
                certificates.push((origin.clone(), converted.describe.clone(), cert.clone()));
            }
            out.objects.push((origin, object));
        }
    }
    for (origin, describe, cert) in certificates {
        let kind = cert.spec.issuer_ref.kind.as_str();
        let namespace = (kind == "Issuer")
            .then(|| cert.metadata.namespace.clone())
            .flatten();
        let name = cert.spec.issuer_ref.name.clone();
        if let Some(issuer) = not_converted.get(&(kind.to_string(), namespace, name)) {
            out.findings.push(Finding {
                origin,
                object: describe,
                note: Note {
                    path: "spec.issuerRef".into(),
                    message: format!(
                        "names {issuer}, which was not converted: nothing will issue this certificate until that issuer exists"
                    ),
                },
            });
        }
    }
    duplicates(&mut out);
    // In input order, the findings about other documents included.
    out.findings.sort_by(|a, b| a.origin.cmp(&b.origin));
    out
}

/// Two inputs that became the same certsmith object (an AWSPCAIssuer and an Issuer of one
/// name, say): the second would overwrite the first.
fn duplicates(out: &mut Conversion) {
    let mut seen: BTreeMap<(String, String, String), Origin> = BTreeMap::new();
    for (origin, object) in &out.objects {
        let meta = object.metadata();
        let key = (
            object.kind().to_string(),
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        );
        if key.2.is_empty() {
            continue;
        }
        if let Some(first) = seen.get(&key) {
            out.findings.push(Finding {
                origin: origin.clone(),
                object: map::describe(&key.0, &object.to_value()),
                note: Note {
                    path: "metadata.name".into(),
                    message: format!(
                        "the same certsmith {} as {first}: one would replace the other",
                        key.0
                    ),
                },
            });
        } else {
            seen.insert(key, origin.clone());
        }
    }
}

/// `kind: List` and typed lists (`CertificateList` ...) become their items; items of a typed
/// list without their own apiVersion and kind take the list's.
fn unpack_lists(documents: Vec<(Origin, Value)>) -> Vec<(Origin, Value)> {
    let mut out = Vec::new();
    for (origin, doc) in documents {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let items = match (&doc["items"], kind.strip_suffix("List")) {
            (Value::Array(items), Some(item_kind)) => Some((items.clone(), item_kind.to_string())),
            _ => None,
        };
        let Some((items, item_kind)) = items else {
            out.push((origin, doc));
            continue;
        };
        for (i, mut item) in items.into_iter().enumerate() {
            if let Value::Object(map) = &mut item {
                if !item_kind.is_empty() && !map.contains_key("kind") {
                    map.insert("kind".into(), Value::String(item_kind.clone()));
                }
                if !map.contains_key("apiVersion")
                    && let Some(v) = doc.get("apiVersion")
                {
                    map.insert("apiVersion".into(), v.clone());
                }
            }
            let origin = Origin {
                item: Some(i + 1),
                ..origin.clone()
            };
            out.push((origin, item));
        }
    }
    out
}

/// The objects as a YAML stream, each preceded by a comment naming its source.
pub fn render(conversion: &Conversion) -> Result<String, String> {
    let mut out = String::new();
    for (origin, object) in &conversion.objects {
        let yaml = crate::yaml::to_string(object).map_err(|e| format!("writing YAML: {e}"))?;
        let _ = write!(out, "---\n# converted from {origin}\n{yaml}");
    }
    Ok(out)
}

/// What `convert` says on standard error: the findings, then one summary line.
pub fn report(conversion: &Conversion) -> String {
    let mut out = String::new();
    for finding in &conversion.findings {
        let _ = writeln!(out, "warning: {finding}");
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, object) in &conversion.objects {
        *kinds.entry(object.kind()).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ = writeln!(
        out,
        "converted {} object(s){}; {} finding(s); {} other document(s) left out",
        conversion.objects.len(),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        },
        conversion.findings.len(),
        conversion.skipped,
    );
    out
}

/// Read every document from `inputs` (files, directories, `-` for standard input).
pub fn read_inputs(inputs: &[String]) -> Result<Vec<(Origin, Value)>, String> {
    let mut documents = Vec::new();
    for input in inputs {
        if input == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| format!("reading standard input: {e}"))?;
            documents.extend(parse("-", &text, false)?);
            continue;
        }
        let path = Path::new(input);
        let meta = std::fs::metadata(path).map_err(|e| format!("{input}: {e}"))?;
        let files = if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files, 0)?;
            files
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|e| format!("{name}: {e}"))?;
            let json = file.extension().is_some_and(|e| e == "json");
            documents.extend(parse(&name, &text, json)?);
        }
    }
    Ok(documents)
}

/// Manifest files under `dir`, recursively, sorted; hidden entries are skipped.
fn walk(dir: &Path, files: &mut Vec<PathBuf>, depth: usize) -> Result<(), String> {
    // Deep enough for any repository layout, and a stop for symbolic-link loops.
    if depth > 32 {
        return Err(format!(
            "{}: directories nested too deep (a link loop?)",
            dir.display()
        ));
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, files, depth + 1)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            files.push(path);
        }
    }
    Ok(())
}

/// The documents of one file: a JSON stream for `.json`, else multi-document YAML (which
/// also reads JSON).
pub fn parse(source: &str, text: &str, json: bool) -> Result<Vec<(Origin, Value)>, String> {
    let docs: Vec<Value> = if json {
        serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{source}: not valid JSON: {e}"))?
    } else {
        crate::yaml::documents::<Value>(text)
            .map_err(|e| format!("{source}: not valid YAML: {e}"))?
    };
    Ok(docs
        .into_iter()
        .filter(|d| !d.is_null())
        .enumerate()
        .map(|(i, doc)| {
            (
                Origin {
                    source: source.to_string(),
                    document: i + 1,
                    item: None,
                },
                doc,
            )
        })
        .collect())
}

#[cfg(test)]
mod tests;
