//! Every field of the CRDs is documented (that the CRDs on disk are what the Rust types
//! generate is a unit test in src/crds.rs, also run by `make lint`).

fn undocumented(path: &str, schema: &serde_json::Value, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
        for (name, sub) in props {
            let here = format!("{path}.{name}");
            if sub.get("description").is_none()
                && !["apiVersion", "kind", "metadata"].contains(&name.as_str())
            {
                out.push(here.clone());
            }
            undocumented(&here, sub, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undocumented(&format!("{path}[]"), items, out);
    }
}

#[test]
fn every_field_has_a_description_for_kubectl_explain() {
    use kube::CustomResourceExt;
    for crd in [
        certsmith::api::Certificate::crd(),
        certsmith::api::Issuer::crd(),
        certsmith::api::ClusterIssuer::crd(),
    ] {
        let value = serde_json::to_value(&crd).expect("crd json");
        let schema = &value["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut missing = Vec::new();
        undocumented(crd.spec.names.kind.as_str(), schema, &mut missing);
        assert!(
            missing.is_empty(),
            "fields without description: {missing:?}"
        );
    }
}
