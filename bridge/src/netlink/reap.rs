//! Deleting host interfaces in batches.
//!
//! Deleting a veth costs ~16 ms, nearly all of it the kernel waiting for RCU grace periods in
//! `unregister_netdevice_many`, which waits once for however many devices it removes. So
//! deletions asked for while one is in progress are gathered: each device is tagged with a
//! link group (`IFLA_GROUP`, an otherwise unused 32-bit number chosen at random per batch)
//! and one `RTM_DELLINK` of that group removes them all. A lone deletion takes as long as
//! before; 16 parallel detaches take about as long as one.

use std::io;
use std::sync::Mutex;

use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use tokio::sync::oneshot;

use super::batch::BatchSocket;
use super::NetlinkError;

type Reply = oneshot::Sender<Result<bool, NetlinkError>>;

struct Queue {
    waiting: Vec<(String, Reply)>,
    /// A batch is being deleted; it takes the next one when it is done.
    running: bool,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    waiting: Vec::new(),
    running: false,
});

/// Delete the host interface `name` (the caller's namespace must be the host's, as is every
/// async task's), together with others asked for meanwhile. Whether it existed.
pub(crate) async fn delete(name: &str) -> Result<bool, NetlinkError> {
    let (tx, rx) = oneshot::channel();
    let start = {
        let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
        q.waiting.push((name.to_string(), tx));
        !std::mem::replace(&mut q.running, true)
    };
    if start {
        // the deletions block in the kernel: not on an async worker
        tokio::task::spawn_blocking(run);
    }
    rx.await
        .map_err(|_| NetlinkError::Socket(io::Error::other("link deleter died")))?
}

/// Delete batches until no one waits.
fn run() {
    let mut sock = BatchSocket::open();
    loop {
        let batch = {
            let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
            if q.waiting.is_empty() {
                q.running = false;
                return;
            }
            std::mem::take(&mut q.waiting)
        };
        match &mut sock {
            Ok(s) => delete_batch(s, batch),
            Err(e) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(socket_error(e)));
                }
            }
        }
    }
}

/// A socket error, for every waiter of a batch (io::Error is not Clone).
fn socket_error(e: &io::Error) -> NetlinkError {
    NetlinkError::Socket(io::Error::new(e.kind(), e.to_string()))
}

fn by_name(name: &str) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m
}

fn delete_batch(sock: &mut BatchSocket, batch: Vec<(String, Reply)>) {
    // nonzero and above any group an administrator numbers by hand
    let group = rand::random::<u32>() | 0x8000_0000;
    let tags = batch
        .iter()
        .map(|(name, _)| {
            let mut m = by_name(name);
            m.attributes.push(LinkAttribute::Group(group));
            (RouteNetlinkMessage::SetLink(m), 0)
        })
        .collect();
    let tagged = match sock.run(tags) {
        Ok(t) => t,
        Err(e) => {
            for (_, reply) in batch {
                let _ = reply.send(Err(socket_error(&e)));
            }
            return;
        }
    };
    let any = tagged.iter().any(|t| t.is_ok());
    let deleted = if any {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::Group(group));
        sock.run_one(RouteNetlinkMessage::DelLink(m), 0)
    } else {
        Ok(Ok(()))
    };
    for ((name, reply), tag) in batch.into_iter().zip(tagged) {
        let r = match (tag, &deleted) {
            // gone already
            (Err(libc::ENODEV), _) => Ok(false),
            (Err(errno), _) => Err(NetlinkError::from_errno(
                format!("delete link {name} (tag it for deletion)"),
                errno,
            )),
            // deleted with its group; ENODEV: someone else deleted them first
            (Ok(()), Ok(Ok(()))) | (Ok(()), Ok(Err(libc::ENODEV))) => Ok(true),
            (Ok(()), Ok(Err(errno))) => Err(NetlinkError::from_errno(
                format!("delete link {name}"),
                *errno,
            )),
            (Ok(()), Err(e)) => Err(socket_error(e)),
        };
        let _ = reply.send(r);
    }
}
