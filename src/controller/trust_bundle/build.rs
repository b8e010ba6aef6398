//! A trust bundle from its sources' PEM (pure): every source parsed (anything but valid PEM
//! certificates is an error naming the source), the certificates deduplicated, the expired
//! dropped at `now`, sorted by subject then SHA-256 fingerprint, and encoded as PEM without
//! headers or comments, LF line endings.
//!
//! Decisions:
//! - **Order** is by subject, then fingerprint: deterministic whatever the sources' order, and
//!   the certificates of one CA name (an old and a new root during a rotation) sit together.
//! - **Expired** means `now` past notAfter. A certificate not valid *yet* is kept: publishing
//!   a next CA before it is used is the point of a trust bundle.
//! - **Non-CA certificates** are kept: pinning a self-signed server certificate is a
//!   legitimate trust bundle. They are left out of a ClusterTrustBundle only, whose API
//!   accepts CA certificates only ([`Bundle::ca_pem`]).
//! - Any PEM block other than `CERTIFICATE` (a private key pointed at by mistake) makes the
//!   source invalid: it is reported by type and position, never by content, and never copied.

use std::collections::BTreeMap;

use crate::pki::inspect;
use crate::reason::{Problem, Reason};

/// One certificate of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint: String,
    pub subject: String,
    /// Unix seconds.
    pub not_after: i64,
    pub is_ca: bool,
    pub der: Vec<u8>,
}

/// The bundle to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// Unique, none expired, sorted by subject then fingerprint.
    pub certificates: Vec<Entry>,
    /// How many certificates (counted once each) were dropped as expired.
    pub expired: usize,
}

impl Bundle {
    /// Every certificate, as PEM.
    pub fn pem(&self) -> String {
        encode(self.certificates.iter())
    }

    /// The CA certificates only (what a ClusterTrustBundle accepts).
    pub fn ca_pem(&self) -> String {
        encode(self.certificates.iter().filter(|c| c.is_ca))
    }

    /// How many certificates are not CAs.
    pub fn non_ca(&self) -> usize {
        self.certificates.iter().filter(|c| !c.is_ca).count()
    }

    /// The earliest notAfter (Unix seconds), when the bundle next loses a certificate.
    pub fn earliest_expiry(&self) -> Option<i64> {
        self.certificates.iter().map(|c| c.not_after).min()
    }
}

fn encode<'a>(entries: impl Iterator<Item = &'a Entry>) -> String {
    entries
        .map(|e| crate::pki::pem_lf("CERTIFICATE", e.der.clone()))
        .collect()
}

pub use crate::pki::inspect::fingerprint;

/// The certificates of one source. `name` says which source in messages.
pub fn parse_source(name: &str, text: &str) -> Result<Vec<Entry>, Problem> {
    let invalid = |m: String| Problem::new(Reason::SourceInvalid, format!("{name}: {m}"));
    let blocks = pem::parse_many(text).map_err(|e| invalid(format!("not PEM: {e}")))?;
    // pem skips what it cannot recognize as a block; a block cut short would vanish silently.
    let begins = text.matches("-----BEGIN ").count();
    if begins != blocks.len() {
        return Err(invalid(format!(
            "{begins} PEM blocks begin but {} are well-formed",
            blocks.len()
        )));
    }
    let mut entries = Vec::with_capacity(blocks.len());
    for (i, block) in blocks.iter().enumerate() {
        if block.tag() != "CERTIFICATE" {
            return Err(invalid(format!(
                "PEM block {} is a {:?}, not a CERTIFICATE",
                i + 1,
                block.tag()
            )));
        }
        let der = block.contents();
        let info =
            inspect::parse_der(der).map_err(|e| invalid(format!("PEM block {}: {e}", i + 1)))?;
        entries.push(Entry {
            fingerprint: fingerprint(der),
            subject: info.subject,
            not_after: info.not_after,
            is_ca: info.is_ca,
            der: der.to_vec(),
        });
    }
    if entries.is_empty() {
        return Err(invalid("no PEM certificate".into()));
    }
    Ok(entries)
}

/// Build the bundle from every source's text (`(name, PEM)`) at `now`. Every source is
/// checked, and every invalid one named in the error; a bundle left with no certificate is
/// `BundleEmpty`.
pub fn build(sources: &[(String, String)], now: i64) -> Result<Bundle, Problem> {
    let mut unique: BTreeMap<String, Entry> = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, text) in sources {
        match parse_source(name, text) {
            Ok(entries) => {
                for e in entries {
                    unique.entry(e.fingerprint.clone()).or_insert(e);
                }
            }
            Err(p) => failures.push(p.message),
        }
    }
    if !failures.is_empty() {
        return Err(Problem::new(Reason::SourceInvalid, failures.join("; ")));
    }
    let total = unique.len();
    let mut certificates: Vec<Entry> = unique
        .into_values()
        .filter(|e| now <= e.not_after)
        .collect();
    let expired = total - certificates.len();
    if certificates.is_empty() {
        return Err(Problem::new(
            Reason::BundleEmpty,
            format!("no certificate left to publish: all {expired} expired"),
        ));
    }
    certificates.sort_by(|a, b| (&a.subject, &a.fingerprint).cmp(&(&b.subject, &b.fingerprint)));
    Ok(Bundle {
        certificates,
        expired,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    /// A self-signed certificate named `cn`, valid from a day before `not_after` to it.
    fn cert(cn: &str, not_after: i64, ca: bool) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.not_before = time::OffsetDateTime::from_unix_timestamp(not_after - 86_400).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
        if ca {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        params.self_signed(&key).unwrap().pem()
    }

    fn sources(texts: &[&str]) -> Vec<(String, String)> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("sources[{i}]"), t.to_string()))
            .collect()
    }

    fn subjects(bundle: &Bundle) -> Vec<&str> {
        bundle
            .certificates
            .iter()
            .map(|c| c.subject.as_str())
            .collect()
    }

    #[test]
    fn the_output_does_not_depend_on_the_order_of_sources_or_certificates() {
        let (a, b, c) = (
            cert("alpha", NOW + 1000, true),
            cert("bravo", NOW + 1000, true),
            cert("charlie", NOW + 1000, true),
        );
        let one = build(&sources(&[&format!("{c}{a}"), &b]), NOW).unwrap();
        let two = build(&sources(&[&b, &a, &c]), NOW).unwrap();
        assert_eq!(one.pem(), two.pem());
        assert_eq!(subjects(&one), ["CN=alpha", "CN=bravo", "CN=charlie"]);
    }

    #[test]
    fn a_subject_shared_by_two_certificates_orders_them_by_fingerprint() {
        let (old, new) = (cert("root", NOW + 10, true), cert("root", NOW + 9000, true));
        let bundle = build(&sources(&[&new, &old]), NOW).unwrap();
        let prints: Vec<&str> = bundle
            .certificates
            .iter()
            .map(|c| c.fingerprint.as_str())
            .collect();
        let mut sorted = prints.clone();
        sorted.sort_unstable();
        assert_eq!(prints, sorted);
        assert_eq!(bundle.certificates.len(), 2);
    }

    #[test]
    fn duplicates_within_and_across_sources_appear_once() {
        let (a, b) = (cert("a", NOW + 1000, true), cert("b", NOW + 1000, true));
        let bundle = build(&sources(&[&format!("{a}{a}"), &format!("{b}{a}")]), NOW).unwrap();
        assert_eq!(subjects(&bundle), ["CN=a", "CN=b"]);
        assert_eq!(
            bundle.pem().matches("-----BEGIN CERTIFICATE-----").count(),
            2
        );
    }

    #[test]
    fn expired_certificates_are_dropped_at_now_and_counted() {
        let (gone, live) = (cert("gone", NOW - 1, true), cert("live", NOW, true));
        let bundle = build(&sources(&[&gone, &live]), NOW).unwrap();
        assert_eq!(
            subjects(&bundle),
            ["CN=live"],
            "valid through its notAfter second"
        );
        assert_eq!(bundle.expired, 1);
        assert_eq!(bundle.earliest_expiry(), Some(NOW));
        // One second later the other one is gone too, and nothing is left.
        let empty = build(&sources(&[&gone, &live]), NOW + 1).unwrap_err();
        assert_eq!(empty.reason, Reason::BundleEmpty);
        assert!(empty.message.contains("all 2 expired"), "{}", empty.message);
    }

    #[test]
    fn a_certificate_not_yet_valid_is_kept() {
        let next = cert("next", NOW + 10 * 86_400, true);
        let bundle = build(&sources(&[&next]), NOW).unwrap();
        assert_eq!(subjects(&bundle), ["CN=next"]);
    }

    #[test]
    fn the_pem_is_certificates_only_with_lf_and_no_comments() {
        let a = cert("a", NOW + 1000, true);
        let commented = format!(
            "# the team's root\r\nsubject=CN=a\r\n{}\r\ntrailing words\r\n",
            a.replace('\n', "\r\n")
        );
        let bundle = build(&sources(&[&commented]), NOW).unwrap();
        let pem = bundle.pem();
        assert!(!pem.contains('\r') && !pem.contains('#') && !pem.contains("words"));
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
        assert_eq!(pem.replace("\r\n", "\n"), a.replace("\r\n", "\n"));
    }

    #[test]
    fn non_ca_certificates_stay_in_the_bundle_but_not_in_its_ca_part() {
        let (root, pinned) = (
            cert("root", NOW + 1000, true),
            cert("pinned", NOW + 1000, false),
        );
        let bundle = build(&sources(&[&root, &pinned]), NOW).unwrap();
        assert_eq!(subjects(&bundle), ["CN=pinned", "CN=root"]);
        assert_eq!(bundle.non_ca(), 1);
        assert_eq!(
            bundle.ca_pem(),
            build(&sources(&[&root]), NOW).unwrap().pem()
        );
    }

    #[test]
    fn garbage_is_reported_with_the_source_named_and_never_quoted() {
        let good = cert("good", NOW + 1000, true);
        let key =
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0IGtleSBieXRlcw==\n-----END PRIVATE KEY-----\n";
        let not_der = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let cut = &good[..good.len() - 30];
        for (text, says) in [
            ("hello world", "no PEM certificate"),
            ("", "no PEM certificate"),
            (key, "is a \"PRIVATE KEY\", not a CERTIFICATE"),
            (not_der, "PEM block 1: not an X.509 certificate"),
            (cut, "1 PEM blocks begin but 0 are well-formed"),
        ] {
            let p = build(&sources(&[&good, text]), NOW).unwrap_err();
            assert_eq!(p.reason, Reason::SourceInvalid, "{text:?}");
            assert!(p.message.starts_with("sources[1]: "), "{}", p.message);
            assert!(p.message.contains(says), "{text:?}: {}", p.message);
            assert!(
                !p.message.contains("c2VjcmV0"),
                "the key's bytes are never quoted"
            );
        }
        // Every invalid source is named, not just the first.
        let p = build(&sources(&["junk", &good, key]), NOW).unwrap_err();
        assert!(
            p.message.contains("sources[0]") && p.message.contains("sources[2]"),
            "{}",
            p.message
        );
    }

    #[test]
    fn fingerprints_are_sha256_hex() {
        let a = cert("a", NOW + 1000, true);
        let der = pem::parse(&a).unwrap().into_contents();
        let bundle = build(&sources(&[&a]), NOW).unwrap();
        assert_eq!(bundle.certificates[0].fingerprint, fingerprint(&der));
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
