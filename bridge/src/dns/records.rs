//! The name table shared by berthd and its DNS servers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// network name → (normalised host name → addresses)
type Table = HashMap<String, HashMap<String, Vec<IpAddr>>>;

/// Container names and aliases per network, shared between berthd and the DNS servers.
///
/// Cheap to clone: every clone sees the same table. Names are stored normalised (lower case,
/// without a trailing dot), so `set("n", "Web.", …)` and `lookup("n", "web")` meet.
#[derive(Clone, Default)]
pub struct Records {
    inner: Arc<RwLock<Table>>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = self.read();
        f.debug_struct("Records")
            .field("networks", &table.len())
            .finish()
    }
}

/// The key a name is stored and looked up under: ASCII lower case, trailing dot(s) removed.
pub(crate) fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Records {
    /// An empty table.
    pub fn new() -> Records {
        Records::default()
    }

    /// Records `name` on `network` with exactly `addrs` (replacing what it had). A name set with
    /// no addresses is still known: queries for it get NOERROR with an empty answer. Several
    /// containers sharing an alias must be given as one `set` with all their addresses.
    pub fn set(&self, network: &str, name: &str, addrs: Vec<IpAddr>) {
        let key = normalize(name);
        if key.is_empty() {
            return;
        }
        let mut addrs = addrs;
        dedup_in_order(&mut addrs);
        self.write()
            .entry(network.to_owned())
            .or_default()
            .insert(key, addrs);
    }

    /// Forgets `name` on `network`; unknown names are ignored.
    pub fn remove(&self, network: &str, name: &str) {
        let key = normalize(name);
        let mut table = self.write();
        if let Some(names) = table.get_mut(network) {
            names.remove(&key);
            if names.is_empty() {
                table.remove(network);
            }
        }
    }

    /// The addresses of `name` on `network` (empty when unknown or when it has none).
    pub fn lookup(&self, network: &str, name: &str) -> Vec<IpAddr> {
        self.get(network, name).unwrap_or_default()
    }

    /// `Some(addresses)` when `name` is known on `network` (possibly with no address), `None`
    /// when it is not: the difference between NOERROR/empty and "forward it".
    pub(crate) fn get(&self, network: &str, name: &str) -> Option<Vec<IpAddr>> {
        let key = normalize(name);
        self.read().get(network)?.get(&key).cloned()
    }

    fn read(&self) -> RwLockReadGuard<'_, Table> {
        // A panic while holding the lock cannot leave the map half-updated (every write is
        // one insert or remove), so a poisoned lock is still a consistent table.
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn dedup_in_order(addrs: &mut Vec<IpAddr>) {
    let mut seen = Vec::with_capacity(addrs.len());
    addrs.retain(|a| {
        if seen.contains(a) {
            false
        } else {
            seen.push(*a);
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn set_lookup_remove() {
        let r = Records::new();
        r.set("n1", "Web", vec![ip("10.0.0.2"), ip("fd00::2")]);
        assert_eq!(r.lookup("n1", "web"), vec![ip("10.0.0.2"), ip("fd00::2")]);
        assert_eq!(r.lookup("n1", "WEB."), vec![ip("10.0.0.2"), ip("fd00::2")]);
        assert!(r.lookup("n2", "web").is_empty());
        r.remove("n1", "web.");
        assert!(r.lookup("n1", "web").is_empty());
        assert!(r.get("n1", "web").is_none());
    }

    #[test]
    fn set_replaces_and_dedups() {
        let r = Records::new();
        r.set("n", "a", vec![ip("10.0.0.2")]);
        r.set(
            "n",
            "a",
            vec![ip("10.0.0.3"), ip("10.0.0.3"), ip("10.0.0.4")],
        );
        assert_eq!(r.lookup("n", "a"), vec![ip("10.0.0.3"), ip("10.0.0.4")]);
    }

    #[test]
    fn known_without_addresses() {
        let r = Records::new();
        r.set("n", "empty", vec![]);
        assert_eq!(r.get("n", "empty"), Some(vec![]));
        assert!(r.lookup("n", "empty").is_empty());
        r.set("n", "", vec![ip("10.0.0.9")]);
        assert!(r.get("n", ".").is_none());
    }

    #[test]
    fn clones_share() {
        let r = Records::new();
        let c = r.clone();
        c.set("n", "x", vec![ip("10.0.0.5")]);
        assert_eq!(r.lookup("n", "x"), vec![ip("10.0.0.5")]);
        r.remove("n", "x");
        assert!(c.lookup("n", "x").is_empty());
        r.remove("nope", "x");
    }
}
