//! A blocking netlink socket that sends several requests in one datagram.
//!
//! Wiring a container interface takes half a dozen requests (addresses, links up, routes).
//! Through the async [`Handle`](rtnetlink::Handle) each one is a round trip between the calling
//! task, the connection task and the kernel, with two thread wake-ups on a busy agent. A
//! namespace thread ([`NsThread`](super::NsThread)) is a plain OS thread anyway, so there the
//! requests go to the kernel in one `send` and their acknowledgements come back together. The
//! kernel handles the messages of a datagram one after another and acknowledges each (an
//! error in one does not stop the next), so every request gets its own result.

use std::io;
use std::os::fd::AsRawFd;

use rtnetlink::packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// The outcome of one request: done, or the errno the kernel refused it with. (Only requests
/// that change something are batched; their acknowledgement is all the kernel sends.)
pub(crate) type Outcome = Result<(), i32>;

/// A route netlink socket of the calling thread's namespace, used synchronously.
pub(crate) struct BatchSocket {
    sock: Socket,
    seq: u32,
}

impl BatchSocket {
    /// Open a socket in the calling thread's network namespace (it stays there).
    pub(crate) fn open() -> io::Result<BatchSocket> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        sock.set_netlink_get_strict_chk(true)?;
        // errors come back without a copy of the request
        sock.set_cap_ack(true)?;
        Ok(BatchSocket { sock, seq: 0 })
    }

    /// Send `requests` (message, extra `NLM_F_*` flags) in one datagram and collect one
    /// [`Outcome`] per request, in order. Every request is sent with `NLM_F_REQUEST | NLM_F_ACK`.
    pub(crate) fn run(
        &mut self,
        requests: Vec<(RouteNetlinkMessage, u16)>,
    ) -> io::Result<Vec<Outcome>> {
        let n = requests.len();
        let first = self.seq.wrapping_add(1);
        let mut out = Vec::new();
        for (msg, flags) in requests {
            self.seq = self.seq.wrapping_add(1);
            let mut m =
                NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::InnerMessage(msg));
            m.header.flags = flags | NLM_F_REQUEST | NLM_F_ACK;
            m.header.sequence_number = self.seq;
            m.finalize();
            let at = out.len();
            out.resize(at + m.buffer_len(), 0);
            m.serialize(&mut out[at..]);
        }
        self.sock.send(&out, 0)?;

        let mut done: Vec<Option<Outcome>> = vec![None; n];
        let mut left = n;
        let mut buf = vec![0u8; 32 * 1024];
        while left > 0 {
            // SAFETY: recv into a buffer we own, with its length.
            let len =
                unsafe { libc::recv(self.sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if len < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut data = &buf[..len as usize];
            while data.len() >= 16 {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(data)
                    .map_err(|e| io::Error::other(format!("bad netlink reply: {e}")))?;
                let size = (m.header.length as usize).max(16);
                let i = m.header.sequence_number.wrapping_sub(first) as usize;
                if i < n && done[i].is_none() {
                    if let NetlinkPayload::Error(e) = m.payload {
                        done[i] = Some(e.code.map_or(Ok(()), |c| Err(-c.get())));
                        left -= 1;
                    }
                }
                data = &data[((size + 3) & !3).min(data.len())..];
            }
        }
        Ok(done
            .into_iter()
            .map(|o| o.unwrap_or(Err(libc::EIO)))
            .collect())
    }

    /// [`BatchSocket::run`] of a single request.
    pub(crate) fn run_one(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<Outcome> {
        Ok(self
            .run(vec![(msg, flags)])?
            .pop()
            .unwrap_or(Err(libc::EIO)))
    }
}
