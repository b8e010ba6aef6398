//! OpenBao from the test environment is a real Vault-API PKI: a two-level chain signs a CSR.

use serde_json::{Value, json};

use crate::support::{Bao, openssl_verify, rand_u32};

fn data<'a>(v: &'a Value, field: &str) -> &'a str {
    v["data"][field]
        .as_str()
        .unwrap_or_else(|| panic!("no data.{field} in {v}"))
}

#[tokio::test]
async fn openbao_signs_a_csr_through_a_root_and_an_intermediate() {
    let bao = Bao::from_env();
    let id = format!("{:08x}", rand_u32());
    let (root, int) = (format!("root-{id}"), format!("int-{id}"));
    bao.post(
        &format!("sys/mounts/{root}"),
        json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}}),
    )
    .await;
    let root_ca = bao
        .post(
            &format!("{root}/root/generate/internal"),
            json!({"common_name": "Test Root", "ttl": "87600h"}),
        )
        .await;
    let root_pem = data(&root_ca, "certificate").to_string();

    bao.post(
        &format!("sys/mounts/{int}"),
        json!({"type": "pki", "config": {"max_lease_ttl": "43800h"}}),
    )
    .await;
    let int_csr = bao
        .post(
            &format!("{int}/intermediate/generate/internal"),
            json!({"common_name": "Test Intermediate"}),
        )
        .await;
    let signed = bao
        .post(
            &format!("{root}/root/sign-intermediate"),
            json!({"csr": data(&int_csr, "csr"), "format": "pem", "ttl": "43800h"}),
        )
        .await;
    bao.post(
        &format!("{int}/intermediate/set-signed"),
        json!({"certificate": data(&signed, "certificate")}),
    )
    .await;
    bao.post(
        &format!("{int}/roles/agents"),
        json!({"allowed_domains": "example.test", "allow_subdomains": true, "max_ttl": "72h", "key_type": "any"}),
    )
    .await;

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
            &format!("{int}/sign/agents"),
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
    assert_eq!(parsed[1].subject, "CN=Test Intermediate");
    // A name outside the role is refused with OpenBao's own message.
    let refused = bao
        .http
        .post(format!("{}/v1/{int}/sign/agents", bao.addr))
        .header("X-Vault-Token", &bao.token)
        .json(&json!({"csr": csr, "common_name": "evil.example.org"}))
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status().as_u16(), 400);
    assert!(refused.text().await.expect("body").contains("not allowed"));
}
