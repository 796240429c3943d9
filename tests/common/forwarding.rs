//! Puts the host's forwarding sysctls back once the last berthd a test binary started is gone.
//!
//! berthd turns on `net.ipv4.ip_forward` (and IPv6 forwarding for an IPv6 network) and, as
//! docker's daemon does, never turns them off: on a host that is what containers need. A test
//! run must leave the host as it found it, so every test's berthd holds a [`ForwardingGuard`]:
//! the first guard of the binary saves the values, the last one writes them back. Tests of one
//! binary run in parallel threads, hence the count; cargo runs test binaries one at a time.

use std::sync::Mutex;

const KEYS: [&str; 2] = [
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/ipv6/conf/all/forwarding",
];

/// Live guards, and the values the first one found.
static SAVED: Mutex<(usize, Vec<(&str, String)>)> = Mutex::new((0, Vec::new()));

/// Held for as long as a test's berthd may run; dropped after it is killed.
pub struct ForwardingGuard(());

impl ForwardingGuard {
    pub fn take() -> ForwardingGuard {
        let mut saved = SAVED.lock().unwrap_or_else(|p| p.into_inner());
        if saved.0 == 0 {
            saved.1 = KEYS
                .iter()
                .filter_map(|k| Some((*k, std::fs::read_to_string(k).ok()?.trim().to_string())))
                .collect();
        }
        saved.0 += 1;
        ForwardingGuard(())
    }
}

impl Drop for ForwardingGuard {
    fn drop(&mut self) {
        let mut saved = SAVED.lock().unwrap_or_else(|p| p.into_inner());
        saved.0 -= 1;
        if saved.0 == 0 {
            for (key, value) in saved.1.drain(..) {
                let _ = std::fs::write(key, value);
            }
        }
    }
}
