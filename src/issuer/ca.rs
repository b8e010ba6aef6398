//! The in-cluster CA backend: a CA certificate and key from a `kubernetes.io/tls` Secret sign
//! CSRs. Loading validates the CA and names precisely what is wrong.

use rcgen::{Issuer, SubjectPublicKeyInfo};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use crate::api::{CaIssuer, RevocationReason};
use crate::pki::inspect::{self, CertInfo};
use crate::pki::keys::PrivateKey;
use crate::pki::request::SignRequest;
use crate::reason::{Problem, Reason};
use crate::secret;

use super::crl::{self, CrlPublisher, CrlTarget};
use super::{Env, SignedChain};

/// Load the CA key pair an issuer names, from its Secret namespace only. A Secret a managed
/// rotation wrote also holds the CA it replaced (`previous.crt`, `previous.key`): that one
/// keeps signing until the new one has been published for the trust propagation delay.
pub async fn build(ca: &CaIssuer, env: &Env<'_>) -> Result<CaSigner, Problem> {
    let secret = env
        .secrets
        .read(&ca.secret_name, Reason::CaSecretMissing, "CA ")
        .await?;
    let get = |k: &str| secret::value(&secret, k);
    let written_at = kube::ResourceExt::annotations(&secret)
        .get(secret::ISSUED_AT_ANNOTATION)
        .and_then(|t| crate::time::parse(t));
    let staged = Staged {
        previous_crt: get(secret::PREVIOUS_CA_CRT),
        previous_key: get(secret::PREVIOUS_CA_KEY),
        written_at,
        delay: RotationSettings::of(ca).trust_propagation_delay,
    };
    let mut signer = CaSigner::load_rotating(
        get("tls.crt"),
        get("tls.key"),
        get("ca.crt"),
        &staged,
        env.now,
    )?;
    signer.publish_at(&ca.crl_distribution_points, &ca.issuing_certificate_urls);
    // The CRL lives next to the CA Secret.
    let namespace = env.secrets.namespace().to_string();
    signer.crl = Some((
        CrlTarget {
            api: kube::Api::namespaced(env.client.clone(), &namespace),
            namespace,
            id: env.id.clone(),
        },
        env.caches.crls.clone(),
    ));
    Ok(signer)
}

/// How a CA issuer rotates, with the documented defaults filled in (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationSettings {
    pub trust_propagation_delay: i64,
    pub window: i64,
    pub rate_limit: u32,
    pub replaced_retention: i64,
}

pub const DEFAULT_TRUST_PROPAGATION_DELAY: i64 = 300;
pub const DEFAULT_ROTATION_WINDOW: i64 = 300;
pub const DEFAULT_ROTATION_RATE_LIMIT: u32 = 10;
pub const DEFAULT_REPLACED_RETENTION: i64 = 24 * 3600;

impl RotationSettings {
    /// The spec's settings; one that does not parse (admission prevents it) is the default.
    pub fn of(ca: &CaIssuer) -> Self {
        let secs = |v: &Option<String>, default: i64| {
            v.as_deref()
                .and_then(|t| crate::api::duration::parse(t).ok())
                .and_then(|d| i64::try_from(d.as_secs()).ok())
                .unwrap_or(default)
        };
        RotationSettings {
            trust_propagation_delay: secs(
                &ca.trust_propagation_delay,
                DEFAULT_TRUST_PROPAGATION_DELAY,
            ),
            window: secs(&ca.rotation_window, DEFAULT_ROTATION_WINDOW),
            rate_limit: ca
                .rotation_rate_limit
                .filter(|r| *r > 0)
                .unwrap_or(DEFAULT_ROTATION_RATE_LIMIT),
            replaced_retention: secs(&ca.replaced_ca_retention, DEFAULT_REPLACED_RETENTION),
        }
    }
}

/// The CA a managed rotation replaced, as the CA Secret holds it.
#[derive(Debug, Default)]
pub struct Staged<'a> {
    pub previous_crt: Option<&'a [u8]>,
    pub previous_key: Option<&'a [u8]>,
    /// When the new CA was written into the Secret (Unix seconds).
    pub written_at: Option<i64>,
    /// Seconds.
    pub delay: i64,
}

/// One validated CA key pair.
struct Loaded {
    ca: CertInfo,
    /// The CA's name, key usages and key identifier method, with its key: built once at load.
    issuer: Issuer<'static, PrivateKey>,
    /// The CA certificate followed by its own intermediates (never a self-signed root).
    intermediates_pem: String,
    root_pem: String,
    /// Written into every leaf: where its CRL and its CA certificate are published.
    crl_distribution_points: Vec<String>,
    issuing_certificate_urls: Vec<String>,
}

/// A validated CA, ready to sign.
pub struct CaSigner {
    signing: Loaded,
    /// During a managed rotation, the other CA: the next one (not yet signing) or the
    /// previous one (still trusted while leaves move).
    other: Option<Loaded>,
    /// Whether `other` is the next CA (true) or the previous one.
    other_is_next: bool,
    /// When the newest CA in the Secret signs (or started signing), when a rotation is staged.
    activates_at: Option<i64>,
    /// Where this issuer's CRL is kept, and the writer shared by the process (None when
    /// loaded without an issuer, as in tests).
    crl: Option<(CrlTarget, std::sync::Arc<CrlPublisher>)>,
}

impl std::fmt::Debug for CaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSigner")
            .field("subject", &self.signing.ca.subject)
            .finish_non_exhaustive()
    }
}

impl CaSigner {
    /// Validate a CA Secret's contents (`tls.crt`, `tls.key`, optional `ca.crt`) at `now`.
    pub fn load(
        tls_crt: Option<&[u8]>,
        tls_key: Option<&[u8]>,
        ca_crt: Option<&[u8]>,
        now: i64,
    ) -> Result<Self, Problem> {
        Self::load_rotating(tls_crt, tls_key, ca_crt, &Staged::default(), now)
    }

    /// Validate a CA Secret's contents, and the CA a managed rotation replaced: that one signs
    /// until `staged.written_at + staged.delay`. A previous pair that is unusable (expired,
    /// mismatched, garbage) is ignored: the Secret's own CA signs.
    pub fn load_rotating(
        tls_crt: Option<&[u8]>,
        tls_key: Option<&[u8]>,
        ca_crt: Option<&[u8]>,
        staged: &Staged<'_>,
        now: i64,
    ) -> Result<Self, Problem> {
        let newest = Loaded::load(tls_crt, tls_key, ca_crt, now)?;
        let previous = Loaded::load(staged.previous_crt, staged.previous_key, None, now)
            .ok()
            .filter(|p| p.ca.der != newest.ca.der);
        let Some(previous) = previous else {
            return Ok(CaSigner {
                signing: newest,
                other: None,
                other_is_next: false,
                activates_at: None,
                crl: None,
            });
        };
        // Without the time it was written, the new CA is taken as published long ago.
        let activates_at = staged
            .written_at
            .map_or(now, |w| w.saturating_add(staged.delay));
        let (signing, other, other_is_next) = if now < activates_at {
            (previous, newest, true)
        } else {
            (newest, previous, false)
        };
        Ok(CaSigner {
            signing,
            other: Some(other),
            other_is_next,
            activates_at: Some(activates_at),
            crl: None,
        })
    }

    /// What relying parties should trust for this CA's leaves: the CA and its intermediates,
    /// then the root; during a rotation, the other CA's too.
    pub fn ca_certificates(&self) -> Vec<String> {
        let mut pems = self.signing.ca_certificates();
        for pem in self.other.iter().flat_map(Loaded::ca_certificates) {
            if !pems.contains(&pem) {
                pems.push(pem);
            }
        }
        pems
    }

    /// The CA that signs now.
    pub fn signing_ca(&self) -> &CertInfo {
        &self.signing.ca
    }

    /// The renewed CA that signs from [`Self::activates_at`], while it is published first.
    pub fn next_ca(&self) -> Option<&CertInfo> {
        self.other
            .as_ref()
            .filter(|_| self.other_is_next)
            .map(|o| &o.ca)
    }

    /// The CA a managed rotation replaced, still trusted while leaves move off it.
    pub fn previous_ca(&self) -> Option<&CertInfo> {
        self.other
            .as_ref()
            .filter(|_| !self.other_is_next)
            .map(|o| &o.ca)
    }

    pub fn activates_at(&self) -> Option<i64> {
        self.activates_at
    }

    pub fn not_after(&self) -> i64 {
        self.signing.ca.not_after
    }

    /// Sign the CSR with the CA key. The CSR's signature is verified (proof of possession); the
    /// certificate's contents come from the request's parameters, not from the CSR's claims.
    pub fn sign(&self, request: &SignRequest, now: i64) -> Result<SignedChain, Problem> {
        self.signing.sign(request, now)
    }

    /// Write these CRL distribution points and caIssuers URLs into every leaf signed.
    fn publish_at(
        &mut self,
        crl_distribution_points: &[String],
        issuing_certificate_urls: &[String],
    ) {
        for loaded in std::iter::once(&mut self.signing).chain(self.other.as_mut()) {
            loaded.crl_distribution_points = crl_distribution_points.to_vec();
            loaded.issuing_certificate_urls = issuing_certificate_urls.to_vec();
        }
    }

    /// Sign a bare public key (a PodCertificateRequest's): see [`Loaded::sign_public_key`].
    pub fn sign_public_key(
        &self,
        spki_der: &[u8],
        params: rcgen::CertificateParams,
        duration: std::time::Duration,
        now: i64,
    ) -> Result<SignedChain, Problem> {
        self.signing
            .sign_public_key(spki_der, params, duration, now)
    }

    /// SHA-256 (hex) of the CA certificate: what a certificate's history records, so a
    /// revocation goes to the CA that signed it.
    pub fn fingerprint(&self) -> String {
        inspect::fingerprint(&self.signing.ca.der)
    }

    /// Add `serial` to this issuer's CRL and publish it. A certificate signed by another CA
    /// (the CA Secret changed since) cannot be revoked by this one's CRL.
    pub async fn revoke(
        &self,
        serial: &str,
        reason: RevocationReason,
        ca_fingerprint: Option<&str>,
        now: i64,
    ) -> Result<(), Problem> {
        if let Some(fp) = ca_fingerprint
            && fp != self.fingerprint()
        {
            // A leaf of the CA a rotation (or an out-of-band change) replaced: that CA's trust
            // ends when it leaves the bundles; this CA's CRL cannot list it.
            return Err(Problem::new(
                Reason::RevocationNotSupported,
                format!(
                    "serial {serial} was signed by another CA (SHA-256 {fp}) than the issuer's current one ({:?}): its CRL cannot list it; that CA stops being trusted when it leaves the trust bundles",
                    self.signing.ca.subject
                ),
            ));
        }
        let entry = crl::Entry {
            serial: crl::serial_bytes(serial)
                .map_err(|e| Problem::new(Reason::RevocationFailed, e))?,
            revoked_at: now,
            reason: Some(reason),
        };
        let (target, publisher) = self.crl_target()?;
        publisher
            .revoke(target, &self.signing.issuer, entry, now)
            .await?;
        Ok(())
    }

    /// Keep this issuer's CRL from its nextUpdate; create it when leaves name it (else the
    /// first revocation does). None: there is no CRL (nothing revoked, no distribution point).
    pub async fn publish_crl(&self, now: i64) -> Result<Option<crl::Published>, Problem> {
        let (target, publisher) = self.crl_target()?;
        let create = !self.signing.crl_distribution_points.is_empty();
        publisher
            .refresh(target, &self.signing.issuer, now, create)
            .await
    }

    fn crl_target(&self) -> Result<(&CrlTarget, &CrlPublisher), Problem> {
        self.crl
            .as_ref()
            .map(|(t, p)| (t, p.as_ref()))
            .ok_or_else(|| Problem::new(Reason::InternalError, "the CA issuer has no CRL target"))
    }
}

impl Loaded {
    fn load(
        tls_crt: Option<&[u8]>,
        tls_key: Option<&[u8]>,
        ca_crt: Option<&[u8]>,
        now: i64,
    ) -> Result<Self, Problem> {
        let invalid = |m: String| Problem::new(Reason::CaSecretInvalid, m);
        let tls_crt = tls_crt
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid("CA Secret has no tls.crt".into()))?;
        let tls_key = tls_key
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid("CA Secret has no tls.key".into()))?;
        let chain =
            inspect::parse_chain(tls_crt).map_err(|e| invalid(format!("CA tls.crt: {e}")))?;
        let key = std::str::from_utf8(tls_key)
            .ok()
            .and_then(|k| PrivateKey::from_pem(k).ok())
            .ok_or_else(|| invalid("CA tls.key is not a PEM private key".into()))?;
        let ca = chain[0].clone();
        if !ca.is_ca {
            return Err(Problem::new(
                Reason::NotACa,
                format!(
                    "certificate {:?} is not a CA (basicConstraints CA:FALSE)",
                    ca.subject
                ),
            ));
        }
        if key.public_key_info() != ca.public_key_info {
            return Err(Problem::new(
                Reason::CaKeyMismatch,
                "CA tls.key does not match the CA certificate",
            ));
        }
        if now >= ca.not_after {
            return Err(Problem::new(
                Reason::CaExpired,
                format!(
                    "CA certificate {:?} expired at {}",
                    ca.subject,
                    crate::time::rfc3339(ca.not_after)
                ),
            ));
        }
        let pem_of = |c: &CertInfo| crate::pki::pem_lf("CERTIFICATE", c.der.clone());
        let intermediates_pem = chain
            .iter()
            .filter(|c| c.subject != c.issuer)
            .map(pem_of)
            .collect();
        let explicit_root = ca_crt
            .filter(|b| !b.is_empty())
            .and_then(|b| inspect::parse_chain(b).ok())
            .and_then(|mut c| c.pop());
        let root = explicit_root.unwrap_or_else(|| chain[chain.len() - 1].clone());
        Ok(Loaded {
            root_pem: pem_of(&root),
            issuer: issuer(&ca, key)?,
            ca,
            intermediates_pem,
            crl_distribution_points: Vec::new(),
            issuing_certificate_urls: Vec::new(),
        })
    }

    fn ca_certificates(&self) -> Vec<String> {
        let mut pems: Vec<String> = pem::parse_many(&self.intermediates_pem)
            .unwrap_or_default()
            .into_iter()
            .map(|b| crate::pki::pem_lf("CERTIFICATE", b.contents().to_vec()))
            .collect();
        if !pems.contains(&self.root_pem) {
            pems.push(self.root_pem.clone());
        }
        pems
    }

    fn sign(&self, request: &SignRequest, now: i64) -> Result<SignedChain, Problem> {
        let failed =
            |e: String| Problem::new(Reason::SigningFailed, format!("CA signing failed: {e}"));
        let public_key = verified_public_key(&request.csr_pem).map_err(failed)?;
        let mut params = request.params.clone();
        (params.not_before, params.not_after) =
            super::validity(now, request.duration, Some(&self.ca)).map_err(failed)?;
        self.sign_key(&public_key, params)
    }

    /// Sign a certificate for a public key given without a CSR (PKIX, DER): a
    /// PodCertificateRequest, whose proof of possession the API server checked at creation.
    /// The lifetime is exactly `duration` (backdated like every certificate, so notAfter is
    /// that much earlier), within the CA's validity: Kubernetes refuses a pod certificate
    /// living longer than the request's maxExpirationSeconds.
    fn sign_public_key(
        &self,
        spki_der: &[u8],
        mut params: rcgen::CertificateParams,
        duration: std::time::Duration,
        now: i64,
    ) -> Result<SignedChain, Problem> {
        let failed =
            |e: String| Problem::new(Reason::SigningFailed, format!("CA signing failed: {e}"));
        let public_key = SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|e| failed(format!("public key: {e}")))?;
        let (not_before, _) = super::validity(now, duration, Some(&self.ca)).map_err(failed)?;
        let lifetime = time::Duration::try_from(duration).map_err(|e| failed(e.to_string()))?;
        let ca_end = time::OffsetDateTime::from_unix_timestamp(self.ca.not_after)
            .map_err(|e| failed(e.to_string()))?;
        params.not_before = not_before;
        params.not_after = not_before.saturating_add(lifetime).min(ca_end);
        self.sign_key(&public_key, params)
    }

    /// Sign `params` (its validity window set) for `public_key`.
    fn sign_key(
        &self,
        public_key: &SubjectPublicKeyInfo,
        mut params: rcgen::CertificateParams,
    ) -> Result<SignedChain, Problem> {
        let failed =
            |e: String| Problem::new(Reason::SigningFailed, format!("CA signing failed: {e}"));
        params.serial_number = Some(super::random_serial());
        // Chain building needs the authority key identifier of the signing CA.
        params.use_authority_key_identifier_extension = true;
        if !self.crl_distribution_points.is_empty() {
            params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
                uris: self.crl_distribution_points.clone(),
            }];
        }
        if !self.issuing_certificate_urls.is_empty() {
            params
                .custom_extensions
                .push(authority_info_access(&self.issuing_certificate_urls));
        }
        let leaf = params
            .signed_by(public_key, &self.issuer)
            .map_err(|e| failed(e.to_string()))?;
        Ok(SignedChain {
            chain_pem: format!("{}{}", leaf.pem(), self.intermediates_pem),
            ca_pem: self.root_pem.clone(),
        })
    }
}

/// The Authority Information Access extension (RFC 5280 4.2.2.1) with one caIssuers
/// access description per URL; rcgen has no builder for it.
fn authority_info_access(urls: &[String]) -> rcgen::CustomExtension {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }
    // id-ad-caIssuers, 1.3.6.1.5.5.7.48.2
    const CA_ISSUERS: [u8; 8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02];
    let descriptions: Vec<u8> = urls
        .iter()
        .flat_map(|url| {
            let mut inner = tlv(0x06, &CA_ISSUERS);
            // uniformResourceIdentifier [6] IA5String, implicitly tagged.
            inner.extend(tlv(0x86, url.as_bytes()));
            tlv(0x30, &inner)
        })
        .collect();
    rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], tlv(0x30, &descriptions))
}

/// The CSR's public key, once the CSR's signature verifies with it.
fn verified_public_key(csr_pem: &str) -> Result<SubjectPublicKeyInfo, String> {
    let der = pem::parse(csr_pem)
        .map_err(|e| format!("invalid CSR: {e}"))?
        .into_contents();
    let (_, csr) =
        X509CertificationRequest::from_der(&der).map_err(|e| format!("invalid CSR: {e}"))?;
    verify_csr_signature(&csr)?;
    SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw)
        .map_err(|e| format!("CSR public key: {e}"))
}

/// x509-parser (which rcgen's CSR parser verifies with) knows every signature certsmith's keys
/// make but ECDSA with SHA-512, the one of P-521 keys, so rcgen refused every P-521 request:
/// that one is verified with aws-lc-rs.
fn verify_csr_signature(csr: &X509CertificationRequest<'_>) -> Result<(), String> {
    use aws_lc_rs::signature::{ECDSA_P521_SHA512_ASN1, UnparsedPublicKey};
    use x509_parser::error::X509Error;
    use x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA512;
    let info = &csr.certification_request_info;
    match csr.verify_signature() {
        Ok(()) => Ok(()),
        Err(X509Error::SignatureUnsupportedAlgorithm)
            if csr.signature_algorithm.algorithm == OID_SIG_ECDSA_WITH_SHA512 =>
        {
            UnparsedPublicKey::new(
                &ECDSA_P521_SHA512_ASN1,
                &info.subject_pki.subject_public_key.data,
            )
            .verify(info.raw, &csr.signature_value.data)
            .map_err(|_| "invalid CSR: its signature does not verify".to_string())
        }
        Err(e) => Err(format!("invalid CSR: {e}")),
    }
}

/// The rcgen issuer that signs with this CA. Built at load, so a CA certificate rcgen cannot
/// sign with makes the issuer NotReady with the reason, instead of Ready while every issuance
/// fails.
fn issuer(ca: &CertInfo, key: PrivateKey) -> Result<Issuer<'static, PrivateKey>, Problem> {
    let cannot_sign = |why: String| {
        Problem::new(
            Reason::CaSecretInvalid,
            format!("CA certificate {:?} cannot sign: {why}", ca.subject),
        )
    };
    // rcgen names this case only "Could not parse certificate"; say what it is.
    if has_multi_valued_rdn(&ca.der) {
        return Err(cannot_sign(
            "its subject has a multi-valued RDN (attributes joined by '+'), which cannot be \
             used as an issuer name"
                .into(),
        ));
    }
    Issuer::from_ca_cert_der(&ca.der.as_slice().into(), key).map_err(|e| cannot_sign(e.to_string()))
}

/// Whether a certificate's subject has a relative distinguished name with more than one
/// attribute, such as `CN=a+O=b`.
fn has_multi_valued_rdn(der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(der)
        .is_ok_and(|(_, cert)| cert.subject().iter().any(|rdn| rdn.iter().count() > 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CertificateSpec, KeyAlgorithm, KeyEncoding};
    use crate::issuer::selfsigned;
    use crate::pki::request::sign_request;

    const T0: i64 = 1_800_000_000;

    fn spec(json: serde_json::Value) -> CertificateSpec {
        let mut base = serde_json::json!({"secretName": "s", "issuerRef": {"name": "i"}});
        for (k, v) in json.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    /// A self-signed certificate for `spec` and its key, as PEM.
    fn self_signed(spec: &CertificateSpec, at: i64) -> (String, String) {
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let signed = selfsigned::sign(&sign_request(spec, &key).unwrap(), &key, at).unwrap();
        (signed.chain_pem, key.to_pem(KeyEncoding::Pkcs8).unwrap())
    }

    fn load(crt: &str, key: &str, now: i64) -> Result<CaSigner, Problem> {
        CaSigner::load(Some(crt.as_bytes()), Some(key.as_bytes()), None, now)
    }

    #[test]
    fn signs_a_csr_capped_at_the_ca_expiry_with_a_chain_to_the_root() {
        let (crt, key) = self_signed(
            &spec(serde_json::json!({"commonName": "root", "isCA": true, "duration": "48h"})),
            T0,
        );
        let ca = load(&crt, &key, T0 + 10).unwrap();
        let leaf_spec = spec(serde_json::json!({"dnsNames": ["a.example"], "duration": "72h"}));
        let leaf_key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let signed = ca
            .sign(&sign_request(&leaf_spec, &leaf_key).unwrap(), T0 + 10)
            .unwrap();
        let chain = inspect::parse_chain(signed.chain_pem.as_bytes()).unwrap();
        assert_eq!(
            chain.len(),
            1,
            "a self-signed root is not repeated in tls.crt"
        );
        assert_eq!(chain[0].public_key_info, leaf_key.public_key_info());
        assert_eq!(
            chain[0].not_after,
            T0 + 48 * 3600,
            "capped at the CA's notAfter"
        );
        assert_eq!(signed.ca_pem.trim(), crt.trim());
    }

    /// Pod certificates: the node's public key only, every key type Kubernetes allows; the
    /// lifetime is exactly the one asked (the API server refuses one longer than the
    /// request's maxExpirationSeconds), and still capped at the CA's notAfter.
    #[test]
    fn signs_a_bare_public_key_for_exactly_the_lifetime_asked() {
        let (crt, key) = self_signed(
            &spec(serde_json::json!({"commonName": "root", "isCA": true, "duration": "48h"})),
            T0,
        );
        let ca = load(&crt, &key, T0).unwrap();
        let leaf_spec = spec(serde_json::json!({"uris": ["spiffe://td/ns/a/sa/b"]}));
        for (algorithm, size) in [
            (KeyAlgorithm::Ecdsa, 256),
            (KeyAlgorithm::Ecdsa, 384),
            (KeyAlgorithm::Ecdsa, 521),
            (KeyAlgorithm::Rsa, 3072),
            (KeyAlgorithm::Ed25519, 0),
        ] {
            let node_key = PrivateKey::generate(algorithm, size).unwrap();
            let params = crate::pki::request::certificate_params(&leaf_spec).unwrap();
            let signed = ca
                .sign_public_key(
                    &node_key.public_key_info(),
                    params,
                    std::time::Duration::from_secs(3600),
                    T0 + 100,
                )
                .unwrap();
            let leaf = inspect::parse_chain(signed.chain_pem.as_bytes())
                .unwrap()
                .remove(0);
            assert_eq!(
                leaf.public_key_info,
                node_key.public_key_info(),
                "{algorithm:?}"
            );
            assert_eq!(leaf.not_after - leaf.not_before, 3600, "{algorithm:?}");
            assert!(leaf.not_before < T0 + 100, "backdated");
        }
        let params = crate::pki::request::certificate_params(&leaf_spec).unwrap();
        let node_key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let late = ca
            .sign_public_key(
                &node_key.public_key_info(),
                params,
                std::time::Duration::from_secs(86_400),
                T0 + 40 * 3600,
            )
            .unwrap();
        let leaf = inspect::parse_chain(late.chain_pem.as_bytes())
            .unwrap()
            .remove(0);
        assert_eq!(
            leaf.not_after,
            T0 + 48 * 3600,
            "capped at the CA's notAfter"
        );
        let garbage = ca.sign_public_key(
            b"not a key",
            crate::pki::request::certificate_params(&leaf_spec).unwrap(),
            std::time::Duration::from_secs(3600),
            T0,
        );
        assert_eq!(
            garbage.map(|_| ()).map_err(|p| p.reason),
            Err(Reason::SigningFailed)
        );
    }

    fn sign_leaf(ca: &CaSigner, spec: &CertificateSpec, now: i64) -> CertInfo {
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let signed = ca.sign(&sign_request(spec, &key).unwrap(), now).unwrap();
        inspect::parse_chain(signed.chain_pem.as_bytes())
            .unwrap()
            .remove(0)
    }

    /// Every key a Certificate can ask for (RSA is the same code at every size).
    const KEY_TYPES: [(KeyAlgorithm, u32); 5] = [
        (KeyAlgorithm::Ecdsa, 256),
        (KeyAlgorithm::Ecdsa, 384),
        (KeyAlgorithm::Ecdsa, 521),
        (KeyAlgorithm::Rsa, 2048),
        (KeyAlgorithm::Ed25519, 0),
    ];

    #[test]
    fn signs_a_csr_of_every_key_type() {
        let (crt, key) = self_signed(
            &spec(serde_json::json!({"commonName": "root", "isCA": true})),
            T0,
        );
        let ca = load(&crt, &key, T0).unwrap();
        let leaf_spec = spec(serde_json::json!({"dnsNames": ["a.example"]}));
        for (algorithm, size) in KEY_TYPES {
            let leaf_key = PrivateKey::generate(algorithm, size).unwrap();
            let signed = ca.sign(&sign_request(&leaf_spec, &leaf_key).unwrap(), T0);
            let leaf = inspect::parse_chain(signed.unwrap().chain_pem.as_bytes()).unwrap();
            assert_eq!(leaf[0].public_key_info, leaf_key.public_key_info());
        }
    }

    /// Proof of possession: a CSR whose signature does not verify is refused, whatever the key.
    #[test]
    fn refuses_a_csr_whose_signature_does_not_verify() {
        let (crt, key) = self_signed(
            &spec(serde_json::json!({"commonName": "root", "isCA": true})),
            T0,
        );
        let ca = load(&crt, &key, T0).unwrap();
        let leaf_spec = spec(serde_json::json!({"dnsNames": ["a.example"]}));
        for (algorithm, size) in KEY_TYPES {
            let leaf_key = PrivateKey::generate(algorithm, size).unwrap();
            let mut request = sign_request(&leaf_spec, &leaf_key).unwrap();
            let mut der = pem::parse(&request.csr_pem).unwrap().into_contents();
            // The last byte of the DER is the last byte of the signature.
            if let Some(last) = der.last_mut() {
                *last ^= 0x01;
            }
            request.csr_pem = crate::pki::pem_lf("CERTIFICATE REQUEST", der);
            let err = ca.sign(&request, T0).map(|_| ()).unwrap_err();
            assert_eq!(err.reason, Reason::SigningFailed, "{algorithm:?} {size}");
        }
    }

    #[test]
    fn backdates_not_before_by_the_clock_skew_but_never_before_the_ca() {
        let (crt, key) = self_signed(
            &spec(serde_json::json!({"commonName": "root", "isCA": true, "duration": "48h"})),
            T0 - 3600,
        );
        let ca = load(&crt, &key, T0).unwrap();
        let leaf_spec = spec(serde_json::json!({"dnsNames": ["a.example"], "duration": "24h"}));
        let leaf = sign_leaf(&ca, &leaf_spec, T0);
        assert_eq!(leaf.not_before, T0 - 30, "backdated by the documented skew");
        assert_eq!(leaf.not_after, T0 + 86400, "the duration counts from now");
        // Right after the CA was made, the leaf starts with the CA, not before it.
        let ca_not_before = inspect::parse_chain(crt.as_bytes()).unwrap()[0].not_before;
        let early = sign_leaf(&ca, &leaf_spec, ca_not_before + 10);
        assert_eq!(early.not_before, ca_not_before);
        assert_eq!(early.not_after, ca_not_before + 10 + 86400);
        // A short lifetime is backdated less (see `NOT_BEFORE_SKEW_DIVISOR`).
        let short = spec(serde_json::json!({"dnsNames": ["a.example"], "duration": "5m"}));
        assert_eq!(sign_leaf(&ca, &short, T0).not_before, T0 - 1);
    }

    /// `crt` (a self-signed certificate of `key`) with its subject and issuer `CN=a+O=b`: one
    /// RDN holding two attributes, which rcgen cannot use as an issuer name. Re-signed with
    /// `key`, so it is a valid CA certificate that only the issuer name sets apart.
    fn with_multi_valued_rdn(crt: &str, key: &PrivateKey) -> String {
        use pkcs8::der::asn1::{AnyRef, BitString};
        use pkcs8::der::{Decode, Encode, Reader, SliceReader, Tag};
        let der = pem::parse(crt).unwrap().into_contents();
        let elements = |bytes: &[u8]| {
            let mut reader = SliceReader::new(bytes).unwrap();
            let mut out = Vec::new();
            while !reader.is_finished() {
                out.push(reader.decode::<AnyRef<'_>>().unwrap().to_der().unwrap());
            }
            out
        };
        let sequence = |parts: &[Vec<u8>]| {
            pkcs8::der::Any::new(Tag::Sequence, parts.concat())
                .unwrap()
                .to_der()
                .unwrap()
        };
        let certificate = elements(AnyRef::from_der(&der).unwrap().value());
        let mut tbs = elements(AnyRef::from_der(&certificate[0]).unwrap().value());
        // SEQUENCE { SET { CN=a, O=b } }: the attributes in DER (sorted) order.
        let name: &[u8] = &[
            0x30, 0x16, 0x31, 0x14, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x01, b'a',
            0x30, 0x08, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x01, b'b',
        ];
        // TBSCertificate: version, serial, signature, issuer (3), validity, subject (5), ...
        tbs[3] = name.to_vec();
        tbs[5] = name.to_vec();
        let tbs = sequence(&tbs);
        let signature = rcgen::SigningKey::sign(key.pair(), &tbs).unwrap();
        let bits = BitString::from_bytes(&signature).unwrap().to_der().unwrap();
        let der = sequence(&[tbs, certificate[1].clone(), bits]);
        crate::pki::pem_lf("CERTIFICATE", der)
    }

    /// Readiness builds the signer: a CA that loads but cannot sign is refused at load.
    #[test]
    fn a_ca_whose_name_cannot_be_an_issuer_is_refused_at_load() {
        let key = PrivateKey::generate(KeyAlgorithm::Ecdsa, 256).unwrap();
        let root_spec = spec(serde_json::json!({"commonName": "a", "isCA": true}));
        let signed = selfsigned::sign(&sign_request(&root_spec, &key).unwrap(), &key, T0).unwrap();
        let crt = with_multi_valued_rdn(&signed.chain_pem, &key);
        let key_pem = key.to_pem(KeyEncoding::Pkcs8).unwrap();
        assert!(
            inspect::parse_chain(crt.as_bytes()).unwrap()[0].is_ca,
            "a well-formed CA certificate"
        );
        let err = load(&crt, &key_pem, T0 + 10).map(|_| ()).unwrap_err();
        assert_eq!(err.reason, Reason::CaSecretInvalid);
        assert!(err.message.contains("multi-valued"), "{}", err.message);
    }

    /// A managed rotation: the previous CA signs until the new one has been published for the
    /// delay, both are published, and an unusable previous pair is ignored.
    #[test]
    fn the_previous_ca_signs_until_the_new_one_was_published_for_the_delay() {
        let root = spec(serde_json::json!({"commonName": "root", "isCA": true}));
        let (old_crt, old_key) = self_signed(&root, T0);
        let (new_crt, new_key) = self_signed(&root, T0 + 100);
        let staged = Staged {
            previous_crt: Some(old_crt.as_bytes()),
            previous_key: Some(old_key.as_bytes()),
            written_at: Some(T0 + 100),
            delay: 300,
        };
        let load = |now| {
            CaSigner::load_rotating(
                Some(new_crt.as_bytes()),
                Some(new_key.as_bytes()),
                None,
                &staged,
                now,
            )
            .unwrap()
        };
        let first = |pem: &str| inspect::parse_chain(pem.as_bytes()).unwrap().remove(0);
        let (old, new) = (first(&old_crt), first(&new_crt));
        let leaf_spec = spec(serde_json::json!({"dnsNames": ["a.example"]}));
        let publishing = load(T0 + 399);
        assert_eq!(publishing.signing_ca(), &old);
        assert_eq!(publishing.next_ca(), Some(&new));
        assert_eq!(publishing.activates_at(), Some(T0 + 400));
        assert!(inspect::issued_by(
            &sign_leaf(&publishing, &leaf_spec, T0 + 399),
            &old
        ));
        assert_eq!(publishing.ca_certificates().len(), 2, "both are published");
        let active = load(T0 + 400);
        assert_eq!(active.signing_ca(), &new);
        assert_eq!(active.previous_ca(), Some(&old));
        assert!(inspect::issued_by(
            &sign_leaf(&active, &leaf_spec, T0 + 400),
            &new
        ));
        assert_eq!(active.ca_certificates().len(), 2);
        // A previous key that does not match its certificate is no previous CA.
        let broken = Staged {
            previous_key: Some(new_key.as_bytes()),
            ..staged
        };
        let signer = CaSigner::load_rotating(
            Some(new_crt.as_bytes()),
            Some(new_key.as_bytes()),
            None,
            &broken,
            T0 + 200,
        )
        .unwrap();
        assert_eq!(signer.signing_ca(), &new);
        assert_eq!(signer.ca_certificates().len(), 1);
    }

    #[test]
    fn names_what_is_wrong_with_a_ca_secret() {
        let (root, root_key) = self_signed(
            &spec(serde_json::json!({"commonName": "root", "isCA": true, "duration": "1h"})),
            T0,
        );
        let (leaf, leaf_key) = self_signed(&spec(serde_json::json!({"commonName": "leaf"})), T0);
        let reason = |r: Result<CaSigner, Problem>| r.map(|_| ()).unwrap_err().reason;
        assert_eq!(reason(load(&leaf, &leaf_key, T0)), Reason::NotACa);
        assert_eq!(reason(load(&root, &leaf_key, T0)), Reason::CaKeyMismatch);
        assert_eq!(reason(load(&root, &root_key, T0 + 7200)), Reason::CaExpired);
        assert_eq!(
            reason(CaSigner::load(None, Some(root_key.as_bytes()), None, T0)),
            Reason::CaSecretInvalid
        );
        assert_eq!(
            reason(load("garbage", &root_key, T0)),
            Reason::CaSecretInvalid
        );
        let err = load(
            &root,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            T0,
        )
        .unwrap_err();
        assert!(
            !err.message.contains("AAAA"),
            "key material never reaches messages"
        );
    }
}
