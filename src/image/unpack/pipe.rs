//! Two-stage pipeline: the calling thread reads, hashes and decompresses the blob while a helper
//! thread hashes the tar stream (the diff id), parses it and does the filesystem work. The two
//! halves cost about the same (read + SHA-256 of the blob + inflate, vs. SHA-256 of the tar +
//! thousands of create/write/chown/chmod/utimens calls), so on two cores unpacking takes about
//! the time of the slower half instead of the sum.
//!
//! The input reader stays on the calling thread (it need not be `Send`). Buffers go back and
//! forth through a second channel, so steady state allocates nothing. The helper thread is
//! scoped: it always ends before [`run`] returns, and no thread outlives the call.

use super::UnpackError;
use crate::image::digest::Digest;
use sha2::{Digest as _, Sha256};
use std::io::{self, BufRead, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Bytes per chunk handed to the helper thread.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight (memory bound: (DEPTH + 2) * CHUNK).
const DEPTH: usize = 8;

/// The helper thread's view of the stream: chunks from the channel, as a `BufRead`.
pub(super) struct ChunkReader {
    rx: Receiver<(Vec<u8>, usize)>,
    back: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    len: usize,
    pos: usize,
    /// Hashes every chunk as it arrives, when the caller wants the stream's digest.
    hasher: Option<Sha256>,
}

impl ChunkReader {
    /// Receives chunks until the producer is done, discarding them. Lets the producer read its
    /// input to the end after the tar's end marker.
    fn discard_rest(&mut self) {
        while let Ok((buf, len)) = self.rx.recv() {
            if let Some(h) = &mut self.hasher {
                h.update(&buf[..len]);
            }
            let _ = self.back.try_send(buf);
        }
    }

    fn digest(self) -> Option<Digest> {
        // 64 lower-case hex digits: from_hex cannot refuse them.
        self.hasher
            .and_then(|h| Digest::from_hex(&hex::encode(h.finalize())).ok())
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.len {
            let old = std::mem::take(&mut self.cur);
            if old.capacity() > 0 {
                let _ = self.back.try_send(old);
            }
            self.pos = 0;
            self.len = 0;
            // A closed channel is the end of the stream; if the producer failed, it reports that.
            if let Ok((buf, len)) = self.rx.recv() {
                if let Some(h) = &mut self.hasher {
                    h.update(&buf[..len]);
                }
                self.cur = buf;
                self.len = len;
            }
        }
        Ok(&self.cur[self.pos..self.len])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.len);
    }
}

/// Reads `input` to its end on this thread, feeding it to `consume` on a helper thread; with
/// `hash`, also returns the SHA-256 of all of `input` (hashed on the helper thread). An error of
/// the input wins over what `consume` made of the shortened stream.
pub(super) fn run<S, T, F>(
    mut input: S,
    hash: bool,
    consume: F,
) -> Result<(T, Option<Digest>), UnpackError>
where
    S: Read,
    T: Send,
    F: FnOnce(&mut ChunkReader) -> Result<T, UnpackError> + Send,
{
    let (tx, rx) = sync_channel::<(Vec<u8>, usize)>(DEPTH);
    let (back_tx, back_rx) = sync_channel::<Vec<u8>>(DEPTH + 2);
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("berth-unpack".into())
            .spawn_scoped(scope, move || {
                let mut reader = ChunkReader {
                    rx,
                    back: back_tx,
                    cur: Vec::new(),
                    len: 0,
                    pos: 0,
                    hasher: hash.then(Sha256::new),
                };
                let value = consume(&mut reader)?;
                reader.discard_rest();
                Ok((value, reader.digest()))
            })
            .map_err(UnpackError::Thread)?;

        let mut produced: u64 = 0;
        let input_result = loop {
            let mut buf = back_rx.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
            let n = match super::read_up_to(&mut input, &mut buf) {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            if n == 0 {
                break Ok(());
            }
            produced += n as u64;
            if tx.send((buf, n)).is_err() {
                // The helper stopped on an error of its own; it reports it below.
                break Ok(());
            }
        };
        drop(tx);
        let result = match worker.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        match input_result {
            Err(e) => Err(super::tar::read_error(produced, e)),
            Ok(()) => result,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_every_byte_in_order_and_reads_the_input_to_its_end() {
        let data: Vec<u8> = (0..(3 * CHUNK + 123)).map(|i| (i % 251) as u8).collect();
        let mut input = &data[..];
        let (got, digest) = run(&mut input, true, |r| {
            let mut head = vec![0; CHUNK + 7];
            r.read_exact(&mut head).unwrap();
            Ok(head)
        })
        .unwrap();
        assert_eq!(got, data[..CHUNK + 7]);
        assert_eq!(digest, Some(Digest::of(&data)));
        assert!(
            input.is_empty(),
            "the producer must read the input to its end"
        );
    }

    #[test]
    fn input_errors_win() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = buf.len().min(self.0);
                self.0 -= n;
                Ok(n)
            }
        }
        let err = run(Failing(1000), false, |r| {
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            Err::<(), _>(UnpackError::Truncated {
                offset: 0,
                what: "short".into(),
            })
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
    }

    #[test]
    fn consumer_errors_stop_the_producer() {
        let err = run(io::repeat(0), true, |_| {
            Err::<(), _>(UnpackError::Malformed {
                offset: 0,
                what: "bad".into(),
            })
        })
        .unwrap_err();
        assert!(matches!(err, UnpackError::Malformed { .. }));
    }
}
