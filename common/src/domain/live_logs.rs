//! Output of running attempts, while they run: the consumer flushes what a script printed
//! (complete lines, redacted) as numbered chunks, and readers follow them by number.
//!
//! The chunks are a preview. When the attempt ends, `run_state::finish` stores the capped
//! output in `run_logs` and removes the chunks in the same statement; an attempt that never
//! finished (its consumer died) keeps its chunks, the only output it has.

use deadpool_postgres::GenericClient;
use serde::Serialize;
use uuid::Uuid;

use crate::db::DbError;

/// Which output stream a chunk is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The name stored and sent (`stdout`, `stderr`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// 0 for stdout, 1 for stderr: the slot of this stream in a per-stream pair.
    pub fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    fn parse(s: &str) -> Stream {
        if s == "stderr" {
            Stream::Stderr
        } else {
            Stream::Stdout
        }
    }
}

/// One piece of a running attempt's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The run.
    pub run_id: Uuid,
    /// Its attempt.
    pub attempt: i32,
    /// Order within the attempt, from 1.
    pub seq: i32,
    /// Which stream.
    pub stream: Stream,
    /// The text (whole lines, except where a line was too long to hold back).
    pub data: String,
}

/// Stores `chunks` (of any runs) in one statement; a chunk already stored is kept as is
/// (a flush retried after a lost answer writes nothing twice).
pub async fn append(client: &impl GenericClient, chunks: &[Chunk]) -> Result<u64, DbError> {
    if chunks.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = chunks.iter().map(|c| c.run_id).collect();
    let attempts: Vec<i32> = chunks.iter().map(|c| c.attempt).collect();
    let seqs: Vec<i32> = chunks.iter().map(|c| c.seq).collect();
    let streams: Vec<&str> = chunks.iter().map(|c| c.stream.as_str()).collect();
    let data: Vec<&str> = chunks.iter().map(|c| c.data.as_str()).collect();
    // Only for attempts still running: a chunk flushed after the attempt ended (and its
    // logs were stored) would outlive the clean-up in `finish`.
    Ok(client
        .execute(
            "INSERT INTO run_log_chunks (run_id, attempt, seq, stream, data)
             SELECT c.id, c.attempt, c.seq, c.stream, c.data
               FROM unnest($1::uuid[], $2::int[], $3::int[], $4::text[], $5::text[])
                    AS c(id, attempt, seq, stream, data)
               JOIN runs r ON r.id = c.id AND r.attempt = c.attempt AND r.status = 'running'
             ON CONFLICT (run_id, attempt, seq) DO NOTHING",
            &[&ids, &attempts, &seqs, &streams, &data],
        )
        .await?)
}

/// The chunks of (`run_id`, `attempt`) after number `after`, in order.
pub async fn since(
    client: &impl GenericClient,
    run_id: Uuid,
    attempt: i32,
    after: i32,
) -> Result<Vec<Chunk>, DbError> {
    let rows = client
        .query(
            "SELECT seq, stream, data FROM run_log_chunks
              WHERE run_id = $1 AND attempt = $2 AND seq > $3 ORDER BY seq",
            &[&run_id, &attempt, &after],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Chunk {
            run_id,
            attempt,
            seq: r.get(0),
            stream: Stream::parse(r.get(1)),
            data: r.get(2),
        })
        .collect())
}

/// The whole stdout and stderr the chunks of an attempt hold (None: it has none).
pub async fn joined(
    client: &impl GenericClient,
    run_id: Uuid,
    attempt: i32,
) -> Result<Option<(String, String)>, DbError> {
    let chunks = since(client, run_id, attempt, 0).await?;
    if chunks.is_empty() {
        return Ok(None);
    }
    let (mut out, mut err) = (String::new(), String::new());
    for c in chunks {
        match c.stream {
            Stream::Stdout => out.push_str(&c.data),
            Stream::Stderr => err.push_str(&c.data),
        }
    }
    Ok(Some((out, err)))
}
