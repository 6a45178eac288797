//! Live output of a running script: what it printed since the last flush, held until the
//! worker's watcher stores it as numbered chunks (`runfleet_common::live_logs`), so the
//! API can show a run's output while it runs.
//!
//! Only complete lines are flushed, so a secret value is never cut in two and missed by
//! redaction; a line longer than [`PARTIAL_FLUSH_BYTES`] is flushed in pieces, except for
//! a run with secrets. A run whose secret value spans lines streams nothing live (its
//! output is still stored, redacted, when it ends). Each stream forwards at most `cap`
//! bytes live, the same cap as the stored output; past it, one notice says so.

use std::sync::Mutex;

use runfleet_common::live_logs::{Chunk, Stream};
use runfleet_common::secrets::{SecretEnv, redact};
use uuid::Uuid;

/// A line this long is flushed without waiting for its end (runs without secrets).
pub const PARTIAL_FLUSH_BYTES: usize = 8 * 1024;

/// The live output of one attempt.
#[derive(Debug)]
pub struct LiveOutput {
    run_id: Uuid,
    attempt: i32,
    cap: usize,
    secrets: Vec<SecretEnv>,
    enabled: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    streams: [Pending; 2],
    next_seq: i32,
    /// Chunks taken but not yet stored (Postgres was down): sent again first.
    unsent: Vec<Chunk>,
}

#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    forwarded: usize,
    /// The cap was reached: nothing more is forwarded.
    full: bool,
    notice_sent: bool,
}

impl LiveOutput {
    /// Live output for (`run_id`, `attempt`), at most `cap` bytes per stream, redacting
    /// `secrets`.
    pub fn new(run_id: Uuid, attempt: i32, cap: usize, secrets: Vec<SecretEnv>) -> Self {
        let enabled = !secrets.iter().any(|s| s.value.contains('\n'));
        LiveOutput {
            run_id,
            attempt,
            cap,
            secrets,
            enabled,
            state: Mutex::new(State {
                next_seq: 1,
                ..State::default()
            }),
        }
    }

    /// Output that is never forwarded (unit tests, runs that never start).
    pub fn disabled() -> Self {
        let mut live = LiveOutput::new(Uuid::nil(), 0, 0, Vec::new());
        live.enabled = false;
        live
    }

    /// Holds `bytes` the script wrote to `stream` for the next flush.
    pub fn push(&self, stream: Stream, bytes: &[u8]) {
        if !self.enabled {
            return;
        }
        let mut state = self
            .state
            .lock()
            .expect("live output lock is never poisoned");
        let p = &mut state.streams[stream.index()];
        if p.full {
            return;
        }
        let room = self.cap.saturating_sub(p.forwarded + p.bytes.len());
        if bytes.len() > room {
            p.full = true;
        }
        p.bytes.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// What is ready to store: complete lines (and over-long pieces), redacted, numbered.
    /// Chunks a failed flush handed back come first.
    pub fn take(&self) -> Vec<Chunk> {
        let mut state = self
            .state
            .lock()
            .expect("live output lock is never poisoned");
        let mut out = std::mem::take(&mut state.unsent);
        for stream in [Stream::Stdout, Stream::Stderr] {
            let allow_partial = self.secrets.is_empty();
            let p = &mut state.streams[stream.index()];
            let cut = ready_len(&p.bytes, allow_partial, p.full);
            let mut text = String::new();
            if cut > 0 {
                let piece: Vec<u8> = p.bytes.drain(..cut).collect();
                p.forwarded += cut;
                // The same conversion as the stored output, so the live text is a prefix of it.
                text = String::from_utf8_lossy(&piece).replace('\0', "\u{FFFD}");
                if !self.secrets.is_empty() {
                    text = redact(&text, &self.secrets);
                }
            }
            if p.full && !allow_partial {
                // The cap cut a line of a run with secrets: never send a piece of it.
                p.bytes.clear();
            }
            if p.full && p.bytes.is_empty() && !p.notice_sent {
                p.notice_sent = true;
                text.push_str(&format!(
                    "\n[runfleet: live {} stops after {} bytes; the stored logs keep the last {} bytes when the run ends]\n",
                    stream.as_str(),
                    p.forwarded,
                    self.cap
                ));
            }
            if !text.is_empty() {
                let seq = state.next_seq;
                state.next_seq += 1;
                out.push(Chunk {
                    run_id: self.run_id,
                    attempt: self.attempt,
                    seq,
                    stream,
                    data: text,
                });
            }
        }
        out
    }

    /// True when `chunk` is this attempt's.
    pub fn owns(&self, chunk: &Chunk) -> bool {
        chunk.run_id == self.run_id && chunk.attempt == self.attempt
    }

    /// Hands back chunks that could not be stored, to be sent again by the next flush.
    pub fn give_back(&self, chunks: Vec<Chunk>) {
        let mut state = self
            .state
            .lock()
            .expect("live output lock is never poisoned");
        let newer = std::mem::replace(&mut state.unsent, chunks);
        state.unsent.extend(newer);
    }
}

/// How many leading bytes of `pending` to flush: up to its last newline; everything
/// when `partial` and the stream is `full`; or, when `partial` and the unfinished line is
/// [`PARTIAL_FLUSH_BYTES`] long, all but a trailing incomplete UTF-8 character.
fn ready_len(pending: &[u8], partial: bool, full: bool) -> usize {
    let lines = pending
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let unfinished = pending.len() - lines;
    if partial && full {
        // Nothing more will come: a cut character becomes U+FFFD.
        pending.len()
    } else if partial && unfinished >= PARTIAL_FLUSH_BYTES {
        pending.len() - incomplete_tail(pending)
    } else {
        lines
    }
}

/// Bytes at the end of `bytes` that begin a UTF-8 character not yet complete.
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: look further back for the lead
        }
        let needs = match b {
            0xF0..=0xF7 => 4,
            0xE0..=0xEF => 3,
            0xC0..=0xDF => 2,
            _ => 1,
        };
        return if needs > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(chunks: &[Chunk]) -> Vec<(Stream, &str)> {
        chunks.iter().map(|c| (c.stream, c.data.as_str())).collect()
    }

    #[test]
    fn flushes_complete_lines_and_keeps_the_rest() {
        let live = LiveOutput::new(Uuid::nil(), 1, 1024, Vec::new());
        live.push(Stream::Stdout, b"one\ntw");
        live.push(Stream::Stderr, b"oops\n");
        let first = live.take();
        assert_eq!(
            texts(&first),
            [(Stream::Stdout, "one\n"), (Stream::Stderr, "oops\n")]
        );
        assert_eq!(first.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(live.take().is_empty());
        live.push(Stream::Stdout, b"o\n");
        let second = live.take();
        assert_eq!(texts(&second), [(Stream::Stdout, "two\n")]);
        assert_eq!(second[0].seq, 3);
    }

    #[test]
    fn a_long_line_is_flushed_in_pieces_without_cutting_a_character() {
        let live = LiveOutput::new(Uuid::nil(), 1, 1 << 20, Vec::new());
        let mut line = vec![b'x'; PARTIAL_FLUSH_BYTES];
        line.extend_from_slice("é".as_bytes());
        line.pop(); // half of the é
        live.push(Stream::Stdout, &line);
        let chunks = live.take();
        assert_eq!(chunks[0].data.len(), PARTIAL_FLUSH_BYTES);
        live.push(Stream::Stdout, &"é".as_bytes()[1..]);
        live.push(Stream::Stdout, b"\n");
        assert_eq!(live.take()[0].data, "é\n");
    }

    #[test]
    fn secrets_are_redacted_and_long_lines_wait_for_their_end() {
        let secret = SecretEnv {
            env: "PW".into(),
            name: "pw".into(),
            value: "hunter2".into(),
        };
        let live = LiveOutput::new(Uuid::nil(), 1, 1 << 20, vec![secret]);
        let mut line = vec![b'x'; PARTIAL_FLUSH_BYTES * 2];
        line.extend_from_slice(b"hunt");
        live.push(Stream::Stdout, &line);
        assert!(
            live.take().is_empty(),
            "no piece of a secret's line is sent"
        );
        live.push(Stream::Stdout, b"er2\n");
        let chunks = live.take();
        assert!(
            chunks[0].data.ends_with("[redacted:pw]\n"),
            "{}",
            chunks[0].data
        );
        assert!(!chunks[0].data.contains("hunt"));
    }

    #[test]
    fn a_secret_spanning_lines_disables_live_output() {
        let secret = SecretEnv {
            env: "KEY".into(),
            name: "key".into(),
            value: "-----BEGIN\nabc".into(),
        };
        let live = LiveOutput::new(Uuid::nil(), 1, 1024, vec![secret]);
        live.push(Stream::Stdout, b"-----BEGIN\nabc\n");
        assert!(live.take().is_empty());
    }

    #[test]
    fn stops_at_the_cap_with_one_notice() {
        let live = LiveOutput::new(Uuid::nil(), 1, 10, Vec::new());
        live.push(Stream::Stdout, b"12345\n");
        live.push(Stream::Stdout, b"67890\nabc\n");
        let chunks = live.take();
        assert_eq!(chunks.len(), 1);
        assert!(
            chunks[0]
                .data
                .starts_with("12345\n6789\n[runfleet: live stdout stops after 10 bytes")
        );
        live.push(Stream::Stdout, b"more\n");
        assert!(live.take().is_empty());
    }

    #[test]
    fn chunks_given_back_are_sent_first() {
        let live = LiveOutput::new(Uuid::nil(), 1, 1024, Vec::new());
        live.push(Stream::Stdout, b"a\n");
        let lost = live.take();
        live.push(Stream::Stdout, b"b\n");
        live.give_back(lost);
        let again = live.take();
        assert_eq!(
            texts(&again),
            [(Stream::Stdout, "a\n"), (Stream::Stdout, "b\n")]
        );
        assert_eq!(again[1].seq, 2);
    }
}
