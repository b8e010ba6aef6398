//! `metav1.Condition`-shaped conditions and the rule that `lastTransitionTime` only moves on a flip.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const READY: &str = "Ready";
pub const ISSUING: &str = "Issuing";
/// kstatus: present and True while the operator is working towards the desired state.
pub const RECONCILING: &str = "Reconciling";
/// kstatus: present and True while progress is impossible without a user's change.
pub const STALLED: &str = "Stalled";

/// The longest message a condition carries, in bytes of UTF-8. Messages quote other systems
/// (Vault's and AWS's error texts, the API server's refusals), and any namespace can point an
/// issuer at a server it controls: the bound keeps one answer from bloating an object's
/// status. 1024 bytes is also the API server's limit on an Event's note (bytes, not
/// characters), so Events use the same bound.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// `message` as a condition or Event may carry it: at most [`MAX_MESSAGE_BYTES`], cut at a
/// character boundary and ending with `…` when it was cut.
pub fn bounded_message(message: &str) -> String {
    const CUT: char = '…';
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE_BYTES - CUT.len_utf8();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT}", &message[..end])
}

/// A status condition, field for field `metav1.Condition`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type: Ready, Issuing, Reconciling or Stalled.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// Machine-readable CamelCase reason from a fixed set (see the README's troubleshooting).
    pub reason: String,
    /// Human-readable explanation.
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The metadata.generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The desired state of one condition, before timestamps are settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// Merge desired conditions into the current ones. A condition keeps its `lastTransitionTime`
/// unless its status flips; conditions not desired are dropped; messages are bounded
/// ([`bounded_message`]).
pub fn merge(
    current: &[Condition],
    desired: &[DesiredCondition],
    generation: Option<i64>,
    now: &str,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" }.to_string();
            let last_transition_time = current
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map_or_else(|| now.to_string(), |c| c.last_transition_time.clone());
            Condition {
                type_: d.type_.to_string(),
                status,
                reason: d.reason.clone(),
                message: bounded_message(&d.message),
                last_transition_time,
                observed_generation: generation,
            }
        })
        .collect()
}

/// Look a condition up by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(status: bool, reason: &str) -> DesiredCondition {
        DesiredCondition {
            type_: READY,
            status,
            reason: reason.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn transition_time_moves_only_on_flip() {
        let first = merge(&[], &[desired(true, "Issued")], Some(1), "t1");
        assert_eq!(first[0].last_transition_time, "t1");
        let same = merge(&first, &[desired(true, "UpToDate")], Some(2), "t2");
        assert_eq!(same[0].last_transition_time, "t1");
        assert_eq!(same[0].reason, "UpToDate");
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(&same, &[desired(false, "Expired")], Some(2), "t3");
        assert_eq!(flipped[0].last_transition_time, "t3");
    }

    #[test]
    fn a_long_message_is_cut_at_a_char_boundary_and_says_so() {
        // 3-byte characters, so a byte-wise cut would split one.
        let long = "€".repeat(5000);
        let mut d = desired(false, "SigningFailed");
        d.message = long.clone();
        let merged = merge(&[], &[d], None, "t1");
        let message = &merged[0].message;
        assert!(
            message.len() <= MAX_MESSAGE_BYTES,
            "{} bytes",
            message.len()
        );
        assert!(message.ends_with('…'));
        assert!(long.starts_with(message.trim_end_matches('…')));
        assert_eq!(
            merge(&[], &[desired(true, "Issued")], None, "t1")[0].message,
            "m",
            "a short message is left alone"
        );
    }

    #[test]
    fn undesired_conditions_are_dropped() {
        let first = merge(&[], &[desired(true, "Issued")], None, "t1");
        assert!(merge(&first, &[], None, "t2").is_empty());
    }
}
