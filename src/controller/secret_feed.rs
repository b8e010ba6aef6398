//! One metadata-only watch of Secrets per served scope, shared by every controller that
//! follows Secrets (Certificates: their own Secrets and keystore passwords; issuers: the
//! Secrets they read; TrustBundles: their Secret sources), and the store that says whether a
//! Secret exists. The API server sends each watcher its own copy of every event, so one watch
//! instead of four makes a Secret write cost it one event for the operator, not four
//! (measured: 6 Secret watch events per issued certificate with four watches, see README).

use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::watched::Watched;
use crate::secret;

type Sender = mpsc::UnboundedSender<PartialObjectMeta<Secret>>;

/// The Secrets of one scope (a namespace, or all of them), as their controllers see them.
#[derive(Default)]
pub struct SecretFeed {
    subscribers: Mutex<Vec<Sender>>,
}

impl SecretFeed {
    /// Every Secret change from now on, for one controller's `watches_stream`. Subscribe before
    /// [`SecretFeed::run`] starts, so no controller misses the first list.
    pub fn subscribe(
        &self,
    ) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static
    {
        let (to, from) = mpsc::unbounded();
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.push(to);
        }
        from.map(Ok)
    }

    /// Watch the scope's Secrets until shutdown: keep the metadata store `watched` answers
    /// from, and hand every change to the subscribers (unbounded: each is a controller's
    /// trigger stream, drained as fast as its mapper runs, so none holds up the others).
    pub fn run(
        self: Arc<Self>,
        client: &Client,
        namespace: Option<String>,
        watched: &Watched,
        shutdown: &CancellationToken,
    ) -> BoxFuture<'static, ()> {
        let (store, mut writer) = reflector::store();
        watched.add_secrets(namespace.clone(), store);
        let api = match namespace.as_deref() {
            Some(ns) => kube::Api::<PartialObjectMeta<Secret>>::namespaced(client.clone(), ns),
            None => kube::Api::all(client.clone()),
        };
        let changes = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(keep_what_is_read)
            // The store only answers "is it there, at which version": no labels or annotations.
            .inspect_ok(move |event| writer.apply_watcher_event(&event.clone().modify(bare)))
            .touched_objects()
            .take_until(shutdown.clone().cancelled_owned());
        Box::pin(changes.for_each(move |change| {
            match change {
                Ok(s) => self.send(s),
                Err(e) => warn!("watching Secrets: {e}"),
            }
            std::future::ready(())
        }))
    }

    fn send(&self, s: PartialObjectMeta<Secret>) {
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.retain(|to| to.unbounded_send(s.clone()).is_ok());
        }
    }
}

/// Only what the subscribers read: names and versions (always kept), the managed label and
/// the annotation naming the Certificate. Whatever else a tenant puts on a Secret (a kubectl
/// last-applied copy of a 1 MiB Secret, say) is not held.
fn keep_what_is_read(s: &mut PartialObjectMeta<Secret>) {
    let meta = &mut s.metadata;
    meta.managed_fields = None;
    meta.owner_references = None;
    if let Some(labels) = meta.labels.as_mut() {
        labels.retain(|k, _| k == secret::MANAGED_LABEL);
    }
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|k, _| k == secret::CERTIFICATE_ANNOTATION);
    }
}

/// What the existence store keeps of a Secret: its name, namespace and versions.
fn bare(s: &mut PartialObjectMeta<Secret>) {
    s.metadata.labels = None;
    s.metadata.annotations = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_managed_label_and_the_certificate_annotation_are_kept() {
        let mut s = PartialObjectMeta::<Secret>::default();
        s.metadata.name = Some("web-tls".into());
        s.metadata.resource_version = Some("7".into());
        s.metadata.labels = Some(
            [
                (secret::MANAGED_LABEL.to_string(), "true".to_string()),
                ("app".to_string(), "web".to_string()),
            ]
            .into(),
        );
        s.metadata.annotations = Some(
            [
                (
                    secret::CERTIFICATE_ANNOTATION.to_string(),
                    "web".to_string(),
                ),
                ("big".to_string(), "x".repeat(1 << 16)),
            ]
            .into(),
        );
        keep_what_is_read(&mut s);
        assert_eq!(secret::owner_of(&s.metadata), Some("web"));
        assert_eq!(s.metadata.labels.as_ref().map(|l| l.len()), Some(1));
        assert_eq!(s.metadata.annotations.as_ref().map(|a| a.len()), Some(1));
        assert_eq!(s.metadata.resource_version.as_deref(), Some("7"));
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_change_and_a_closed_one_is_dropped() {
        let feed = SecretFeed::default();
        let mut first = Box::pin(feed.subscribe());
        let second = feed.subscribe();
        drop(second);
        let mut s = PartialObjectMeta::<Secret>::default();
        s.metadata.name = Some("a".into());
        feed.send(s);
        let got = first.next().await.and_then(Result::ok);
        assert_eq!(got.and_then(|s| s.metadata.name).as_deref(), Some("a"));
        assert_eq!(feed.subscribers.lock().map(|s| s.len()).ok(), Some(1));
    }
}
