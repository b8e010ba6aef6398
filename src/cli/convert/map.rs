//! The conversion itself, pure: one parsed document in, the certsmith object out (if any) and
//! what could not be carried over.
//!
//! Every field of the input is either mapped, or reported: the mappers take each field they
//! know out of the input object, and whatever is left at the end is reported with its path,
//! so a field added to cert-manager later is reported too, never dropped silently. Only what
//! the API server writes (status, uid, resourceVersion, managedFields ...) and kubectl's
//! last-applied annotation go without a word.
//!
//! Decisions worth knowing:
//! - The key keeps cert-manager's defaults, so workloads read the same kind of `tls.key`:
//!   unset `privateKey.algorithm` becomes `RSA` (certsmith's default is ECDSA) and unset
//!   `encoding` becomes `PKCS1` (certsmith's default is PKCS8), except for Ed25519 keys, which
//!   cert-manager too writes as PKCS#8. Delete those two lines from the output to move to
//!   ECDSA P-256 in PKCS#8.
//! - `privateKey.rotationPolicy` is copied when set; when unset certsmith rotates (`Always`),
//!   as cert-manager does since v1.18 (before v1.18 cert-manager's default was `Never`).
//!   Nothing is reported for it: write `rotationPolicy: Never` to keep a key across renewals.
//! - `usages` unset stays unset: certsmith then requests digital signature, server auth and
//!   client auth (plus key encipherment for RSA), where cert-manager requests digital
//!   signature and key encipherment without extended key usages. Both serve TLS.
//! - Vault Kubernetes auth: cert-manager always adds the audiences `vault://<namespace>/<name>`
//!   (`vault://<name>` for a ClusterIssuer) and the server URL to its tokens; certsmith uses
//!   exactly the listed `audiences`, so the converted issuer lists all of them and Vault roles
//!   bound to those audiences keep working.
//! - `mountPath` (`/v1/auth/kubernetes` in cert-manager) becomes certsmith's mount name
//!   (`kubernetes`).

use std::collections::BTreeMap;
use std::fmt;

use kube::api::ObjectMeta;
use serde_json::{Map, Value};

use crate::api::{
    AwsCredentials, AwsCredentialsSecretRef, AwsPcaIssuer, CaIssuer, Certificate, CertificateSpec,
    ClusterIssuer, Issuer, IssuerKind, IssuerRef, IssuerSpec, JksKeystore, KeyAlgorithm,
    KeyEncoding, KeyUsage, Keystores, OutputFormat, PasswordSecretRef, Pkcs12Keystore,
    Pkcs12Profile, PrivateKeySpec, RotationPolicy, SecretKeySelector, SecretTemplate,
    SelfSignedIssuer, ServiceAccountRef, Subject, VaultAppRole, VaultAuth, VaultIssuer,
    VaultKubernetesAuth, duration,
};

/// cert-manager's API group.
pub const CERT_MANAGER: &str = "cert-manager.io";
/// aws-privateca-issuer's API group.
pub const AWS_PCA: &str = "awspca.cert-manager.io";

/// Something about one input document that certsmith cannot honour: the field's path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub path: String,
    pub message: String,
}

/// A certsmith object, typed: it serializes in the fields' declared order.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum Object {
    Certificate(Box<Certificate>),
    Issuer(Box<Issuer>),
    ClusterIssuer(Box<ClusterIssuer>),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Certificate(_) => "Certificate",
            Object::Issuer(_) => "Issuer",
            Object::ClusterIssuer(_) => "ClusterIssuer",
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Certificate(o) => &o.metadata,
            Object::Issuer(o) => &o.metadata,
            Object::ClusterIssuer(o) => &o.metadata,
        }
    }

    /// As JSON, for inspection.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// What became of one input document.
#[derive(Debug, Clone, Default)]
pub struct Converted {
    /// The certsmith object, when there is one.
    pub object: Option<Object>,
    /// Every field not carried over, and why.
    pub notes: Vec<Note>,
    /// "Certificate ns/name": the input document, for messages.
    pub describe: String,
    /// Whether the document is a cert-manager (or aws-privateca-issuer) resource, or carries
    /// cert-manager annotations: anything else is not this command's business.
    pub relevant: bool,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Default)]
struct Notes(Vec<Note>);

impl Notes {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Note {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Report every field left in `map` (under `prefix`): nothing certsmith knows took it.
    fn leftovers(&mut self, prefix: &str, map: Map<String, Value>) {
        for (key, _) in map {
            let path = join(prefix, &key);
            let message = unsupported(&path);
            self.add(path, message);
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Why certsmith cannot honour a field, for the fields cert-manager users will have.
fn unsupported(path: &str) -> String {
    let known = match path {
        "spec.acme" => {
            "certsmith has no ACME issuer (Let's Encrypt and other ACME CAs): this issuer is not converted"
        }
        "spec.venafi" => "certsmith has no Venafi / CyberArk issuer: this issuer is not converted",
        "spec.literalSubject" => {
            "certsmith builds the subject from commonName and subject; a literal RFC 4514 subject is not supported"
        }
        "spec.subject.streetAddresses"
        | "spec.subject.postalCodes"
        | "spec.subject.serialNumber" => {
            "certsmith's subject has organizations, organizationalUnits, countries, localities and provinces only"
        }
        "spec.keystores.pkcs12.password" | "spec.keystores.jks.password" => {
            "certsmith reads keystore passwords only from a Secret: use passwordSecretRef"
        }
        "spec.nameConstraints" => "certsmith does not request name constraints",
        "spec.otherNames" => "certsmith does not request otherName subject alternative names",
        "spec.revisionHistoryLimit" => {
            "certsmith keeps no CertificateRequest objects, so there is no history to limit"
        }
        "spec.signatureAlgorithm" => {
            "certsmith lets the issuer pick the signature algorithm for the key type (for AWS Private CA: the issuer's awsPCA.signingAlgorithm)"
        }
        "spec.renewal" => {
            "certsmith has no renewal policy or windows: it renews at renewBefore / renewBeforePercentage, always"
        }
        "spec.selfSigned.crlDistributionPoints" => {
            "a self-signed certificate has no CA to revoke it: certsmith adds no CRL distribution point to it"
        }
        "spec.ca.ocspServers" => {
            "certsmith does not add OCSP URLs to the certificates it signs (crlDistributionPoints and issuingCertificateURLs are carried over)"
        }
        "spec.vault.serverName" => {
            "certsmith checks Vault's certificate against the host in `server`; no other name can be set"
        }
        "spec.vault.clientCertSecretRef" | "spec.vault.clientKeySecretRef" => {
            "certsmith does not present a client certificate to Vault (mTLS to Vault is not supported)"
        }
        "spec.vault.auth.clientCertificate" => {
            "certsmith does not log in to Vault with a TLS certificate: use tokenSecretRef, appRole or kubernetes"
        }
        "spec.vault.auth.aws" => {
            "certsmith does not log in to Vault with AWS IAM: use tokenSecretRef, appRole or kubernetes"
        }
        "spec.privateKey.size" => "ignored for Ed25519 keys (by cert-manager too)",
        _ => "certsmith has no such field",
    };
    known.to_string()
}

/// Convert one document (already taken out of any List).
pub fn convert_document(doc: &Value) -> Converted {
    let Some(map) = doc.as_object() else {
        return Converted::default();
    };
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let describe = describe(kind, doc);
    let mut notes = Notes::default();
    let mut map = map.clone();
    let object = match (group, version, kind) {
        (CERT_MANAGER, "v1", "Certificate") => certificate(&mut map, &mut notes),
        (CERT_MANAGER, "v1", "Issuer") => issuer(&mut map, &mut notes, false),
        (CERT_MANAGER, "v1", "ClusterIssuer") => issuer(&mut map, &mut notes, true),
        (AWS_PCA, "v1beta1", "AWSPCAIssuer") => aws_pca_issuer(&mut map, &mut notes, false),
        (AWS_PCA, "v1beta1", "AWSPCAClusterIssuer") => aws_pca_issuer(&mut map, &mut notes, true),
        (CERT_MANAGER, "v1", "CertificateRequest") => {
            notes.add(
                "kind",
                "certsmith has no CertificateRequest objects (Certificates issue directly): not converted",
            );
            None
        }
        (CERT_MANAGER, _, "Certificate" | "Issuer" | "ClusterIssuer" | "CertificateRequest") => {
            notes.add(
                "apiVersion",
                format!(
                    "only cert-manager.io/v1 is converted (upgrade {api_version} manifests with `cmctl upgrade migrate-api-version` or `cmctl convert` first): not converted"
                ),
            );
            None
        }
        ("acme.cert-manager.io", _, _) => {
            notes.add(
                "kind",
                "certsmith has no ACME issuer, hence no Orders or Challenges: not converted",
            );
            None
        }
        ("trust.cert-manager.io", _, _) => {
            notes.add(
                "kind",
                "certsmith does not distribute trust bundles (trust-manager): not converted",
            );
            None
        }
        (g, _, _) if g == CERT_MANAGER || g.ends_with(".cert-manager.io") => {
            notes.add(
                "kind",
                format!("certsmith has no equivalent of {api_version} {kind}: not converted"),
            );
            None
        }
        _ => {
            annotations_of_other(doc, kind, &mut notes);
            return Converted {
                relevant: !notes.0.is_empty(),
                notes: notes.0,
                describe,
                object: None,
            };
        }
    };
    Converted {
        object,
        notes: notes.0,
        describe,
        relevant: true,
    }
}

/// "Certificate ns/name", "ClusterIssuer name".
pub fn describe(kind: &str, doc: &Value) -> String {
    let meta = &doc["metadata"];
    let name = meta["name"]
        .as_str()
        .or_else(|| meta["generateName"].as_str())
        .unwrap_or("(no name)");
    let kind = if kind.is_empty() { "(no kind)" } else { kind };
    match meta["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// cert-manager annotations on objects certsmith does not look at: ingress-shim on Ingresses
/// and Gateways, cainjector on webhooks, CRDs and APIServices.
fn annotations_of_other(doc: &Value, kind: &str, notes: &mut Notes) {
    let Some(annotations) = doc["metadata"]["annotations"].as_object() else {
        return;
    };
    let shim_hint = match kind {
        "Ingress" => ingress_hint(doc),
        "Gateway" => {
            " (write a Certificate for each listener's hostname and certificateRefs Secret)".into()
        }
        _ => String::new(),
    };
    let mut shim = Vec::new();
    for key in annotations.keys() {
        let path = format!("metadata.annotations[{key}]");
        let cert_manager = key.starts_with("cert-manager.io/")
            || key.starts_with("acme.cert-manager.io/")
            || key == "kubernetes.io/tls-acme";
        if !cert_manager {
            continue;
        }
        if key.starts_with("cert-manager.io/inject-ca-from")
            || key == "cert-manager.io/allow-direct-injection"
        {
            notes.add(
                path,
                "certsmith has no CA injector: put the CA bundle into the object yourself (ca.crt of the Secret)",
            );
        } else if matches!(kind, "Ingress" | "Gateway") {
            shim.push(key.as_str());
        } else {
            notes.add(
                path,
                "a cert-manager annotation: certsmith does not read it",
            );
        }
    }
    // One finding per Ingress or Gateway, naming all its ingress-shim annotations.
    if !shim.is_empty() {
        notes.add(
            format!("metadata.annotations[{}]", shim.join(", ")),
            format!(
                "certsmith has no ingress-shim: it does not create Certificates from {kind} annotations{shim_hint}"
            ),
        );
    }
}

/// What to write instead of an Ingress's annotations: its TLS Secrets and hosts.
fn ingress_hint(doc: &Value) -> String {
    let annotations = &doc["metadata"]["annotations"];
    let issuer = annotations["cert-manager.io/cluster-issuer"]
        .as_str()
        .map(|n| format!("ClusterIssuer {n}"))
        .or_else(|| {
            annotations["cert-manager.io/issuer"]
                .as_str()
                .map(|n| format!("Issuer {n}"))
        });
    let tls: Vec<String> = doc["spec"]["tls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let secret = t["secretName"].as_str()?;
            let hosts: Vec<&str> = t["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            Some(format!(
                "secretName {secret} with dnsNames [{}]",
                hosts.join(", ")
            ))
        })
        .collect();
    if tls.is_empty() {
        return String::new();
    }
    let by = issuer
        .map(|i| format!(", issued by {i}"))
        .unwrap_or_default();
    format!(
        " (write a Certificate per TLS entry: {}{by})",
        tls.join("; ")
    )
}

// ----- typed extraction: every read takes the field out, and a wrong type is reported -----

/// `additionalOutputFormats`: the same types under the same names.
fn output_formats(value: Value, notes: &mut Notes) -> Vec<OutputFormat> {
    let path = "spec.additionalOutputFormats";
    let Value::Array(items) = value else {
        notes.add(path, format!("expected a list, found {value}: dropped"));
        return Vec::new();
    };
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| {
            serde_json::from_value::<OutputFormat>(item.clone())
                .map_err(|_| {
                    notes.add(
                        format!("{path}[{i}]"),
                        format!(
                            "expected {{type: CombinedPEM}} or {{type: DER}}, found {item}: dropped"
                        ),
                    )
                })
                .ok()
        })
        .collect()
}

/// `keystores`: the same shape. An unset PKCS#12 profile becomes `LegacyRC2`, cert-manager's
/// default, so existing readers keep opening the store (certsmith's own default is
/// `Modern2023`).
fn keystores(mut map: Map<String, Value>, notes: &mut Notes) -> Option<Keystores> {
    let p = "spec.keystores";
    let mut out = Keystores::default();
    if let Some(mut m) = take_object(&mut map, p, "pkcs12", notes) {
        let path = join(p, "pkcs12");
        let create = take_bool(&mut m, &path, "create", notes).unwrap_or(false);
        let profile = match take_string(&mut m, &path, "profile", notes).as_deref() {
            None | Some("LegacyRC2") => Some(Pkcs12Profile::LegacyRc2),
            Some("LegacyDES") => Some(Pkcs12Profile::LegacyDes),
            Some("Modern2023") => Some(Pkcs12Profile::Modern2023),
            Some(other) => {
                notes.add(
                    join(&path, "profile"),
                    format!("unknown profile {other:?}: LegacyRC2 (cert-manager's default) used"),
                );
                Some(Pkcs12Profile::LegacyRc2)
            }
        };
        let password = password_ref(&mut m, &path, notes);
        notes.leftovers(&path, m);
        if let Some(password_secret_ref) = password {
            out.pkcs12 = Some(Pkcs12Keystore {
                create,
                password_secret_ref,
                profile,
            });
        }
    }
    if let Some(mut m) = take_object(&mut map, p, "jks", notes) {
        let path = join(p, "jks");
        let create = take_bool(&mut m, &path, "create", notes).unwrap_or(false);
        let alias = take_string(&mut m, &path, "alias", notes);
        let password = password_ref(&mut m, &path, notes);
        notes.leftovers(&path, m);
        if let Some(password_secret_ref) = password {
            out.jks = Some(JksKeystore {
                create,
                password_secret_ref,
                alias,
            });
        }
    }
    notes.leftovers(p, map);
    (out.pkcs12.is_some() || out.jks.is_some()).then_some(out)
}

fn password_ref(
    map: &mut Map<String, Value>,
    prefix: &str,
    notes: &mut Notes,
) -> Option<PasswordSecretRef> {
    let path = join(prefix, "passwordSecretRef");
    let Some(mut r) = take_object(map, prefix, "passwordSecretRef", notes) else {
        if !notes.0.iter().any(|n| n.path.starts_with(&path)) {
            notes.add(
                path,
                "missing: certsmith needs the password's Secret and key; this keystore is not converted",
            );
        }
        return None;
    };
    let name = take_string(&mut r, &path, "name", notes);
    let key = take_string(&mut r, &path, "key", notes);
    notes.leftovers(&path, r);
    match (name, key) {
        (Some(name), Some(key)) => Some(PasswordSecretRef { name, key }),
        _ => {
            notes.add(
                path,
                "needs both name and key: this keystore is not converted",
            );
            None
        }
    }
}

fn take(map: &mut Map<String, Value>, key: &str) -> Option<Value> {
    map.remove(key).filter(|v| !v.is_null())
}

fn take_string(
    map: &mut Map<String, Value>,
    prefix: &str,
    key: &str,
    notes: &mut Notes,
) -> Option<String> {
    match take(map, key)? {
        Value::String(s) => Some(s),
        other => {
            notes.add(
                join(prefix, key),
                format!("expected a string, found {other}: dropped"),
            );
            None
        }
    }
}

fn take_bool(
    map: &mut Map<String, Value>,
    prefix: &str,
    key: &str,
    notes: &mut Notes,
) -> Option<bool> {
    match take(map, key)? {
        Value::Bool(b) => Some(b),
        other => {
            notes.add(
                join(prefix, key),
                format!("expected true or false, found {other}: dropped"),
            );
            None
        }
    }
}

fn take_object(
    map: &mut Map<String, Value>,
    prefix: &str,
    key: &str,
    notes: &mut Notes,
) -> Option<Map<String, Value>> {
    match take(map, key)? {
        Value::Object(m) => Some(m),
        other => {
            notes.add(
                join(prefix, key),
                format!("expected an object, found {other}: dropped"),
            );
            None
        }
    }
}

fn take_strings(
    map: &mut Map<String, Value>,
    prefix: &str,
    key: &str,
    notes: &mut Notes,
) -> Vec<String> {
    let path = join(prefix, key);
    match take(map, key) {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Value::String(s) => Some(s),
                other => {
                    notes.add(
                        format!("{path}[{i}]"),
                        format!("expected a string, found {other}: dropped"),
                    );
                    None
                }
            })
            .collect(),
        Some(other) => {
            notes.add(
                path,
                format!("expected a list of strings, found {other}: dropped"),
            );
            Vec::new()
        }
    }
}

fn take_string_map(
    map: &mut Map<String, Value>,
    prefix: &str,
    key: &str,
    notes: &mut Notes,
) -> BTreeMap<String, String> {
    let path = join(prefix, key);
    let Some(object) = take_object(map, prefix, key, notes) else {
        return BTreeMap::new();
    };
    object
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            other => {
                notes.add(
                    format!("{path}[{k}]"),
                    format!("expected a string, found {other}: dropped"),
                );
                None
            }
        })
        .collect()
}

/// Metadata carried over: name, generateName, namespace (namespaced kinds), labels and
/// annotations; what the API server writes goes silently, owner references and finalizers
/// (they name objects of the source cluster) and cert-manager annotations are reported.
fn metadata(map: &mut Map<String, Value>, notes: &mut Notes, namespaced: bool) -> ObjectMeta {
    let mut meta = take_object(map, "", "metadata", notes).unwrap_or_default();
    let mut out = ObjectMeta {
        name: take_string(&mut meta, "metadata", "name", notes),
        generate_name: take_string(&mut meta, "metadata", "generateName", notes),
        ..Default::default()
    };
    let namespace = take_string(&mut meta, "metadata", "namespace", notes);
    if namespaced {
        out.namespace = namespace;
    }
    let labels = take_string_map(&mut meta, "metadata", "labels", notes);
    if !labels.is_empty() {
        out.labels = Some(labels);
    }
    let mut annotations = take_string_map(&mut meta, "metadata", "annotations", notes);
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    annotations.retain(|key, _| {
        let cert_manager = key.starts_with("cert-manager.io/")
            || key.starts_with("acme.cert-manager.io/")
            || key.starts_with("aws-privateca-issuer/");
        if cert_manager {
            let message = match key.as_str() {
                "cert-manager.io/issue-temporary-certificate" => {
                    "certsmith never writes a temporary certificate: the Secret appears once the real one is issued"
                }
                _ => "a cert-manager annotation: certsmith does not read it (dropped)",
            };
            notes.add(format!("metadata.annotations[{key}]"), message);
        }
        !cert_manager
    });
    if !annotations.is_empty() {
        out.annotations = Some(annotations);
    }
    for (key, why) in [
        (
            "ownerReferences",
            "owner references name objects of the source cluster by UID: dropped (a wrong owner would have the new object garbage-collected)",
        ),
        (
            "finalizers",
            "finalizers belong to the controllers of the source cluster: dropped",
        ),
    ] {
        if take(&mut meta, key).is_some() {
            notes.add(format!("metadata.{key}"), why);
        }
    }
    for written_by_the_server in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ] {
        meta.remove(written_by_the_server);
    }
    notes.leftovers("metadata", meta);
    out
}

/// The document's own top-level fields besides apiVersion, kind, metadata and spec.
fn top_level_leftovers(map: &mut Map<String, Value>, notes: &mut Notes) {
    for key in ["apiVersion", "kind", "status"] {
        map.remove(key);
    }
    notes.leftovers("", std::mem::take(map));
}

// ----- Certificate -----

fn certificate(map: &mut Map<String, Value>, notes: &mut Notes) -> Option<Object> {
    let meta = metadata(map, notes, true);
    let mut spec = take_object(map, "", "spec", notes).unwrap_or_default();
    top_level_leftovers(map, notes);
    let p = "spec";
    let secret_name = take_string(&mut spec, p, "secretName", notes);
    let issuer_ref =
        take_object(&mut spec, p, "issuerRef", notes).and_then(|r| issuer_ref(r, notes));
    let mut out = CertificateSpec {
        secret_name: secret_name.clone().unwrap_or_default(),
        issuer_ref: issuer_ref.clone().unwrap_or(IssuerRef {
            name: String::new(),
            kind: IssuerKind::Issuer,
        }),
        common_name: take_string(&mut spec, p, "commonName", notes),
        dns_names: take_strings(&mut spec, p, "dnsNames", notes),
        ip_addresses: take_strings(&mut spec, p, "ipAddresses", notes),
        uris: take_strings(&mut spec, p, "uris", notes),
        email_addresses: take_strings(&mut spec, p, "emailAddresses", notes),
        subject: take_object(&mut spec, p, "subject", notes).and_then(|s| subject(s, notes)),
        duration: go_duration(&mut spec, "duration", notes),
        renew_before: go_duration(&mut spec, "renewBefore", notes),
        renew_before_percentage: None,
        private_key: Some(private_key(
            take_object(&mut spec, p, "privateKey", notes).unwrap_or_default(),
            notes,
        )),
        usages: None,
        is_ca: take_bool(&mut spec, p, "isCA", notes).unwrap_or(false),
        secret_template: take_object(&mut spec, p, "secretTemplate", notes)
            .and_then(|t| secret_template(t, notes)),
        additional_output_formats: take(&mut spec, "additionalOutputFormats")
            .map(|v| output_formats(v, notes))
            .unwrap_or_default(),
        keystores: take_object(&mut spec, p, "keystores", notes).and_then(|k| keystores(k, notes)),
        secret_cleanup_policy: None,
        revocation_policy: None,
    };
    if let Some(value) = take(&mut spec, "renewBeforePercentage") {
        match value.as_u64() {
            Some(n @ 1..=99) => out.renew_before_percentage = u8::try_from(n).ok(),
            _ => notes.add(
                "spec.renewBeforePercentage",
                format!("must be a whole number from 1 to 99, found {value}: dropped"),
            ),
        }
    }
    if let Some(usages) = take(&mut spec, "usages") {
        out.usages = key_usages(usages, notes);
    }
    if let Some(encode) = take(&mut spec, "encodeUsagesInRequest")
        && encode != Value::Bool(true)
    {
        notes.add(
            "spec.encodeUsagesInRequest",
            "certsmith always puts the key usages into the CSR",
        );
    }
    notes.leftovers("spec", spec);
    if secret_name.is_none() {
        notes.add(
            "spec.secretName",
            "missing: the Certificate is not converted",
        );
        return None;
    }
    if issuer_ref.is_none() {
        if !notes.0.iter().any(|n| n.path.starts_with("spec.issuerRef")) {
            notes.add(
                "spec.issuerRef",
                "missing: the Certificate is not converted",
            );
        }
        return None;
    }
    let identities = out.common_name.is_some()
        || !out.dns_names.is_empty()
        || !out.ip_addresses.is_empty()
        || !out.uris.is_empty()
        || !out.email_addresses.is_empty();
    if !identities {
        notes.add(
            "spec",
            "no commonName, dnsNames, ipAddresses, uris or emailAddresses left: certsmith requires one, the Certificate is not converted",
        );
        return None;
    }
    let mut cert = Certificate::new("", out);
    cert.metadata = meta;
    Some(Object::Certificate(Box::new(cert)))
}

fn issuer_ref(mut r: Map<String, Value>, notes: &mut Notes) -> Option<IssuerRef> {
    let p = "spec.issuerRef";
    let name = take_string(&mut r, p, "name", notes);
    let kind = take_string(&mut r, p, "kind", notes).unwrap_or_default();
    let group = take_string(&mut r, p, "group", notes).unwrap_or_default();
    notes.leftovers(p, r);
    let Some(name) = name else {
        notes.add(
            "spec.issuerRef.name",
            "missing: the Certificate is not converted",
        );
        return None;
    };
    let cluster = |kind: &str| {
        if kind.ends_with("ClusterIssuer") {
            IssuerKind::ClusterIssuer
        } else {
            IssuerKind::Issuer
        }
    };
    let kind = match (group.as_str(), kind.as_str()) {
        ("" | CERT_MANAGER, "" | "Issuer") => IssuerKind::Issuer,
        ("" | CERT_MANAGER, "ClusterIssuer") => IssuerKind::ClusterIssuer,
        (AWS_PCA, "AWSPCAIssuer") => IssuerKind::Issuer,
        (AWS_PCA, "AWSPCAClusterIssuer") => IssuerKind::ClusterIssuer,
        ("" | CERT_MANAGER, other) => {
            notes.add(
                "spec.issuerRef.kind",
                format!(
                    "{other:?} is not an issuer kind certsmith knows: converted as {}",
                    cluster(other).as_str()
                ),
            );
            cluster(other)
        }
        (group, kind) => {
            let as_kind = cluster(kind);
            notes.add(
                "spec.issuerRef.group",
                format!(
                    "{group} is an external issuer certsmith does not have: the Certificate names the certsmith {} {name}, which you must create",
                    as_kind.as_str()
                ),
            );
            as_kind
        }
    };
    Some(IssuerRef { name, kind })
}

fn subject(mut s: Map<String, Value>, notes: &mut Notes) -> Option<Subject> {
    let p = "spec.subject";
    let out = Subject {
        organizations: take_strings(&mut s, p, "organizations", notes),
        organizational_units: take_strings(&mut s, p, "organizationalUnits", notes),
        countries: take_strings(&mut s, p, "countries", notes),
        localities: take_strings(&mut s, p, "localities", notes),
        provinces: take_strings(&mut s, p, "provinces", notes),
    };
    notes.leftovers(p, s);
    (out != Subject::default()).then_some(out)
}

/// A Go duration certsmith's grammar accepts (cert-manager also accepts `us` and `ns`).
fn go_duration(spec: &mut Map<String, Value>, key: &str, notes: &mut Notes) -> Option<String> {
    let text = take_string(spec, "spec", key, notes)?;
    match duration::parse(&text) {
        Ok(d) if d.as_secs() > 0 => Some(text),
        Ok(_) => {
            notes.add(
                format!("spec.{key}"),
                format!("{text:?} is not positive: dropped"),
            );
            None
        }
        Err(e) => {
            notes.add(
                format!("spec.{key}"),
                format!("{e} (certsmith takes h, m, s and ms): dropped"),
            );
            None
        }
    }
}

/// The key as cert-manager would generate it: its defaults (RSA, PKCS#1) made explicit.
fn private_key(mut k: Map<String, Value>, notes: &mut Notes) -> PrivateKeySpec {
    let p = "spec.privateKey";
    let mut out = PrivateKeySpec::default();
    if let Some(algorithm) = take_string(&mut k, p, "algorithm", notes) {
        match algorithm.as_str() {
            "RSA" => out.algorithm = Some(KeyAlgorithm::Rsa),
            "ECDSA" => out.algorithm = Some(KeyAlgorithm::Ecdsa),
            "Ed25519" => out.algorithm = Some(KeyAlgorithm::Ed25519),
            other => notes.add(
                "spec.privateKey.algorithm",
                format!(
                    "{other:?} is not RSA, ECDSA or Ed25519: dropped (certsmith's default is ECDSA)"
                ),
            ),
        }
    }
    let algorithm = *out.algorithm.get_or_insert(KeyAlgorithm::Rsa);
    if let Some(size) = take(&mut k, "size") {
        out.size = key_size(algorithm, &size, notes);
    }
    if let Some(encoding) = take_string(&mut k, p, "encoding", notes) {
        match encoding.as_str() {
            "PKCS1" if out.algorithm == Some(KeyAlgorithm::Ed25519) => notes.add(
                "spec.privateKey.encoding",
                "Ed25519 keys have no PKCS#1 form: written as PKCS8",
            ),
            "PKCS1" => out.encoding = Some(KeyEncoding::Pkcs1),
            "PKCS8" => out.encoding = Some(KeyEncoding::Pkcs8),
            other => notes.add(
                "spec.privateKey.encoding",
                format!("{other:?} is not PKCS1 or PKCS8: dropped (certsmith's default is PKCS8)"),
            ),
        }
    }
    if let Some(policy) = take_string(&mut k, p, "rotationPolicy", notes) {
        match policy.as_str() {
            "Always" => out.rotation_policy = Some(RotationPolicy::Always),
            "Never" => out.rotation_policy = Some(RotationPolicy::Never),
            other => notes.add(
                "spec.privateKey.rotationPolicy",
                format!(
                    "{other:?} is not Always or Never: dropped (certsmith's default is Always)"
                ),
            ),
        }
    }
    notes.leftovers(p, k);
    if out.encoding.is_none() && algorithm != KeyAlgorithm::Ed25519 {
        out.encoding = Some(KeyEncoding::Pkcs1);
    }
    out
}

/// The size certsmith will generate: the same when it offers it, else the next larger one.
fn key_size(algorithm: KeyAlgorithm, size: &Value, notes: &mut Notes) -> Option<u32> {
    let path = "spec.privateKey.size";
    let Some(size) = size.as_u64() else {
        notes.add(path, format!("expected a number, found {size}: dropped"));
        return None;
    };
    let (offered, name): (&[u64], _) = match algorithm {
        KeyAlgorithm::Ed25519 => {
            notes.add(path, unsupported(path));
            return None;
        }
        KeyAlgorithm::Rsa => (&[2048, 3072, 4096, 8192], "RSA"),
        KeyAlgorithm::Ecdsa => (&[256, 384, 521], "ECDSA"),
    };
    if offered.contains(&size) {
        return u32::try_from(size).ok();
    }
    match offered.iter().find(|&&o| o > size) {
        Some(&next) => {
            notes.add(
                path,
                format!(
                    "certsmith generates {name} keys of {offered:?} bits: {size} becomes {next}"
                ),
            );
            u32::try_from(next).ok()
        }
        None => {
            notes.add(
                path,
                format!("certsmith generates {name} keys of {offered:?} bits: {size} dropped"),
            );
            None
        }
    }
}

fn key_usages(value: Value, notes: &mut Notes) -> Option<Vec<KeyUsage>> {
    let Value::Array(items) = value else {
        notes.add(
            "spec.usages",
            format!("expected a list, found {value}: dropped"),
        );
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("spec.usages[{i}]");
        let Some(name) = item.as_str() else {
            notes.add(path, format!("expected a string, found {item}: dropped"));
            continue;
        };
        // cert-manager's aliases: "signing" is digital signature, "s/mime" email protection.
        let canonical = match name {
            "signing" => "digital signature",
            "s/mime" => "email protection",
            other => other,
        };
        match serde_json::from_value::<KeyUsage>(Value::String(canonical.into())) {
            Ok(usage) if !out.contains(&usage) => out.push(usage),
            Ok(_) => {}
            Err(_) => notes.add(
                path,
                format!("certsmith does not request {name:?}: dropped"),
            ),
        }
    }
    if out.is_empty() {
        notes.add(
            "spec.usages",
            "no usage certsmith requests is left: certsmith's default usages apply",
        );
        return None;
    }
    Some(out)
}

fn secret_template(mut t: Map<String, Value>, notes: &mut Notes) -> Option<SecretTemplate> {
    let p = "spec.secretTemplate";
    let mut out = SecretTemplate {
        labels: take_string_map(&mut t, p, "labels", notes),
        annotations: take_string_map(&mut t, p, "annotations", notes),
    };
    notes.leftovers(p, t);
    for (field, map) in [
        ("labels", &mut out.labels),
        ("annotations", &mut out.annotations),
    ] {
        map.retain(|key, _| {
            let reserved = key.starts_with("certsmith.dev/");
            if reserved {
                notes.add(
                    format!("{p}.{field}[{key}]"),
                    "keys under certsmith.dev/ are the operator's own: dropped",
                );
            }
            !reserved
        });
    }
    (out != SecretTemplate::default()).then_some(out)
}

// ----- Issuer and ClusterIssuer -----

fn issuer(map: &mut Map<String, Value>, notes: &mut Notes, cluster: bool) -> Option<Object> {
    let meta = metadata(map, notes, !cluster);
    let mut spec = take_object(map, "", "spec", notes).unwrap_or_default();
    top_level_leftovers(map, notes);
    let mut out = IssuerSpec {
        self_signed: None,
        ca: None,
        vault: None,
        aws_pca: None,
        policy: None,
    };
    if let Some(mut s) = take_object(&mut spec, "spec", "selfSigned", notes) {
        if let Some(points) = take(&mut s, "crlDistributionPoints")
            && points.as_array().is_some_and(|a| !a.is_empty())
        {
            notes.add(
                "spec.selfSigned.crlDistributionPoints",
                unsupported("spec.selfSigned.crlDistributionPoints"),
            );
        }
        notes.leftovers("spec.selfSigned", s);
        out.self_signed = Some(SelfSignedIssuer {});
    }
    if let Some(mut ca) = take_object(&mut spec, "spec", "ca", notes) {
        let secret_name = take_string(&mut ca, "spec.ca", "secretName", notes);
        // cert-manager's CA issuer writes these into its leaves, as certsmith's does.
        let mut urls = |key: &str| -> Vec<String> {
            match take(&mut ca, key) {
                Some(serde_json::Value::Array(items)) => items
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let crl_distribution_points = urls("crlDistributionPoints");
        let issuing_certificate_urls = urls("issuingCertificateURLs");
        if let Some(v) = take(&mut ca, "ocspServers")
            && v.as_array().is_some_and(|a| !a.is_empty())
        {
            let path = "spec.ca.ocspServers".to_string();
            let message = unsupported(&path);
            notes.add(path, message);
        }
        notes.leftovers("spec.ca", ca);
        match secret_name {
            Some(secret_name) => {
                out.ca = Some(CaIssuer {
                    secret_name,
                    crl_distribution_points,
                    issuing_certificate_urls,
                    ..CaIssuer::default()
                })
            }
            None => notes.add("spec.ca.secretName", "missing"),
        }
    }
    if let Some(vault) = take_object(&mut spec, "spec", "vault", notes) {
        out.vault = vault_issuer(vault, &meta, cluster, notes);
    }
    // ACME, Venafi and anything newer: reported by name, the issuer is not converted.
    notes.leftovers("spec", spec);
    let types = [
        out.self_signed.is_some(),
        out.ca.is_some(),
        out.vault.is_some(),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    match types {
        0 => {
            // Unless a note above already says why (ACME, Venafi, an incomplete vault).
            if !notes.0.iter().any(|n| n.path.starts_with("spec.")) {
                notes.add(
                    "spec",
                    "no issuer type certsmith has (selfSigned, ca, vault): not converted",
                );
            }
            return None;
        }
        1 => {}
        _ => {
            notes.add(
                "spec",
                "more than one issuer type is set (cert-manager refuses that too): not converted",
            );
            return None;
        }
    }
    Some(issuer_object(meta, out, cluster))
}

fn issuer_object(meta: ObjectMeta, spec: IssuerSpec, cluster: bool) -> Object {
    if cluster {
        let mut issuer = ClusterIssuer::new("", crate::api::issuer::ClusterIssuerSpec(spec));
        issuer.metadata = meta;
        Object::ClusterIssuer(Box::new(issuer))
    } else {
        let mut issuer = Issuer::new("", spec);
        issuer.metadata = meta;
        Object::Issuer(Box::new(issuer))
    }
}

/// A `{name, key}` reference; cert-manager's default key where it has one.
fn secret_key(
    mut r: Map<String, Value>,
    path: &str,
    default_key: Option<&str>,
    notes: &mut Notes,
) -> Option<SecretKeySelector> {
    let name = take_string(&mut r, path, "name", notes);
    let key = take_string(&mut r, path, "key", notes)
        .filter(|k| !k.is_empty())
        .or_else(|| default_key.map(str::to_string));
    notes.leftovers(path, r);
    match (name, key) {
        (Some(name), Some(key)) if !name.is_empty() => Some(SecretKeySelector { name, key }),
        (Some(name), None) if !name.is_empty() => {
            notes.add(format!("{path}.key"), "missing: certsmith needs the key");
            None
        }
        _ => {
            notes.add(format!("{path}.name"), "missing");
            None
        }
    }
}

fn vault_issuer(
    mut v: Map<String, Value>,
    meta: &ObjectMeta,
    cluster: bool,
    notes: &mut Notes,
) -> Option<VaultIssuer> {
    let p = "spec.vault";
    let server = take_string(&mut v, p, "server", notes);
    let path = take_string(&mut v, p, "path", notes);
    let namespace = take_string(&mut v, p, "namespace", notes).filter(|n| !n.is_empty());
    let ca_bundle = take_string(&mut v, p, "caBundle", notes).filter(|b| !b.is_empty());
    let ca_bundle_secret_ref = take_object(&mut v, p, "caBundleSecretRef", notes)
        .and_then(|r| secret_key(r, "spec.vault.caBundleSecretRef", Some("ca.crt"), notes));
    let auth = take_object(&mut v, p, "auth", notes);
    if let Some(path) = &path
        && !vault_sign_path(path)
    {
        notes.add(
            "spec.vault.path",
            format!("{path:?}: certsmith signs only at <mount>/sign/<role> or <mount>/sign-verbatim[/<role>] (the API server will refuse this Issuer)"),
        );
    }
    let issuer_name = meta.name.clone().unwrap_or_default();
    let default_audience = match (&meta.namespace, cluster) {
        (_, true) => Some(format!("vault://{issuer_name}")),
        (Some(ns), false) => Some(format!("vault://{ns}/{issuer_name}")),
        (None, false) => None,
    };
    let auth = auth.and_then(|a| {
        vault_auth(
            a,
            default_audience,
            server.as_deref().unwrap_or_default(),
            notes,
        )
    });
    notes.leftovers(p, v);
    let (Some(server), Some(path)) = (server, path) else {
        notes.add(p, "server and path are required");
        return None;
    };
    let Some(auth) = auth else {
        notes.add(
            "spec.vault.auth",
            "no login method certsmith has (tokenSecretRef, appRole, kubernetes): not converted",
        );
        return None;
    };
    Some(VaultIssuer {
        server,
        path,
        namespace,
        ca_bundle,
        ca_bundle_secret_ref,
        auth,
    })
}

/// `<mount>/sign/<role>`, `<mount>/sign-verbatim` or `<mount>/sign-verbatim/<role>`, as
/// certsmith's schema requires.
pub(super) fn vault_sign_path(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    let plain = |s: &str, extra: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c) || extra.contains(c))
    };
    let mount_ok = |mount: &[&str]| !mount.is_empty() && mount.iter().all(|s| plain(s, ""));
    match segments.as_slice() {
        [mount @ .., "sign", role] => mount_ok(mount) && plain(role, "@"),
        [mount @ .., "sign-verbatim", role] if mount_ok(mount) && plain(role, "@") => true,
        [mount @ .., "sign-verbatim"] => mount_ok(mount),
        _ => false,
    }
}

fn vault_auth(
    mut a: Map<String, Value>,
    default_audience: Option<String>,
    server: &str,
    notes: &mut Notes,
) -> Option<VaultAuth> {
    let p = "spec.vault.auth";
    let mut out = VaultAuth {
        token_secret_ref: None,
        app_role: None,
        kubernetes: None,
    };
    if let Some(r) = take_object(&mut a, p, "tokenSecretRef", notes) {
        out.token_secret_ref =
            secret_key(r, "spec.vault.auth.tokenSecretRef", Some("token"), notes);
    }
    if let Some(mut r) = take_object(&mut a, p, "appRole", notes) {
        let q = "spec.vault.auth.appRole";
        let path = take_string(&mut r, q, "path", notes).filter(|s| !s.is_empty());
        let role_id = take_string(&mut r, q, "roleId", notes);
        let secret_ref = take_object(&mut r, q, "secretRef", notes)
            .and_then(|s| secret_key(s, "spec.vault.auth.appRole.secretRef", None, notes));
        notes.leftovers(q, r);
        match (role_id, secret_ref) {
            (Some(role_id), Some(secret_ref)) => {
                out.app_role = Some(VaultAppRole {
                    path,
                    role_id,
                    secret_ref,
                })
            }
            _ => notes.add(q, "roleId and secretRef are required"),
        }
    }
    if let Some(k) = take_object(&mut a, p, "kubernetes", notes) {
        out.kubernetes = kubernetes_auth(k, default_audience, server, notes);
    }
    notes.leftovers(p, a);
    let set = [
        out.token_secret_ref.is_some(),
        out.app_role.is_some(),
        out.kubernetes.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    match set {
        1 => Some(out),
        0 => None,
        _ => {
            notes.add(
                p,
                "more than one login method is set (cert-manager refuses that too)",
            );
            None
        }
    }
}

fn kubernetes_auth(
    mut k: Map<String, Value>,
    default_audience: Option<String>,
    server: &str,
    notes: &mut Notes,
) -> Option<VaultKubernetesAuth> {
    let p = "spec.vault.auth.kubernetes";
    let mount = take_string(&mut k, p, "mountPath", notes);
    let role = take_string(&mut k, p, "role", notes);
    let secret_ref = take_object(&mut k, p, "secretRef", notes)
        .filter(|r| {
            r.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
        })
        .and_then(|r| {
            secret_key(
                r,
                "spec.vault.auth.kubernetes.secretRef",
                Some("token"),
                notes,
            )
        });
    let service_account_ref = take_object(&mut k, p, "serviceAccountRef", notes).and_then(|mut s| {
        let q = "spec.vault.auth.kubernetes.serviceAccountRef";
        let name = take_string(&mut s, q, "name", notes);
        let extra = take_strings(&mut s, q, "audiences", notes);
        notes.leftovers(q, s);
        // cert-manager's tokens always carry vault://[<namespace>/]<name> and the server URL
        // besides the listed audiences; certsmith sends exactly what is listed.
        let mut audiences = extra;
        match &default_audience {
            Some(a) => audiences.push(a.clone()),
            None => notes.add(
                format!("{q}.audiences"),
                "cert-manager adds the audience vault://<namespace>/<issuer name>, but the manifest has no namespace: add it to audiences if the Vault role is bound to it",
            ),
        }
        if !server.is_empty() {
            audiences.push(server.to_string());
        }
        audiences.dedup();
        if audiences.len() > 8 {
            notes.add(
                format!("{q}.audiences"),
                "certsmith takes at most 8 audiences: the rest are dropped",
            );
            audiences.truncate(8);
        }
        name.map(|name| ServiceAccountRef { name, audiences })
    });
    notes.leftovers(p, k);
    let mount_path = mount.and_then(|m| {
        let trimmed = m.trim_matches('/');
        match trimmed.strip_prefix("v1/auth/") {
            Some("kubernetes") => None,
            Some(name) => Some(name.to_string()),
            None => {
                notes.add(
                    "spec.vault.auth.kubernetes.mountPath",
                    format!("{m:?} is not /v1/auth/<mount> as cert-manager expects: used as the mount name"),
                );
                Some(trimmed.to_string())
            }
        }
    });
    let Some(role) = role else {
        notes.add("spec.vault.auth.kubernetes.role", "missing");
        return None;
    };
    if secret_ref.is_none() && service_account_ref.is_none() {
        notes.add(p, "needs serviceAccountRef or secretRef");
        return None;
    }
    Some(VaultKubernetesAuth {
        mount_path,
        role,
        service_account_ref: if secret_ref.is_some() {
            None
        } else {
            service_account_ref
        },
        secret_ref,
    })
}

// ----- aws-privateca-issuer -----

fn aws_pca_issuer(
    map: &mut Map<String, Value>,
    notes: &mut Notes,
    cluster: bool,
) -> Option<Object> {
    let meta = metadata(map, notes, !cluster);
    let mut spec = take_object(map, "", "spec", notes).unwrap_or_default();
    top_level_leftovers(map, notes);
    let p = "spec";
    let arn = take_string(&mut spec, p, "arn", notes);
    let region = take_string(&mut spec, p, "region", notes).filter(|r| !r.is_empty());
    let role = take_string(&mut spec, p, "role", notes).filter(|r| !r.is_empty());
    let credentials = take_object(&mut spec, p, "secretRef", notes)
        .and_then(|r| aws_credentials(r, &meta, cluster, notes));
    let template_arn = take_object(&mut spec, p, "pcaTemplate", notes).and_then(|mut t| {
        let name = take_string(&mut t, "spec.pcaTemplate", "defaultTemplateName", notes);
        notes.leftovers("spec.pcaTemplate", t);
        let partition = arn
            .as_deref()
            .and_then(|a| a.split(':').nth(1))
            .unwrap_or("aws");
        name.filter(|n| !n.is_empty())
            .map(|n| format!("arn:{partition}:acm-pca:::template/{n}"))
    });
    notes.leftovers(p, spec);
    let Some(arn) = arn.filter(|a| !a.is_empty()) else {
        notes.add("spec.arn", "missing: the issuer is not converted");
        return None;
    };
    let spec = IssuerSpec {
        self_signed: None,
        ca: None,
        vault: None,
        policy: None,
        aws_pca: Some(AwsPcaIssuer {
            arn,
            region,
            endpoint: None,
            template_arn,
            signing_algorithm: None,
            credentials,
            role,
        }),
    };
    Some(issuer_object(meta, spec, cluster))
}

fn aws_credentials(
    mut r: Map<String, Value>,
    meta: &ObjectMeta,
    cluster: bool,
    notes: &mut Notes,
) -> Option<AwsCredentials> {
    let p = "spec.secretRef";
    let name = take_string(&mut r, p, "name", notes).filter(|n| !n.is_empty());
    let namespace = take_string(&mut r, p, "namespace", notes).filter(|n| !n.is_empty());
    let mut key = |field: &str, notes: &mut Notes| {
        let q = format!("{p}.{field}");
        let mut selector = take_object(&mut r, p, field, notes)?;
        let key = take_string(&mut selector, &q, "key", notes).filter(|k| !k.is_empty());
        if let Some(other) = take_string(&mut selector, &q, "name", notes)
            && !other.is_empty()
            && Some(&other) != name.as_ref()
        {
            notes.add(
                format!("{q}.name"),
                "aws-privateca-issuer ignores it too: both keys are read from secretRef.name",
            );
        }
        notes.leftovers(&q, selector);
        key
    };
    let access_key_id_key = key("accessKeyIDSelector", notes);
    let secret_access_key_key = key("secretAccessKeySelector", notes);
    notes.leftovers(p, r);
    let name = name?;
    match (namespace, cluster) {
        (Some(ns), false) if meta.namespace.as_ref() == Some(&ns) => {}
        (Some(ns), false) => notes.add(
            "spec.secretRef.namespace",
            format!("certsmith reads an Issuer's Secrets from the Issuer's own namespace: copy Secret {ns}/{name} there"),
        ),
        (Some(ns), true) => notes.add(
            "spec.secretRef.namespace",
            format!("certsmith reads a ClusterIssuer's Secrets from its cluster-resource namespace (--cluster-resource-namespace): copy Secret {ns}/{name} there"),
        ),
        (None, _) => {}
    }
    Some(AwsCredentials {
        secret_ref: AwsCredentialsSecretRef {
            name,
            access_key_id_key,
            secret_access_key_key,
            session_token_key: None,
        },
    })
}
