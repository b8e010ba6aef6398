//! The AWS Private CA emulator runs the real root-CA flow and issues from a CSR.

use aws_sdk_acmpca::Client;
use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{
    Asn1Subject, CertificateAuthorityConfiguration, CertificateAuthorityStatus,
    CertificateAuthorityType, KeyAlgorithm, SigningAlgorithm, Validity, ValidityPeriodType,
};

use crate::support::{env, openssl_verify};

async fn client() -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(env("AWS_ENDPOINT_URL_ACM_PCA"))
        .load()
        .await;
    Client::new(&config)
}

fn validity(days: i64) -> Validity {
    Validity::builder()
        .value(days)
        .r#type(ValidityPeriodType::Days)
        .build()
        .expect("validity")
}

#[tokio::test]
async fn moto_activates_a_root_ca_and_issues_from_a_csr() {
    let pca = client().await;
    let subject = Asn1Subject::builder()
        .common_name("certsmith test root")
        .build();
    let config = CertificateAuthorityConfiguration::builder()
        .key_algorithm(KeyAlgorithm::EcPrime256v1)
        .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
        .subject(subject)
        .build()
        .expect("ca config");
    let created = pca
        .create_certificate_authority()
        .certificate_authority_configuration(config)
        .certificate_authority_type(CertificateAuthorityType::Root)
        .send()
        .await
        .expect("create CA");
    let ca_arn = created
        .certificate_authority_arn()
        .expect("ca arn")
        .to_string();

    // Root flow: sign the CA's own CSR with the root template, import it, and the CA is ACTIVE.
    let ca_csr = pca
        .get_certificate_authority_csr()
        .certificate_authority_arn(&ca_arn)
        .send()
        .await
        .expect("ca csr");
    let issued = pca
        .issue_certificate()
        .certificate_authority_arn(&ca_arn)
        .csr(Blob::new(ca_csr.csr().expect("csr").as_bytes()))
        .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
        .template_arn("arn:aws:acm-pca:::template/RootCACertificate/V1")
        .validity(validity(3650))
        .send()
        .await
        .expect("issue root");
    let root_arn = issued.certificate_arn().expect("arn").to_string();
    let root = pca
        .get_certificate()
        .certificate_authority_arn(&ca_arn)
        .certificate_arn(&root_arn)
        .send()
        .await
        .expect("get root");
    let root_pem = root.certificate().expect("root pem").to_string();
    pca.import_certificate_authority_certificate()
        .certificate_authority_arn(&ca_arn)
        .certificate(Blob::new(root_pem.as_bytes()))
        .send()
        .await
        .expect("import");
    let described = pca
        .describe_certificate_authority()
        .certificate_authority_arn(&ca_arn)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        described.certificate_authority().and_then(|c| c.status()),
        Some(&CertificateAuthorityStatus::Active)
    );

    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["payments.example.test".to_string()]).expect("params");
    let csr = params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    let leaf = pca
        .issue_certificate()
        .certificate_authority_arn(&ca_arn)
        .csr(Blob::new(csr.as_bytes()))
        .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
        .template_arn("arn:aws:acm-pca:::template/EndEntityCertificate/V1")
        .validity(validity(1))
        .send()
        .await
        .expect("issue leaf");
    let leaf_arn = leaf.certificate_arn().expect("leaf arn");
    let got = pca
        .get_certificate()
        .certificate_authority_arn(&ca_arn)
        .certificate_arn(leaf_arn)
        .send()
        .await
        .expect("get leaf");
    let leaf_pem = got.certificate().expect("leaf pem");
    openssl_verify(root_pem.as_bytes(), leaf_pem.as_bytes()).expect("leaf verifies against the CA");
    let parsed = certsmith::pki::inspect::parse_chain(leaf_pem.as_bytes()).expect("parse");
    assert_eq!(
        parsed[0].public_key_info,
        rcgen::PublicKeyData::subject_public_key_info(&key)
    );
}
