//! A Kubernetes label selector (`metav1.LabelSelector`) with bounded sizes, and its matcher:
//! one type for every selector in the API (a ClusterIssuer policy's namespaces, a
//! TrustBundle's target namespaces).

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema;

/// A label selector. Empty selects everything.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::selector_labels")]
    pub match_labels: BTreeMap<String, String>,
    /// Requirements on the labels; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One label requirement.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)").message("In and NotIn need values; Exists and DoesNotExist take none"))]
pub struct LabelSelectorRequirement {
    /// The label key.
    #[schemars(schema_with = "schema::label_key")]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: SelectorOperator,
    /// The values for `In` and `NotIn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::label_values")]
    pub values: Vec<String>,
}

/// A label selector operator.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    /// The first requirement `labels` do not meet (as `key=value`, `key in (a,b)`, ...), or
    /// None when the selector matches.
    pub fn unmet(&self, labels: &BTreeMap<String, String>) -> Option<String> {
        if let Some((key, value)) = self
            .match_labels
            .iter()
            .find(|(k, v)| labels.get(*k) != Some(*v))
        {
            return Some(format!("{key}={value}"));
        }
        self.match_expressions
            .iter()
            .find(|r| !r.holds(labels.get(&r.key)))
            .map(LabelSelectorRequirement::render)
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.unmet(labels).is_none()
    }

    /// In `kubectl -l` syntax; `every namespace` when empty.
    pub fn render(&self) -> String {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        parts.extend(
            self.match_expressions
                .iter()
                .map(LabelSelectorRequirement::render),
        );
        if parts.is_empty() {
            "every namespace".into()
        } else {
            parts.join(",")
        }
    }
}

impl LabelSelectorRequirement {
    fn holds(&self, value: Option<&String>) -> bool {
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }

    fn render(&self) -> String {
        match self.operator {
            SelectorOperator::In => format!("{} in ({})", self.key, self.values.join(",")),
            SelectorOperator::NotIn => format!("{} notin ({})", self.key, self.values.join(",")),
            SelectorOperator::Exists => self.key.clone(),
            SelectorOperator::DoesNotExist => format!("!{}", self.key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_and_the_first_unmet_requirement() {
        let s: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"tier": "agents"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "stage"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "team", "operator": "Exists"},
                {"key": "zone", "operator": "NotIn", "values": ["eu"]},
            ],
        }))
        .unwrap();
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let ok = labels(&[("tier", "agents"), ("env", "prod"), ("team", "a")]);
        assert!(s.matches(&ok));
        let mut l = ok.clone();
        l.insert("tier".into(), "web".into());
        assert_eq!(s.unmet(&l).as_deref(), Some("tier=agents"));
        let mut l = ok.clone();
        l.insert("env".into(), "dev".into());
        assert_eq!(s.unmet(&l).as_deref(), Some("env in (prod,stage)"));
        let mut l = ok.clone();
        l.insert("legacy".into(), "1".into());
        assert_eq!(s.unmet(&l).as_deref(), Some("!legacy"));
        let mut l = ok.clone();
        l.remove("team");
        assert_eq!(s.unmet(&l).as_deref(), Some("team"));
        let mut l = ok.clone();
        l.insert("zone".into(), "eu".into());
        assert_eq!(s.unmet(&l).as_deref(), Some("zone notin (eu)"));
        assert!(LabelSelector::default().matches(&BTreeMap::new()));
        assert_eq!(LabelSelector::default().render(), "every namespace");
        assert_eq!(
            s.render(),
            "tier=agents,env in (prod,stage),!legacy,team,zone notin (eu)"
        );
    }
}
