//! The AWS Private CA emulator runs the real root-CA flow and issues from a CSR.

use aws_sdk_acmpca::primitives::Blob;
use aws_sdk_acmpca::types::{
    CertificateAuthorityStatus, SigningAlgorithm, Validity, ValidityPeriodType,
};

use crate::aws_pca::{client, create_ca};
use crate::support::openssl_verify;

#[tokio::test]
async fn moto_activates_a_root_ca_and_issues_from_a_csr() {
    let pca = client().await;
    let ca = create_ca(&pca, true).await;
    let described = pca
        .describe_certificate_authority()
        .certificate_authority_arn(&ca.arn)
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
        .certificate_authority_arn(&ca.arn)
        .csr(Blob::new(csr.as_bytes()))
        .signing_algorithm(SigningAlgorithm::Sha256Withecdsa)
        .template_arn("arn:aws:acm-pca:::template/EndEntityCertificate/V1")
        .validity(
            Validity::builder()
                .value(1)
                .r#type(ValidityPeriodType::Days)
                .build()
                .expect("validity"),
        )
        .send()
        .await
        .expect("issue leaf");
    let leaf_arn = leaf.certificate_arn().expect("leaf arn");
    let got = pca
        .get_certificate()
        .certificate_authority_arn(&ca.arn)
        .certificate_arn(leaf_arn)
        .send()
        .await
        .expect("get leaf");
    let leaf_pem = got.certificate().expect("leaf pem");
    openssl_verify(ca.root_pem.as_bytes(), leaf_pem.as_bytes())
        .expect("leaf verifies against the CA");
    let parsed = certsmith::pki::inspect::parse_chain(leaf_pem.as_bytes()).expect("parse");
    assert_eq!(
        parsed[0].public_key_info,
        rcgen::PublicKeyData::subject_public_key_info(&key)
    );
}
