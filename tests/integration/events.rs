//! The operator's Event recorder against the real API server: a repeat is counted in the
//! first Event's series (the patch the API server must accept), another message is another
//! Event, and an Event deleted meanwhile is published anew.

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Resource, ResourceExt};

use crate::support::TestNamespace;
use certsmith::controller::events::Recorder;

fn warning(note: &str) -> Event {
    Event {
        type_: EventType::Warning,
        reason: "IssuerNotReady".into(),
        note: Some(note.into()),
        action: "Issue".into(),
        secondary: None,
    }
}

async fn events(ns: &TestNamespace) -> Vec<K8sEvent> {
    let mut list = ns
        .api::<K8sEvent>()
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items;
    list.sort_by_key(|e| e.name_any());
    list
}

#[tokio::test]
async fn a_repeated_event_is_counted_in_a_series_and_another_note_is_a_new_event() {
    let ns = TestNamespace::new("events").await;
    let cm: ConfigMap = ns
        .apply(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "target"}}))
        .await;
    let regarding: ObjectReference = cm.object_ref(&());
    let recorder = Recorder::new(
        ns.client.clone(),
        Reporter {
            controller: "certsmith".into(),
            instance: Some("test".into()),
        },
    );

    for _ in 0..3 {
        recorder
            .publish(&warning("the CA is down"), &regarding)
            .await
            .expect("publish");
    }
    let list = events(&ns).await;
    assert_eq!(list.len(), 1, "three identical events are one: {list:?}");
    let first = &list[0];
    assert_eq!(first.series.as_ref().map(|s| s.count), Some(3));
    assert_eq!(first.note.as_deref(), Some("the CA is down"));
    assert_eq!(first.reason.as_deref(), Some("IssuerNotReady"));
    assert_eq!(first.type_.as_deref(), Some("Warning"));
    assert_eq!(first.reporting_instance.as_deref(), Some("test"));
    assert_eq!(
        first.regarding.as_ref().and_then(|r| r.uid.clone()),
        cm.uid()
    );

    recorder
        .publish(&warning("the CA answers 503"), &regarding)
        .await
        .expect("publish");
    assert_eq!(events(&ns).await.len(), 2, "another note is another event");

    // The first Event is deleted: its next repeat is published anew.
    ns.api::<K8sEvent>()
        .delete(&first.name_any(), &DeleteParams::default())
        .await
        .expect("delete event");
    recorder
        .publish(&warning("the CA is down"), &regarding)
        .await
        .expect("publish");
    let notes: Vec<_> = events(&ns)
        .await
        .into_iter()
        .filter_map(|e| e.note)
        .collect();
    assert_eq!(
        notes.iter().filter(|n| *n == "the CA is down").count(),
        1,
        "{notes:?}"
    );
    ns.delete().await;
}
