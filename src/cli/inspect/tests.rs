use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose, NameConstraints,
};

use super::*;

/// 2025-01-01, 2026-01-01, and a moment between them.
const START: i64 = 1_735_689_600;
const END: i64 = 1_767_225_600;
const NOW: i64 = 1_748_736_000;

fn params(cn: &str, sans: &[&str]) -> CertificateParams {
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.not_before = time::OffsetDateTime::from_unix_timestamp(START).unwrap();
    p.not_after = time::OffsetDateTime::from_unix_timestamp(END).unwrap();
    p
}

fn ca_params(cn: &str, path_len: Option<u8>) -> CertificateParams {
    let mut p = params(cn, &[]);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

fn root(cn: &str, path_len: Option<u8>) -> CertifiedIssuer<'static, KeyPair> {
    CertifiedIssuer::self_signed(ca_params(cn, path_len), KeyPair::generate().unwrap()).unwrap()
}

fn sub(
    p: CertificateParams,
    by: &CertifiedIssuer<'static, KeyPair>,
) -> CertifiedIssuer<'static, KeyPair> {
    CertifiedIssuer::signed_by(p, KeyPair::generate().unwrap(), by).unwrap()
}

/// A leaf for `sans` with the given extended key usages, signed by `by`: (tls.crt leaf PEM,
/// tls.key PEM).
fn leaf(
    sans: &[&str],
    eku: &[ExtendedKeyUsagePurpose],
    by: &CertifiedIssuer<'static, KeyPair>,
) -> (String, String) {
    let mut p = params("leaf", sans);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = eku.to_vec();
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, by).unwrap();
    (cert.pem(), key.serialize_pem())
}

const BOTH: &[ExtendedKeyUsagePurpose] = &[
    ExtendedKeyUsagePurpose::ServerAuth,
    ExtendedKeyUsagePurpose::ClientAuth,
];

fn line<'a>(report: &'a str, prefix: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{report}"))
}

#[test]
fn a_chain_through_an_intermediate_is_usable_both_ways() {
    let root = root("Root", Some(1));
    let int = sub(ca_params("Intermediate", Some(0)), &root);
    let (crt, key) = leaf(&["web.example"], BOTH, &int);
    let tls_crt = format!("{crt}{}", int.pem());
    let report = describe(
        tls_crt.as_bytes(),
        key.as_bytes(),
        root.pem().as_bytes(),
        NOW,
    );
    assert_eq!(
        line(&report, "Chain verifies"),
        "Chain verifies against ca.crt: yes (webpki, the verifier rustls uses)"
    );
    assert_eq!(
        line(&report, "Usable"),
        "Usable as mTLS server: yes, client: yes"
    );
    assert_eq!(line(&report, "CA:"), "CA:            no");
    assert_eq!(
        line(&report, "Usages:"),
        "Usages:        digital signature, server auth, client auth"
    );
    assert!(
        report.contains(
            "  1: CN=Intermediate  (CA, yes, path length 0; valid until 2026-01-01T00:00:00Z)"
        ),
        "{report}"
    );
    assert!(
        report.contains("note: as a server, for clients dialling DNS:web.example"),
        "{report}"
    );
    assert!(
        report.contains("Key matches certificate:      yes"),
        "{report}"
    );
}

#[test]
fn a_server_only_certificate_is_no_client() {
    let root = root("Root", None);
    let (crt, key) = leaf(
        &["web.example"],
        &[ExtendedKeyUsagePurpose::ServerAuth],
        &root,
    );
    let report = describe(crt.as_bytes(), key.as_bytes(), root.pem().as_bytes(), NOW);
    assert_eq!(
        line(&report, "Usable"),
        "Usable as mTLS server: yes, client: no, because its extended key usage does not include client auth (it has: server auth)"
    );
    // No extended key usage at all: any purpose, as rustls reads it.
    let (crt, key) = leaf(&["web.example"], &[], &root);
    let report = describe(crt.as_bytes(), key.as_bytes(), root.pem().as_bytes(), NOW);
    assert_eq!(
        line(&report, "Usable"),
        "Usable as mTLS server: yes, client: yes"
    );
}

#[test]
fn validity_is_judged_at_now_for_every_certificate() {
    let root = root("Root", None);
    let (crt, key) = leaf(&["web.example"], BOTH, &root);
    let later = END + 10;
    let report = describe(crt.as_bytes(), key.as_bytes(), root.pem().as_bytes(), later);
    assert_eq!(
        line(&report, "Chain verifies"),
        "Chain verifies against ca.crt: NO: CN=leaf expired at 2026-01-01T00:00:00Z"
    );
    assert_eq!(
        line(&report, "Usable"),
        "Usable as mTLS server: no, client: no, because CN=leaf expired at 2026-01-01T00:00:00Z"
    );
    let early = describe(
        crt.as_bytes(),
        key.as_bytes(),
        root.pem().as_bytes(),
        START - 10,
    );
    assert!(
        line(&early, "Usable")
            .ends_with("because CN=leaf is not valid before 2025-01-01T00:00:00Z"),
        "{early}"
    );
}

#[test]
fn basic_constraints_and_path_length_are_enforced() {
    // A CA certificate as the leaf.
    let root = root("Root", None);
    let report = describe(root.pem().as_bytes(), b"", root.pem().as_bytes(), NOW);
    assert!(
        line(&report, "Usable").ends_with("because it is a CA certificate (basicConstraints CA:TRUE), which TLS peers refuse as a leaf"),
        "{report}"
    );
    // An intermediate allowing no CA below it, and one anyway. (A trust anchor's own path
    // length webpki ignores, as RFC 5280 lets it: ca.crt is trusted as it is.)
    let int = sub(ca_params("Intermediate", Some(0)), &root);
    let below = sub(ca_params("Below", None), &int);
    let (crt, key) = leaf(&["web.example"], BOTH, &below);
    let tls_crt = format!("{crt}{}{}", below.pem(), int.pem());
    let report = describe(
        tls_crt.as_bytes(),
        key.as_bytes(),
        root.pem().as_bytes(),
        NOW,
    );
    assert_eq!(
        line(&report, "Chain verifies"),
        "Chain verifies against ca.crt: NO: the chain is longer than a CA's path length constraint allows"
    );
    // Signed by a certificate that is no CA.
    let mut p = params("Not a CA", &[]);
    p.is_ca = IsCa::ExplicitNoCa;
    let not_ca = sub(p, &root);
    let (crt, key) = leaf(&["web.example"], BOTH, &not_ca);
    let report = describe(
        format!("{crt}{}", not_ca.pem()).as_bytes(),
        key.as_bytes(),
        root.pem().as_bytes(),
        NOW,
    );
    assert!(
        line(&report, "Chain verifies").starts_with("Chain verifies against ca.crt: NO"),
        "{report}"
    );
}

fn other_root() -> CertifiedIssuer<'static, KeyPair> {
    root("Other Root", None)
}

#[test]
fn name_constraints_are_enforced() {
    let root = root("Root", None);
    let mut p = ca_params("Example Only", Some(0));
    p.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName("example.com".into())],
        excluded_subtrees: vec![],
    });
    let int = sub(p, &root);
    let (inside, key) = leaf(&["api.example.com"], BOTH, &int);
    let report = describe(
        format!("{inside}{}", int.pem()).as_bytes(),
        key.as_bytes(),
        root.pem().as_bytes(),
        NOW,
    );
    assert_eq!(
        line(&report, "Usable"),
        "Usable as mTLS server: yes, client: yes"
    );
    let (outside, key) = leaf(&["api.example.org"], BOTH, &int);
    let report = describe(
        format!("{outside}{}", int.pem()).as_bytes(),
        key.as_bytes(),
        root.pem().as_bytes(),
        NOW,
    );
    assert_eq!(
        line(&report, "Usable"),
        "Usable as mTLS server: no, client: no, because a name of the certificate lies outside a CA's name constraints"
    );
}

#[test]
fn the_trust_anchor_is_ca_crt_and_nothing_else() {
    let root = root("Root", None);
    let other = other_root();
    let (crt, key) = leaf(&["web.example"], BOTH, &root);
    let report = describe(crt.as_bytes(), key.as_bytes(), other.pem().as_bytes(), NOW);
    assert!(
        line(&report, "Chain verifies").starts_with("Chain verifies against ca.crt: NO: no path from tls.crt to a certificate in ca.crt: the issuer of the chain's last certificate (CN=Root) is not in ca.crt"),
        "{report}"
    );
    // Several anchors in ca.crt: the right one among them will do.
    let bundle = format!("{}{}", other.pem(), root.pem());
    let report = describe(crt.as_bytes(), key.as_bytes(), bundle.as_bytes(), NOW);
    assert_eq!(
        line(&report, "Usable"),
        "Usable as mTLS server: yes, client: yes"
    );
    let missing = describe(crt.as_bytes(), key.as_bytes(), b"", NOW);
    assert_eq!(
        line(&missing, "Usable"),
        "Usable as mTLS server: cannot tell, client: cannot tell, because there is no ca.crt to verify against"
    );
}

#[test]
fn a_self_signed_leaf_is_its_own_anchor() {
    // What certsmith's selfSigned issuer writes: the leaf is also ca.crt.
    let key = KeyPair::generate().unwrap();
    let mut p = params("web", &["web.example"]);
    p.extended_key_usages = BOTH.to_vec();
    let cert = p.self_signed(&key).unwrap();
    let report = describe(
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
        cert.pem().as_bytes(),
        NOW,
    );
    assert_eq!(
        line(&report, "Usable"),
        "Usable as mTLS server: yes, client: yes",
        "{report}"
    );
}

#[test]
fn a_key_that_does_not_match_makes_it_unusable() {
    let root = root("Root", None);
    let (crt, _) = leaf(&["web.example"], BOTH, &root);
    let (_, other_key) = leaf(&["web.example"], BOTH, &root);
    let report = describe(
        crt.as_bytes(),
        other_key.as_bytes(),
        root.pem().as_bytes(),
        NOW,
    );
    assert!(
        report.contains("Key matches certificate:      NO"),
        "{report}"
    );
    assert_eq!(
        line(&report, "Usable"),
        "Usable as mTLS server: no, client: no, because tls.key does not match the certificate"
    );
}

#[test]
fn a_spiffe_only_certificate_is_flagged_for_name_checking_clients() {
    let root = root("Root", None);
    let mut p = params("leaf", &[]);
    p.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://cluster.local/ns/a/sa/b".try_into().unwrap(),
    )];
    p.extended_key_usages = BOTH.to_vec();
    let key = KeyPair::generate().unwrap();
    let crt = p.signed_by(&key, &root).unwrap().pem();
    let key = key.serialize_pem();
    let report = describe(crt.as_bytes(), key.as_bytes(), root.pem().as_bytes(), NOW);
    assert_eq!(
        line(&report, "Usable"),
        "Usable as mTLS server: yes, client: yes"
    );
    assert!(report.contains("note: no DNS or IP name"), "{report}");
}

#[test]
fn unreadable_input_says_so() {
    assert_eq!(
        describe(b"garbage", b"", b"", NOW),
        "tls.crt: cannot be read: no PEM CERTIFICATE block\n"
    );
}
