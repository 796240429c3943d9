//! "No allocation per sample": once warm, a scrape's allocation count must not grow with the
//! number of containers (counted by a global allocator wrapper in this test binary only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_metrics::{fixture, Collector, CollectorOptions, ContainerInfo};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter has no
// effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs_per_scrape(n: usize, version: &str) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let (proc_root, sys_root) = (tmp.path().join("proc"), tmp.path().join("sys"));
    fixture::write_host(&proc_root, &sys_root).unwrap();
    let containers: Vec<ContainerInfo> = (0..n)
        .map(|i| {
            let rel = format!("/berth/{i:064x}");
            let cgroup = if version == "v1" {
                fixture::write_v1(tmp.path(), &rel, i as u64)
            } else {
                fixture::write_v2(tmp.path(), &rel, i as u64)
            }
            .unwrap();
            fixture::write_net_dev(&proc_root, 1000 + i as i32, 0).unwrap();
            ContainerInfo {
                id: format!("{i:064x}"),
                name: format!("c{i}"),
                image: "img".into(),
                labels: vec![("a.b".into(), "x".into()), ("a-b".into(), "dup".into())],
                cgroup,
                pid: Some(1000 + i as i32),
                start_time: 1.0,
                pids_limit: None,
                priority: Some("low".into()),
            }
        })
        .collect();
    let mut c = Collector::new(CollectorOptions {
        proc_root,
        sys_root,
        self_metrics: false,
        read_threads: 2,
        spec_max_age: std::time::Duration::ZERO,
        ..CollectorOptions::default()
    });
    c.scrape(&containers);
    c.scrape(&containers);
    let before = ALLOCS.load(Ordering::Relaxed);
    let len = c.scrape(&containers).len();
    let count = ALLOCS.load(Ordering::Relaxed) - before;
    assert!(len > n * 1000);
    count
}

#[test]
fn allocations_do_not_grow_with_containers() {
    for v in ["v1", "v2"] {
        let small = allocs_per_scrape(70, v);
        let large = allocs_per_scrape(140, v);
        eprintln!("{v}: {small} allocations for 70 containers, {large} for 140");
        assert!(
            large <= small + 4,
            "{v}: {small} → {large}: something allocates per container or sample"
        );
        assert!(small < 64, "{v}: {small} allocations in a warm scrape");
    }
}
