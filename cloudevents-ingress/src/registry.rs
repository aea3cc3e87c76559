//! The brokers and triggers this node knows, with a change signal for the dispatcher.
//!
//! Whoever owns durability (the admin API over a store, or the metadata image once brokers and
//! triggers are metadata records) writes here; the ingress and the dispatcher read immutable
//! snapshots, so a request never waits on a change.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::watch;

use crate::model::{BrokerSpec, CompiledTrigger, ModelError, TriggerSpec};

/// `(namespace, name)`.
pub type Key = (String, String);

/// A trigger as the dispatcher sees it.
#[derive(Debug, Clone)]
pub struct TriggerEntry {
    /// The trigger, compiled against its broker's delivery defaults.
    pub compiled: Arc<CompiledTrigger>,
    /// Bumped on every change to the trigger or its broker; a dispatcher restarts the trigger's
    /// workers when it changes.
    pub revision: u64,
}

/// An immutable view of every broker and trigger.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Brokers by key.
    pub brokers: BTreeMap<Key, BrokerSpec>,
    /// Triggers by key; a trigger whose broker is missing is absent here but listed in
    /// `orphans`.
    pub triggers: BTreeMap<Key, TriggerEntry>,
    /// Triggers stored but not runnable, with the reason (broker missing, or a spec that no
    /// longer compiles against the broker's defaults).
    pub orphans: BTreeMap<Key, (TriggerSpec, String)>,
}

#[derive(Default)]
struct Inner {
    brokers: BTreeMap<Key, BrokerSpec>,
    triggers: BTreeMap<Key, TriggerSpec>,
    revisions: BTreeMap<Key, u64>,
    revision: u64,
    snapshot: Arc<Snapshot>,
}

/// The registry.
pub struct Registry {
    inner: RwLock<Inner>,
    changed: watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_owned(), name.to_owned())
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry {
            inner: RwLock::new(Inner::default()),
            changed: watch::channel(0).0,
        }
    }

    /// A receiver that sees a new value after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.read().snapshot.clone()
    }

    /// A broker by namespace and name.
    pub fn broker(&self, namespace: &str, name: &str) -> Option<BrokerSpec> {
        self.inner
            .read()
            .brokers
            .get(&key(namespace, name))
            .cloned()
    }

    /// Every broker.
    pub fn brokers(&self) -> Vec<BrokerSpec> {
        self.inner.read().brokers.values().cloned().collect()
    }

    /// A trigger spec by namespace and name.
    pub fn trigger(&self, namespace: &str, name: &str) -> Option<TriggerSpec> {
        self.inner
            .read()
            .triggers
            .get(&key(namespace, name))
            .cloned()
    }

    /// Every trigger spec.
    pub fn triggers(&self) -> Vec<TriggerSpec> {
        self.inner.read().triggers.values().cloned().collect()
    }

    /// Adds or replaces a broker. Returns whether it is new.
    pub fn put_broker(&self, spec: BrokerSpec) -> Result<bool, ModelError> {
        spec.validate()?;
        let mut inner = self.inner.write();
        let k = key(&spec.namespace, &spec.name);
        let new = inner.brokers.insert(k.clone(), spec).is_none();
        // Its triggers' delivery defaults may have changed.
        let dependents: Vec<Key> = inner
            .triggers
            .iter()
            .filter(|(tk, t)| tk.0 == k.0 && t.broker == k.1)
            .map(|(tk, _)| tk.clone())
            .collect();
        Self::bump(&mut inner, &dependents);
        self.publish(inner);
        Ok(new)
    }

    /// Removes a broker; its triggers stay, not runnable, until it comes back.
    pub fn delete_broker(&self, namespace: &str, name: &str) -> Option<BrokerSpec> {
        let mut inner = self.inner.write();
        let removed = inner.brokers.remove(&key(namespace, name));
        if removed.is_some() {
            Self::bump(&mut inner, &[]);
            self.publish(inner);
        }
        removed
    }

    /// Adds or replaces a trigger after compiling it (a bad filter or delivery is refused here).
    /// Returns whether it is new.
    pub fn put_trigger(&self, spec: TriggerSpec) -> Result<bool, ModelError> {
        let mut inner = self.inner.write();
        let broker = inner.brokers.get(&key(&spec.namespace, &spec.broker));
        spec.compile(broker)?;
        let k = key(&spec.namespace, &spec.name);
        let new = inner.triggers.insert(k.clone(), spec).is_none();
        Self::bump(&mut inner, &[k]);
        self.publish(inner);
        Ok(new)
    }

    /// Removes a trigger.
    pub fn delete_trigger(&self, namespace: &str, name: &str) -> Option<TriggerSpec> {
        let mut inner = self.inner.write();
        let removed = inner.triggers.remove(&key(namespace, name));
        if removed.is_some() {
            Self::bump(&mut inner, &[]);
            self.publish(inner);
        }
        removed
    }

    /// Replaces everything at once, as when a metadata image or a stored file is loaded.
    /// Specs that fail validation are kept out and returned with the reason.
    pub fn replace_all(
        &self,
        brokers: Vec<BrokerSpec>,
        triggers: Vec<TriggerSpec>,
    ) -> Vec<(Key, ModelError)> {
        let mut refused = Vec::new();
        let mut inner = self.inner.write();
        let old_brokers = std::mem::take(&mut inner.brokers);
        let old_triggers = std::mem::take(&mut inner.triggers);
        for b in brokers {
            match b.validate() {
                Ok(()) => {
                    inner.brokers.insert(key(&b.namespace, &b.name), b);
                }
                Err(e) => refused.push((key(&b.namespace, &b.name), e)),
            }
        }
        let mut changed = Vec::new();
        for t in triggers {
            let k = key(&t.namespace, &t.name);
            let broker = inner.brokers.get(&key(&t.namespace, &t.broker));
            if let Err(e) = t.compile(broker) {
                refused.push((k, e));
                continue;
            }
            let broker_changed = old_brokers.get(&key(&t.namespace, &t.broker)) != broker;
            if old_triggers.get(&k) != Some(&t) || broker_changed {
                changed.push(k.clone());
            }
            inner.triggers.insert(k, t);
        }
        Self::bump(&mut inner, &changed);
        self.publish(inner);
        refused
    }

    fn bump(inner: &mut Inner, keys: &[Key]) {
        inner.revision += 1;
        let rev = inner.revision;
        for k in keys {
            inner.revisions.insert(k.clone(), rev);
        }
    }

    fn publish(&self, mut inner: parking_lot::RwLockWriteGuard<'_, Inner>) {
        let mut snapshot = Snapshot {
            brokers: inner.brokers.clone(),
            ..Snapshot::default()
        };
        for (k, spec) in &inner.triggers {
            let Some(broker) = inner.brokers.get(&key(&spec.namespace, &spec.broker)) else {
                snapshot.orphans.insert(
                    k.clone(),
                    (
                        spec.clone(),
                        format!("broker {}/{} not found", spec.namespace, spec.broker),
                    ),
                );
                continue;
            };
            match spec.compile(Some(broker)) {
                Ok(compiled) => {
                    snapshot.triggers.insert(
                        k.clone(),
                        TriggerEntry {
                            compiled: Arc::new(compiled),
                            revision: inner.revisions.get(k).copied().unwrap_or(0),
                        },
                    );
                }
                Err(e) => {
                    snapshot
                        .orphans
                        .insert(k.clone(), (spec.clone(), e.to_string()));
                }
            }
        }
        inner.snapshot = Arc::new(snapshot);
        let revision = inner.revision;
        drop(inner);
        self.changed.send_replace(revision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_run_only_with_their_broker() {
        let r = Registry::new();
        let mut rx = r.subscribe();
        r.put_trigger(TriggerSpec::new("ns", "t", "b", "http://127.0.0.1:1/"))
            .unwrap();
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        assert!(r.snapshot().triggers.is_empty());
        assert_eq!(r.snapshot().orphans.len(), 1);
        let rev_before = r.snapshot().orphans.len();
        assert_eq!(rev_before, 1);
        r.put_broker(BrokerSpec::new("ns", "b")).unwrap();
        let snap = r.snapshot();
        let entry = &snap.triggers[&("ns".to_owned(), "t".to_owned())];
        let rev = entry.revision;
        // Changing the broker restarts its triggers (their delivery defaults may differ).
        r.put_broker(BrokerSpec::new("ns", "b")).unwrap();
        assert!(r.snapshot().triggers[&("ns".to_owned(), "t".to_owned())].revision > rev);
        assert!(r.delete_broker("ns", "b").is_some());
        assert!(r.snapshot().triggers.is_empty());
    }

    #[test]
    fn bad_triggers_are_refused() {
        let r = Registry::new();
        let mut t = TriggerSpec::new("ns", "t", "b", "not a url");
        assert!(r.put_trigger(t.clone()).is_err());
        t.subscriber = crate::delivery::Destination::uri("http://127.0.0.1:1/");
        assert!(r.put_trigger(t).unwrap());
    }
}
