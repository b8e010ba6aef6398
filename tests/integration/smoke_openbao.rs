//! OpenBao from the test environment is a real Vault-API PKI: a two-level chain (made by
//! tests/testenv/openbao/pki.sh) signs a CSR.

use serde_json::{Value, json};

use crate::openbao::Pki;
use crate::support::{Bao, openssl_verify};

fn data<'a>(v: &'a Value, field: &str) -> &'a str {
    v["data"][field]
        .as_str()
        .unwrap_or_else(|| panic!("no data.{field} in {v}"))
}

#[tokio::test]
async fn openbao_signs_a_csr_through_a_root_and_an_intermediate() {
    let bao = Bao::from_env();
    let pki = Pki::setup(bao.clone(), json!({})).await;
    let (root_pem, sign_path) = (pki.root_pem.clone(), pki.sign_path());

    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["orders.example.test".to_string()]).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    let leaf = bao
        .post(
            &sign_path,
            json!({"csr": csr, "common_name": "orders.example.test", "ttl": "1h"}),
        )
        .await;

    let chain = format!(
        "{}\n{}\n",
        data(&leaf, "certificate"),
        data(&leaf, "issuing_ca")
    );
    openssl_verify(root_pem.as_bytes(), chain.as_bytes())
        .expect("leaf verifies through the intermediate to the root");
    let parsed = certsmith::pki::inspect::parse_chain(chain.as_bytes()).expect("parse");
    assert_eq!(
        parsed[0].public_key_info,
        rcgen::PublicKeyData::subject_public_key_info(&key),
        "OpenBao signed our key"
    );
    assert!(parsed[0].dns_names.contains("orders.example.test"));
    assert_eq!(parsed[1].subject, "CN=Vault Test Intermediate");
    // A name outside the role is refused with OpenBao's own message.
    let refused = bao
        .http
        .post(format!("{}/v1/{sign_path}", bao.addr))
        .header("X-Vault-Token", &bao.token)
        .json(&json!({"csr": csr, "common_name": "evil.example.org"}))
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status().as_u16(), 400);
    assert!(refused.text().await.expect("body").contains("not allowed"));
}
