//! Events (events.k8s.io/v1) as kube-runtime's `Recorder` writes them: a new one is created, and
//! the same event again within six minutes patches the first one's `series` instead. What
//! differs is what is remembered for that: kube's `Recorder` keeps every event it published
//! for six minutes, whole, and scans them all on every publish. Measured with 10,000
//! issuances (`make bench ARGS="--count 10000 --backlog --heap"`): 35 MB of heap (about
//! 3.5 KB an event); the scan is most likely the `HashMap::retain` at 2.6% of the operator's
//! CPU in the profile. This keeps a hash of each recent event with its name, count and time
//! (about 100 bytes), forgets in one pass a minute, and remembers at most `MAX_RECENT` (past
//! that, a repeat is a new event).
//!
//! Same as an event, here: the same object, type, action, reason and note (kube's key leaves
//! the note out, so a repeat with another message was counted under the first message).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

/// How long a published event can still get repeats counted (kube's and client-go's window).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// How often the memory of recent events is swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// At most this many recent events are remembered: a namespace that makes events without end
/// cannot make the operator's memory grow without end.
const MAX_RECENT: usize = 50_000;

/// Publishes Events for the objects the operator reconciles.
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    recent: Mutex<Recent>,
}

impl Recorder {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Recorder {
            client,
            reporter,
            recent: Mutex::new(Recent::new(Instant::now())),
        }
    }

    /// Publish `event` about `regarding`: a new Event, or a repeat counted in the series of
    /// the same one published within the last six minutes. Cluster-scoped objects' Events go
    /// to the `default` namespace.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let key = key(event, regarding);
        let seen = self
            .recent
            .lock()
            .ok()
            .and_then(|mut r| r.repeat(key, Instant::now()));
        let now = Timestamp::now();
        if let Some(Repeat { name, count }) = seen {
            let series = serde_json::json!({"series": EventSeries {
                count,
                last_observed_time: MicroTime(now),
            }});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                .await
            {
                Ok(_) => return Ok(()),
                // Deleted meanwhile (or expired): publish it anew.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let created = api
            .create(&PostParams::default(), &self.build(event, regarding, now))
            .await?;
        if let Ok(mut recent) = self.recent.lock() {
            recent.published(
                key,
                created.metadata.name.unwrap_or_default(),
                Instant::now(),
            );
        }
        Ok(())
    }

    /// The Event as kube-runtime's `Recorder` builds it.
    fn build(&self, event: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let controller = &self.reporter.controller;
        K8sEvent {
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(controller),
                    now.as_nanosecond()
                )),
                ..ObjectMeta::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            ..K8sEvent::default()
        }
    }
}

/// (pure) What makes two events the same, hashed: the object (its uid, or kind, namespace
/// and name), type, action, reason, note and related object.
fn key(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut h = DefaultHasher::new();
    match &regarding.uid {
        Some(uid) => uid.hash(&mut h),
        None => (&regarding.kind, &regarding.namespace, &regarding.name).hash(&mut h),
    }
    matches!(event.type_, EventType::Warning).hash(&mut h);
    (&event.action, &event.reason, &event.note).hash(&mut h);
    event
        .secondary
        .as_ref()
        .map(|r| (&r.kind, &r.namespace, &r.name, &r.uid))
        .hash(&mut h);
    h.finish()
}

/// A repeat of a recent event: its name and the count to record.
#[derive(Debug, PartialEq)]
struct Repeat {
    name: String,
    count: i32,
}

/// (pure, given the time) The recent events: each one's name, count and last time.
struct Recent {
    events: HashMap<u64, (String, i32, Instant)>,
    swept: Instant,
}

impl Recent {
    fn new(now: Instant) -> Self {
        Recent {
            events: HashMap::new(),
            swept: now,
        }
    }

    /// Whether the event `key` was published within the window; if so, count this one.
    fn repeat(&mut self, key: u64, now: Instant) -> Option<Repeat> {
        self.sweep(now);
        let (name, count, last) = self.events.get_mut(&key)?;
        if now.saturating_duration_since(*last) >= SERIES_WINDOW {
            return None;
        }
        *count = count.saturating_add(1);
        *last = now;
        Some(Repeat {
            name: name.clone(),
            count: *count,
        })
    }

    /// The event `key` was created as `name`.
    fn published(&mut self, key: u64, name: String, now: Instant) {
        if self.events.len() < MAX_RECENT || self.events.contains_key(&key) {
            self.events.insert(key, (name, 1, now));
        }
    }

    fn sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.swept) < SWEEP_EVERY {
            return;
        }
        self.swept = now;
        self.events
            .retain(|_, (_, _, last)| now.saturating_duration_since(*last) < SERIES_WINDOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Issue".into(),
            secondary: None,
        }
    }

    fn regarding(uid: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Certificate".into()),
            namespace: Some("ns".into()),
            name: Some("web".into()),
            uid: Some(uid.into()),
            ..ObjectReference::default()
        }
    }

    #[test]
    fn the_same_event_is_the_same_object_reason_and_note() {
        let a = key(&event("IssuerNotReady", "down"), &regarding("1"));
        assert_eq!(a, key(&event("IssuerNotReady", "down"), &regarding("1")));
        assert_ne!(
            a,
            key(&event("IssuerNotReady", "still down"), &regarding("1"))
        );
        assert_ne!(a, key(&event("IssuerNotFound", "down"), &regarding("1")));
        assert_ne!(a, key(&event("IssuerNotReady", "down"), &regarding("2")));
    }

    #[test]
    fn a_repeat_within_the_window_counts_in_the_first_events_series() {
        let t0 = Instant::now();
        let mut recent = Recent::new(t0);
        assert_eq!(recent.repeat(7, t0), None);
        recent.published(7, "web.1".into(), t0);
        let second = recent.repeat(7, t0 + Duration::from_secs(10));
        assert_eq!(
            second,
            Some(Repeat {
                name: "web.1".into(),
                count: 2
            })
        );
        let third = recent.repeat(7, t0 + Duration::from_secs(20));
        assert_eq!(third.map(|r| r.count), Some(3));
        // Six minutes after the last repeat, it is a new event again.
        assert_eq!(
            recent.repeat(7, t0 + Duration::from_secs(20) + SERIES_WINDOW),
            None
        );
    }

    #[test]
    fn old_events_are_forgotten_and_the_memory_is_bounded() {
        let t0 = Instant::now();
        let mut recent = Recent::new(t0);
        for k in 0..MAX_RECENT as u64 + 10 {
            recent.published(k, format!("e.{k}"), t0);
        }
        assert_eq!(recent.events.len(), MAX_RECENT);
        recent.published(MAX_RECENT as u64 + 20, "late".into(), t0 + SWEEP_EVERY);
        assert_eq!(recent.events.len(), MAX_RECENT);
        // A sweep after the window empties it.
        assert_eq!(recent.repeat(1, t0 + SERIES_WINDOW), None);
        assert!(recent.events.is_empty());
    }
}
