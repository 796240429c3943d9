//! The container log: docker's json-file format, one JSON object a line,
//! `{"log":"…\n","stream":"stdout","time":"2026-01-01T00:00:00.123456789Z"}`, at
//! `<root>/containers/<id>/<id>-json.log`. The monitor appends ([`LogWriter`]); `berth logs`
//! reads ([`LogReader`]), and with `-f` keeps reading while the container runs.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

/// A line longer than this is written in pieces (as docker does at 16 KiB).
const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One log line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogEntry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Appends the container's output to its log, a line at a time.
pub struct LogWriter {
    file: File,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn open(path: &Path) -> io::Result<LogWriter> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(LogWriter {
            file,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Logs `data` read from `stream`; an unfinished last line waits for the rest.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let i = stream as usize;
        let mut buf = std::mem::take(&mut self.partial[i]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            self.entry(stream, &buf[start..start + nl + 1])?;
            start += nl + 1;
        }
        while buf.len() - start >= MAX_LINE {
            self.entry(stream, &buf[start..start + MAX_LINE])?;
            start += MAX_LINE;
        }
        buf.drain(..start);
        self.partial[i] = buf;
        Ok(())
    }

    /// Logs what is left of unfinished lines (output that did not end in a newline).
    pub fn finish(&mut self) -> io::Result<()> {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.partial[stream as usize]);
            if !rest.is_empty() {
                self.entry(stream, &rest)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, stream: Stream, line: &[u8]) -> io::Result<()> {
        let entry = LogEntry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: stream.as_str().to_string(),
            time: super::lifecycle::now(),
        };
        let mut out = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        out.push(b'\n');
        // One write of a whole line: with O_APPEND a reader never sees two lines interleaved.
        self.file.write_all(&out)
    }
}

/// Reads log entries, resuming where the last read stopped (for `logs -f`).
pub struct LogReader {
    file: Option<File>,
    pending: Vec<u8>,
}

impl LogReader {
    /// A missing log (a container that never ran) reads as empty.
    pub fn open(path: &Path) -> io::Result<LogReader> {
        let file = match File::open(path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(LogReader {
            file,
            pending: Vec::new(),
        })
    }

    /// The complete entries written since the last call. Malformed lines are skipped.
    pub fn read_new(&mut self) -> io::Result<Vec<LogEntry>> {
        let Some(file) = self.file.as_mut() else {
            return Ok(Vec::new());
        };
        file.read_to_end(&mut self.pending)?;
        let Some(last_nl) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        let rest = self.pending.split_off(last_nl + 1);
        let done = std::mem::replace(&mut self.pending, rest);
        Ok(done
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-json.log");
        let mut w = LogWriter::open(&path).unwrap();
        w.write(Stream::Stdout, b"a\nb").unwrap();
        w.write(Stream::Stderr, b"e\n").unwrap();
        w.write(Stream::Stdout, b"c\nd").unwrap();
        w.finish().unwrap();
        let mut r = LogReader::open(&path).unwrap();
        let got: Vec<(String, String)> = r
            .read_new()
            .unwrap()
            .into_iter()
            .map(|e| (e.stream, e.log))
            .collect();
        let want = [
            ("stdout", "a\n"),
            ("stderr", "e\n"),
            ("stdout", "bc\n"),
            ("stdout", "d"),
        ]
        .map(|(s, l)| (s.to_string(), l.to_string()));
        assert_eq!(got, want);
        assert!(r.read_new().unwrap().is_empty());
    }
}
