//! The CRDs on disk are exactly what the Rust types generate, and every field is documented.

#[test]
fn crds_on_disk_match_the_types() {
    let generated = certsmith::crds::render().expect("render CRDs");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/certsmith.yaml");
    let on_disk = std::fs::read_to_string(path).expect("read crds/certsmith.yaml");
    assert!(
        generated == on_disk,
        "crds/certsmith.yaml is stale: run `make crds` and commit the result"
    );
}

#[test]
fn the_chart_installs_the_same_crds() {
    let generated = certsmith::crds::render_helm_template().expect("render chart CRDs");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/certsmith/templates/crds.yaml"
    );
    let on_disk = std::fs::read_to_string(path).expect("read the chart's crds.yaml");
    assert!(
        generated == on_disk,
        "charts/certsmith/templates/crds.yaml is stale: run `make crds` and commit the result"
    );
}

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
