//! Plugin writes back into the normal write path.
//!
//! A plugin's line protocol is handed to a shard (round robin) on a bounded queue; the shard
//! validates and stages it like any HTTP write, and reports the outcome through a callback once
//! the flush holding it is durable (or at once for `no_sync`). So plugin writes get the same
//! checks, the same WAL and the same triggers as client writes. A full queue makes the caller
//! wait (back-pressure), never drops a write.
//!
//! The executor side never touches a shard; the shard side never runs Python.

// Shard code: no call here may block the thread (clippy.toml lists the calls).
#![deny(clippy::disallowed_methods)]

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_channel::mpsc;
use futures_lite::StreamExt;
use parking_lot::Mutex;
use pipeline::shard::{Shard, WriteRequest};
use pipeline::write::Precision;

use crate::py_api::{PluginWriter, WriteDone, WriteOutcome};

/// Plugin writes waiting per shard.
pub const INGEST_QUEUE_WRITES: usize = 1024;

pub struct IngestJob {
    db: String,
    body: Vec<u8>,
    no_sync: bool,
    done: WriteDone,
}

/// The executor side: one bounded queue per shard.
pub struct ShardIngest {
    senders: Vec<Mutex<mpsc::Sender<IngestJob>>>,
    next: AtomicUsize,
}

impl ShardIngest {
    /// The sending side, and one receiver per shard to pass to [`serve`].
    pub fn new(shards: usize) -> (ShardIngest, Vec<mpsc::Receiver<IngestJob>>) {
        let (senders, receivers) = (0..shards.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(INGEST_QUEUE_WRITES);
                (Mutex::new(tx), rx)
            })
            .unzip();
        (ShardIngest { senders, next: AtomicUsize::new(0) }, receivers)
    }
}

impl PluginWriter for ShardIngest {
    // The executor side (never a shard): waiting here is the back-pressure plugins get.
    #[allow(clippy::disallowed_methods)]
    fn submit(&self, db: String, body: Vec<u8>, no_sync: bool, done: WriteDone) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
        let mut job = IngestJob { db, body, no_sync, done };
        loop {
            match self.senders[i].lock().try_send(job) {
                Ok(()) => return,
                Err(e) if e.is_full() => job = e.into_inner(),
                Err(e) => {
                    let job = e.into_inner();
                    (job.done)(Err("the server is shutting down".into()));
                    return;
                }
            }
            // Back-pressure: the shard is behind; wait rather than drop.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The shard side: stages each plugin write on `shard` and reports when it is durable.
pub async fn serve(shard: Rc<Shard>, mut rx: mpsc::Receiver<IngestJob>) {
    while let Some(job) = rx.next().await {
        let req = WriteRequest {
            db: &job.db,
            body: &job.body,
            precision: Precision::Nanosecond,
            accept_partial: true,
            no_sync: job.no_sync,
            default_time_ns: crate::time::now_ns(),
        };
        match shard.write(&req) {
            Err(e) => (job.done)(Err(e.to_string())),
            Ok(acc) => {
                let outcome = WriteOutcome { lines_written: acc.lines_written, rejects: acc.rejects };
                match acc.durable {
                    None => (job.done)(Ok(outcome)),
                    Some(durable) => {
                        let done = job.done;
                        glommio::spawn_local(async move {
                            match durable.await {
                                Ok(Ok(())) => done(Ok(outcome)),
                                Ok(Err(e)) => done(Err(format!("write not durable: {e}"))),
                                Err(_) => done(Err("write not durable: the shard stopped".into())),
                            }
                        })
                        .detach();
                    }
                }
            }
        }
    }
}
