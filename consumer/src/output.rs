//! Capped capture of a child's output stream: keeps the last `cap` bytes and says whether
//! anything was dropped, so a chatty script cannot fill the consumer's memory.

use std::collections::VecDeque;
use std::sync::Arc;

use runfleet_common::live_logs::Stream;

use runfleet_common::run_state::CapturedOutput;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::live::LiveOutput;

/// A byte buffer that keeps only its newest `cap` bytes.
#[derive(Debug)]
pub struct TailBuffer {
    cap: usize,
    bytes: VecDeque<u8>,
    dropped: bool,
}

impl TailBuffer {
    /// An empty buffer holding at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        TailBuffer {
            cap,
            bytes: VecDeque::with_capacity(cap.min(64 * 1024)),
            dropped: false,
        }
    }

    /// Appends, dropping the oldest bytes beyond the cap.
    pub fn push(&mut self, chunk: &[u8]) {
        let chunk = if chunk.len() > self.cap {
            self.dropped = true;
            &chunk[chunk.len() - self.cap..]
        } else {
            chunk
        };
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(self.cap);
        if overflow > 0 {
            self.dropped = true;
            self.bytes.drain(..overflow);
        }
        self.bytes.extend(chunk);
    }

    /// The kept text. Invalid UTF-8 (including a character cut by truncation) becomes
    /// U+FFFD, and NUL becomes U+FFFD because Postgres text cannot hold it.
    pub fn finish(self) -> CapturedOutput {
        let (a, b) = self.bytes.as_slices();
        let mut raw = Vec::with_capacity(a.len() + b.len());
        raw.extend_from_slice(a);
        raw.extend_from_slice(b);
        let text = String::from_utf8_lossy(&raw).replace('\0', "\u{FFFD}");
        CapturedOutput {
            text,
            truncated: self.dropped,
        }
    }
}

/// Reads `stream` to its end into a [`TailBuffer`] of `cap` bytes, handing each read to
/// `live` too (as output stream `which`).
pub async fn capture(
    mut stream: impl AsyncRead + Unpin,
    cap: usize,
    live: Arc<LiveOutput>,
    which: Stream,
) -> CapturedOutput {
    let mut buf = TailBuffer::new(cap);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                live.push(which, &chunk[..n]);
                buf.push(&chunk[..n]);
            }
        }
    }
    buf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_under_the_cap() {
        let mut b = TailBuffer::new(10);
        b.push(b"hello");
        let out = b.finish();
        assert_eq!(out.text, "hello");
        assert!(!out.truncated);
    }

    #[test]
    fn keeps_the_tail_and_flags_truncation() {
        let mut b = TailBuffer::new(5);
        b.push(b"abc");
        b.push(b"defg");
        let out = b.finish();
        assert_eq!(out.text, "cdefg");
        assert!(out.truncated);

        let mut b = TailBuffer::new(3);
        b.push(b"0123456789");
        assert_eq!(b.finish().text, "789");
    }

    #[test]
    fn exact_cap_is_not_truncation() {
        let mut b = TailBuffer::new(4);
        b.push(b"ab");
        b.push(b"cd");
        let out = b.finish();
        assert_eq!(out.text, "abcd");
        assert!(!out.truncated);
    }

    #[test]
    fn nul_and_invalid_utf8_become_replacement_chars() {
        let mut b = TailBuffer::new(16);
        b.push(b"a\0b\xffc");
        assert_eq!(b.finish().text, "a\u{FFFD}b\u{FFFD}c");
    }

    #[tokio::test]
    async fn captures_a_stream() {
        let data = vec![b'x'; 100_000];
        let live = Arc::new(LiveOutput::new(uuid::Uuid::nil(), 1, 1 << 20, Vec::new()));
        let out = capture(&data[..], 1000, live.clone(), Stream::Stdout).await;
        assert_eq!(out.text.len(), 1000);
        assert!(out.truncated);
        let streamed: usize = live.take().iter().map(|c| c.data.len()).sum();
        assert_eq!(
            streamed,
            data.len(),
            "live output gets every byte, not just the tail"
        );
    }
}
