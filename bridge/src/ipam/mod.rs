//! Per-network IP address management.
//!
//! One [`Ipam`] per network holds one pool per subnet (IPv4 and/or IPv6). Rules:
//! - the gateway is reserved; the network address and (IPv4) broadcast address are never handed
//!   out; in IPv6 the subnet-router anycast address (`::0` of the prefix) and the top 128
//!   addresses (RFC 2526 reserved anycast) are never handed out;
//! - requested addresses are validated: inside a subnet of the network, not reserved, not the
//!   gateway, not in use (the error names the current holder);
//! - allocation is sequential from a per-pool cursor that survives restarts, over a hash set of
//!   used offsets: a new lease costs O(1) amortized whatever the number of leases (no scan of the
//!   leases), and recently released addresses are not reused at once (peers' ARP caches);
//! - exhaustion is detected from the counters before any probing, and the error names the
//!   network, the subnet and its size;
//! - leases are persisted before `allocate`/`release` return, in O(1) bytes and one fsync per
//!   change whatever the number of leases: a snapshot `<dir>/<network>.json` (written by
//!   write + fsync + rename + fsync(dir); a crash leaves the old or the new file, and staging
//!   files of crashed writers are swept on open) plus an append-only journal
//!   `<dir>/<network>.journal` of the changes since (one JSON line each, appended with a
//!   single write and fdatasync; a torn last line is a change that never returned and is
//!   ignored). Every journal line carries a sequence number and the snapshot the last number it
//!   includes, so a crash between writing a snapshot and emptying the journal replays nothing
//!   twice. The journal is folded into the snapshot when it holds as many entries as there are
//!   leases (at least [`COMPACT_MIN`]), on open, and by [`Ipam::retain`]: O(1) amortized.
//!
//! The lease directory belongs under the run root (tmpfs): containers do not survive a reboot,
//! so neither must their leases (the CNI host-local leak, containernetworking/cni#204).
//! Not thread-safe by itself: berthd is the only writer and keeps each `Ipam` behind a lock.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::fsutil;

mod pool;

pub use pool::{default_gateway, usable_range};
use pool::{ip_at, offset_of, reserved_what, Pool};

/// Errors of address management.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("network {network}: subnet {subnet} is unusable: {reason}")]
    BadSubnet {
        network: String,
        subnet: IpNetwork,
        reason: String,
    },
    #[error("network {network} is full: all {size} addresses of {subnet} are in use; detach an endpoint or use a larger subnet")]
    Exhausted {
        network: String,
        subnet: IpNetwork,
        size: u128,
    },
    #[error("address {ip} is not in any subnet of network {network} ({subnets})")]
    OutsideSubnets {
        network: String,
        ip: IpAddr,
        subnets: String,
    },
    #[error("address {ip} is reserved in {subnet} of network {network} ({what}); ask for another address")]
    Reserved {
        network: String,
        ip: IpAddr,
        subnet: IpNetwork,
        what: &'static str,
    },
    #[error("address {ip} of network {network} is already allocated to {owner}")]
    InUse {
        network: String,
        ip: IpAddr,
        owner: String,
    },
    #[error("two addresses requested in subnet {subnet} of network {network}; ask for at most one per subnet")]
    DuplicateRequest { network: String, subnet: IpNetwork },
    #[error("{owner} already holds a lease on network {network} ({addrs}); release it first")]
    OwnerExists {
        network: String,
        owner: String,
        addrs: String,
    },
    #[error("lease file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("lease file {path} has version {version}, this berth reads versions 1 and 2; upgrade berth or move the file away")]
    Version { path: PathBuf, version: u32 },
    #[error("lease file {path} is corrupt ({source}); move it away to start with no leases")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// One subnet of a network with its (resolved) gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetDef {
    pub subnet: IpNetwork,
    pub gateway: IpAddr,
}

/// What an endpoint asks for.
#[derive(Debug, Clone, Default)]
pub struct LeaseRequest {
    /// Key of the endpoint (e.g. `<container-id>/eth0`); unique within the network.
    pub owner: String,
    /// Specific addresses (at most one per subnet); other subnets get the next free address.
    pub requested: Vec<IpAddr>,
    /// The namespace the endpoint lives in, so that reconcile can release leases of vanished ones.
    pub netns: Option<PathBuf>,
    /// The interface name inside the namespace.
    pub ifname: Option<String>,
}

/// An endpoint's addresses on one network: one per subnet, with the subnet's prefix length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub addresses: Vec<IpNetwork>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
}

impl Lease {
    /// The IPv4 address, if the network has an IPv4 subnet.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.addresses.iter().find_map(|a| match a.ip() {
            IpAddr::V4(v) => Some(v),
            _ => None,
        })
    }
    /// The IPv6 address, if the network has an IPv6 subnet.
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        self.addresses.iter().find_map(|a| match a.ip() {
            IpAddr::V6(v) => Some(v),
            _ => None,
        })
    }
}

/// Version of the snapshot written: 2 has a journal beside it (`seq`); version 1 files (no
/// journal) are read as they are.
const LEASE_FILE_VERSION: u32 = 2;

/// Journal entries after which the journal is folded into the snapshot even with few leases.
pub const COMPACT_MIN: usize = 512;

#[derive(Deserialize)]
struct LeaseFile {
    version: u32,
    network: String,
    /// next address to try, per subnet
    #[serde(default)]
    cursors: BTreeMap<String, IpAddr>,
    leases: Vec<Lease>,
    /// the last journal entry this snapshot includes
    #[serde(default)]
    seq: u64,
}

#[derive(Serialize)]
struct LeaseFileOut<'a> {
    version: u32,
    network: String,
    cursors: BTreeMap<String, IpAddr>,
    leases: Vec<&'a Lease>,
    seq: u64,
}

/// One line of the journal: a lease added (with the cursors after it) or an owner released.
#[derive(Serialize, Deserialize)]
struct JournalEntry {
    seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    add: Option<Lease>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    del: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    cursors: BTreeMap<String, IpAddr>,
}

/// A journal line written but not yet flushed ([`Ipam::allocate_deferred`]).
#[derive(Debug)]
#[must_use = "the lease is not durable until wait() returns Ok"]
pub struct LeaseSync {
    file: Option<File>,
    dir: Option<PathBuf>,
    path: PathBuf,
}

impl LeaseSync {
    fn done() -> LeaseSync {
        LeaseSync {
            file: None,
            dir: None,
            path: PathBuf::new(),
        }
    }

    fn flush(&self) -> io::Result<()> {
        if let Some(f) = &self.file {
            f.sync_data()?;
        }
        if let Some(d) = &self.dir {
            File::open(d)?.sync_all()?;
        }
        Ok(())
    }

    /// fdatasync of the journal (and of its directory for a new journal). Blocks.
    pub fn wait(self) -> Result<(), IpamError> {
        self.flush().map_err(|source| IpamError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Address management of one network, persisted in `<dir>/<network>.json`.
#[derive(Debug)]
pub struct Ipam {
    network: String,
    path: PathBuf,
    journal: PathBuf,
    pools: Vec<Pool>,
    leases: BTreeMap<String, Lease>,
    holders: HashMap<IpAddr, String>,
    /// sequence number of the last journal entry written
    seq: u64,
    /// entries in the journal since the last snapshot
    journaled: usize,
    /// the journal's tail may be torn (a failed append could not be undone): the next change
    /// is persisted by a snapshot, which empties the journal
    must_compact: bool,
}

impl Ipam {
    /// The lease file of `network` under `dir`.
    pub fn file_path(dir: &Path, network: &str) -> PathBuf {
        dir.join(format!("{network}.json"))
    }

    /// The journal of `network` under `dir` (changes since the snapshot).
    pub fn journal_path(dir: &Path, network: &str) -> PathBuf {
        dir.join(format!("{network}.journal"))
    }

    /// Open (or start) the leases of `network`. Leases on disk whose addresses no longer fit the
    /// subnets (the network was redefined) or collide are dropped with a warning.
    pub fn open(dir: &Path, network: &str, subnets: &[SubnetDef]) -> Result<Ipam, IpamError> {
        let path = Self::file_path(dir, network);
        let io_err = |source| IpamError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(dir).map_err(io_err)?;
        fsutil::sweep_tmp(&path);
        let mut pools = Vec::with_capacity(subnets.len());
        for def in subnets {
            let p = Pool::new(network, def)?;
            if pools
                .iter()
                .any(|q: &Pool| q.def.subnet.is_ipv4() == p.def.subnet.is_ipv4())
            {
                return Err(IpamError::BadSubnet {
                    network: network.to_string(),
                    subnet: def.subnet,
                    reason: "a network has at most one IPv4 and one IPv6 subnet".into(),
                });
            }
            pools.push(p);
        }
        let mut ipam = Ipam {
            network: network.to_string(),
            path: path.clone(),
            journal: Self::journal_path(dir, network),
            pools,
            leases: BTreeMap::new(),
            holders: HashMap::new(),
            seq: 0,
            journaled: 0,
            must_compact: false,
        };
        match fs::read(&path) {
            Ok(data) => {
                let file: LeaseFile =
                    serde_json::from_slice(&data).map_err(|source| IpamError::Corrupt {
                        path: path.clone(),
                        source,
                    })?;
                if !(1..=LEASE_FILE_VERSION).contains(&file.version) {
                    return Err(IpamError::Version {
                        path,
                        version: file.version,
                    });
                }
                if file.network != network {
                    tracing::warn!(network, stored = %file.network, path = %path.display(),
                        "lease file names another network; taking its leases for this one");
                }
                ipam.seq = file.seq;
                ipam.set_cursors(&file.cursors);
                for lease in file.leases {
                    ipam.load(lease);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        if ipam.replay()? {
            // fold the journal in: the next open reads one file, and a torn tail is gone
            ipam.compact()?;
        }
        Ok(ipam)
    }

    /// Applies the journal entries the snapshot does not include; whether there was a journal.
    fn replay(&mut self) -> Result<bool, IpamError> {
        let data = match fs::read(&self.journal) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(IpamError::Io {
                    path: self.journal.clone(),
                    source,
                })
            }
        };
        if data.is_empty() {
            return Ok(false);
        }
        let complete = data.ends_with(b"\n");
        let lines: Vec<&[u8]> = data
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let n = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            let e: JournalEntry = match serde_json::from_slice(line) {
                Ok(e) => e,
                Err(err) => {
                    if i + 1 < n || complete {
                        tracing::warn!(network = %self.network, path = %self.journal.display(), error = %err,
                            "skipping an unreadable lease journal entry");
                    }
                    // else: the torn tail of an append that never returned
                    continue;
                }
            };
            if e.seq <= self.seq {
                continue; // already in the snapshot
            }
            self.seq = e.seq;
            if let Some(owner) = e.del {
                if let Some(l) = self.leases.remove(&owner) {
                    self.forget(&l);
                }
            }
            if let Some(l) = e.add {
                self.load(l);
            }
            self.set_cursors(&e.cursors);
        }
        Ok(true)
    }

    fn set_cursors(&mut self, cursors: &BTreeMap<String, IpAddr>) {
        for pool in &mut self.pools {
            if let Some(c) = cursors.get(&pool.def.subnet.to_string()) {
                if let Some(off) = offset_of(pool.def.subnet, *c) {
                    if (pool.first..=pool.last).contains(&off) {
                        pool.cursor = off;
                    }
                }
            }
        }
    }

    /// Takes a stored lease, unless it no longer fits the network or collides with one taken.
    fn load(&mut self, lease: Lease) {
        let network = self.network.as_str();
        let mut offs = Vec::with_capacity(lease.addresses.len());
        for a in &lease.addresses {
            let found = self.pools.iter().enumerate().find_map(|(i, p)| {
                offset_of(p.def.subnet, a.ip())
                    .filter(|o| {
                        (p.first..=p.last).contains(o) && *o != p.gw_off && !p.used.contains(o)
                    })
                    .map(|o| (i, o))
            });
            match found {
                Some(x) if !self.holders.contains_key(&a.ip()) => offs.push(x),
                _ => {
                    tracing::warn!(network, owner = %lease.owner, address = %a,
                        "dropping a stored lease that no longer fits the network");
                    return;
                }
            }
        }
        if self.leases.contains_key(&lease.owner) {
            tracing::warn!(network, owner = %lease.owner, "dropping a duplicate stored lease");
            return;
        }
        for (i, o) in offs {
            self.pools[i].used.insert(o);
        }
        for a in &lease.addresses {
            self.holders.insert(a.ip(), lease.owner.clone());
        }
        self.leases.insert(lease.owner.clone(), lease);
    }

    /// Delete the lease file and journal of a network (network removal).
    pub fn remove_file(dir: &Path, network: &str) -> Result<(), IpamError> {
        for path in [
            Self::journal_path(dir, network),
            Self::file_path(dir, network),
        ] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(IpamError::Io { path, source }),
            }
        }
        Ok(())
    }

    pub fn network(&self) -> &str {
        &self.network
    }

    pub fn subnets(&self) -> impl Iterator<Item = &SubnetDef> {
        self.pools.iter().map(|p| &p.def)
    }

    /// Allocate one address in every subnet for `req.owner`, persist, and return the lease.
    /// Nothing changes when it fails.
    pub fn allocate(&mut self, req: LeaseRequest) -> Result<Lease, IpamError> {
        self.allocate_inner(req, false).map(|(l, _)| l)
    }

    /// [`Ipam::allocate`], except that the journal line is written but not yet flushed: the
    /// caller does [`LeaseSync::wait`] (e.g. on a blocking thread, while it wires the
    /// endpoint) before it relies on the lease surviving a crash, and releases the lease when
    /// that fails. Concurrent waits share the disk flush.
    pub fn allocate_deferred(
        &mut self,
        req: LeaseRequest,
    ) -> Result<(Lease, LeaseSync), IpamError> {
        self.allocate_inner(req, true)
    }

    fn allocate_inner(
        &mut self,
        req: LeaseRequest,
        defer: bool,
    ) -> Result<(Lease, LeaseSync), IpamError> {
        if let Some(l) = self.leases.get(&req.owner) {
            return Err(IpamError::OwnerExists {
                network: self.network.clone(),
                owner: req.owner,
                addrs: join(&l.addresses),
            });
        }
        // validate every requested address before touching anything
        let mut wanted: Vec<Option<u128>> = vec![None; self.pools.len()];
        for ip in &req.requested {
            let Some((i, off)) = self
                .pools
                .iter()
                .enumerate()
                .find_map(|(i, p)| offset_of(p.def.subnet, *ip).map(|o| (i, o)))
            else {
                return Err(IpamError::OutsideSubnets {
                    network: self.network.clone(),
                    ip: *ip,
                    subnets: join(self.pools.iter().map(|p| p.def.subnet)),
                });
            };
            let p = &self.pools[i];
            if let Some(what) = reserved_what(&p.def, off, p.first, p.last) {
                return Err(IpamError::Reserved {
                    network: self.network.clone(),
                    ip: *ip,
                    subnet: p.def.subnet,
                    what,
                });
            }
            if let Some(owner) = self.holders.get(ip) {
                return Err(IpamError::InUse {
                    network: self.network.clone(),
                    ip: *ip,
                    owner: owner.clone(),
                });
            }
            if wanted[i].replace(off).is_some() {
                return Err(IpamError::DuplicateRequest {
                    network: self.network.clone(),
                    subnet: p.def.subnet,
                });
            }
        }
        let cursors: Vec<u128> = self.pools.iter().map(|p| p.cursor).collect();
        let mut taken = Vec::with_capacity(self.pools.len());
        for (i, w) in wanted.iter().enumerate() {
            let off = match w {
                Some(o) => *o,
                None => match self.pools[i].next_free(&self.network) {
                    Ok(o) => o,
                    Err(e) => {
                        self.undo(&taken, &cursors);
                        return Err(e);
                    }
                },
            };
            self.pools[i].used.insert(off);
            taken.push((i, off));
        }
        let lease = Lease {
            owner: req.owner,
            addresses: taken
                .iter()
                .map(|&(i, off)| {
                    let s = self.pools[i].def.subnet;
                    // the prefix comes from a valid network, so this cannot fail
                    IpNetwork::new(ip_at(s, off), s.prefix()).unwrap_or(s)
                })
                .collect(),
            netns: req.netns,
            ifname: req.ifname,
        };
        for a in &lease.addresses {
            self.holders.insert(a.ip(), lease.owner.clone());
        }
        self.leases.insert(lease.owner.clone(), lease.clone());
        let entry = JournalEntry {
            seq: 0,
            add: Some(lease.clone()),
            del: None,
            cursors: self.cursors(),
        };
        match self.persist(entry, defer) {
            Ok(sync) => Ok((lease, sync)),
            Err(e) => {
                self.leases.remove(&lease.owner);
                for a in &lease.addresses {
                    self.holders.remove(&a.ip());
                }
                self.undo(&taken, &cursors);
                Err(e)
            }
        }
    }

    fn undo(&mut self, taken: &[(usize, u128)], cursors: &[u128]) {
        for &(i, off) in taken {
            self.pools[i].used.remove(&off);
        }
        for (p, c) in self.pools.iter_mut().zip(cursors) {
            p.cursor = *c;
        }
    }

    /// Release the lease of `owner` (None when it held none) and persist.
    pub fn release(&mut self, owner: &str) -> Result<Option<Lease>, IpamError> {
        let Some(lease) = self.leases.remove(owner) else {
            return Ok(None);
        };
        self.forget(&lease);
        let entry = JournalEntry {
            seq: 0,
            add: None,
            del: Some(lease.owner.clone()),
            cursors: BTreeMap::new(),
        };
        if let Err(e) = self.persist(entry, false) {
            self.remember(&lease);
            self.leases.insert(lease.owner.clone(), lease);
            return Err(e);
        }
        Ok(Some(lease))
    }

    /// Release every lease for which `keep` is false (reconcile: the namespace is gone), with a
    /// single write. Returns the released leases.
    pub fn retain(
        &mut self,
        mut keep: impl FnMut(&Lease) -> bool,
    ) -> Result<Vec<Lease>, IpamError> {
        let gone: Vec<String> = self
            .leases
            .values()
            .filter(|l| !keep(l))
            .map(|l| l.owner.clone())
            .collect();
        if gone.is_empty() {
            return Ok(Vec::new());
        }
        let mut released = Vec::with_capacity(gone.len());
        for o in gone {
            if let Some(l) = self.leases.remove(&o) {
                self.forget(&l);
                released.push(l);
            }
        }
        if let Err(e) = self.compact() {
            for l in released {
                self.remember(&l);
                self.leases.insert(l.owner.clone(), l);
            }
            return Err(e);
        }
        Ok(released)
    }

    fn forget(&mut self, lease: &Lease) {
        for a in &lease.addresses {
            self.holders.remove(&a.ip());
            for p in &mut self.pools {
                if let Some(o) = offset_of(p.def.subnet, a.ip()) {
                    p.used.remove(&o);
                }
            }
        }
    }

    fn remember(&mut self, lease: &Lease) {
        for a in &lease.addresses {
            self.holders.insert(a.ip(), lease.owner.clone());
            for p in &mut self.pools {
                if let Some(o) = offset_of(p.def.subnet, a.ip()) {
                    p.used.insert(o);
                }
            }
        }
    }

    pub fn get(&self, owner: &str) -> Option<&Lease> {
        self.leases.get(owner)
    }

    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// Who holds `ip`, if anyone.
    pub fn holder(&self, ip: IpAddr) -> Option<&str> {
        self.holders.get(&ip).map(String::as_str)
    }

    /// `(subnet, addresses that can be handed out, addresses in use)` per subnet.
    pub fn usage(&self) -> Vec<(IpNetwork, u128, u128)> {
        self.pools
            .iter()
            .map(|p| (p.def.subnet, p.capacity, p.used.len() as u128))
            .collect()
    }

    fn cursors(&self) -> BTreeMap<String, IpAddr> {
        self.pools
            .iter()
            .map(|p| (p.def.subnet.to_string(), ip_at(p.def.subnet, p.cursor)))
            .collect()
    }

    /// Makes one change (already applied in memory) durable: a journal append, or a snapshot
    /// when the journal cannot take it. The journal is folded into the snapshot when it has
    /// grown as large as the leases; a failure of that is only logged (the change is durable).
    fn persist(&mut self, mut entry: JournalEntry, defer: bool) -> Result<LeaseSync, IpamError> {
        if self.must_compact {
            return self.compact().map(|()| LeaseSync::done());
        }
        entry.seq = self.seq + 1;
        let mut sync = self.append(&entry, defer)?;
        self.seq = entry.seq;
        self.journaled += 1;
        if self.journaled >= COMPACT_MIN.max(self.leases.len()) {
            match self.compact() {
                // the snapshot holds the change durably
                Ok(()) => sync = LeaseSync::done(),
                Err(e) => {
                    tracing::warn!(network = %self.network, error = %e,
                        "cannot fold the lease journal into the lease file; will retry")
                }
            }
        }
        Ok(sync)
    }

    /// Appends one line to the journal with a single write, then (unless `defer`) fdatasync.
    /// On failure the journal is cut back to where it was.
    fn append(&mut self, entry: &JournalEntry, defer: bool) -> Result<LeaseSync, IpamError> {
        let io_err = |source| IpamError::Io {
            path: self.journal.clone(),
            source,
        };
        let mut line = serde_json::to_vec(entry).map_err(|e| io_err(io::Error::other(e)))?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&self.journal)
            .map_err(io_err)?;
        let len = f.metadata().map_err(io_err)?.len();
        let mut sync = LeaseSync {
            // a new (or emptied) journal: its directory entry must be durable too
            dir: self
                .journal
                .parent()
                .filter(|_| len == 0)
                .map(Path::to_path_buf),
            path: self.journal.clone(),
            file: None,
        };
        let mut written = f.write_all(&line);
        if defer {
            sync.file = Some(f);
            return match written {
                Ok(()) => Ok(sync),
                Err(e) => {
                    if let Some(f) = sync.file.take() {
                        if f.set_len(len).is_err() {
                            self.must_compact = true;
                        }
                    }
                    Err(io_err(e))
                }
            };
        }
        if written.is_ok() {
            sync.file = Some(f);
            written = sync.flush();
            f = sync.file.take().expect("set above");
        }
        if let Err(e) = written {
            if f.set_len(len).and_then(|()| f.sync_data()).is_err() {
                self.must_compact = true;
            }
            return Err(io_err(e));
        }
        Ok(LeaseSync::done())
    }

    /// Writes the snapshot (which includes every change so far: once it is written, the
    /// change being persisted is durable), then empties the journal. Entries up to `seq` are
    /// in the snapshot, so a journal that could not be emptied is harmless: it is only logged,
    /// and the next change is persisted by a snapshot again.
    fn compact(&mut self) -> Result<(), IpamError> {
        self.save()?;
        self.journaled = 0;
        let emptied = match OpenOptions::new().write(true).open(&self.journal) {
            Ok(f) => f.set_len(0).and_then(|()| f.sync_data()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        self.must_compact = emptied.is_err();
        if let Err(e) = emptied {
            tracing::warn!(network = %self.network, path = %self.journal.display(), error = %e,
                "cannot empty the lease journal");
        }
        Ok(())
    }

    fn save(&self) -> Result<(), IpamError> {
        let file = LeaseFileOut {
            version: LEASE_FILE_VERSION,
            network: self.network.clone(),
            cursors: self.cursors(),
            leases: self.leases.values().collect(),
            seq: self.seq,
        };
        let data = serde_json::to_vec(&file).map_err(|e| IpamError::Io {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        fsutil::write_atomic(&self.path, &data).map_err(|source| IpamError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

fn join<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
