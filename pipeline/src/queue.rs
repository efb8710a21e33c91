//! Flush events and their hand-off to consumers (the processing engine).
//!
//! Each shard sends one [`ShardFlush`] per tick of the shared flush clock, empty or not. The
//! merger thread joins the shards' flushes of the same epoch into one [`WalFlush`] and publishes
//! it, in epoch order, to every subscriber on a bounded crossbeam queue as an `Arc` (batches are
//! never copied). A full subscriber queue blocks the merger, whose own bounded input then blocks
//! the shards' flush loops: back-pressure all the way to the writers, never a silent drop.
//!
//! It never looks inside the batches.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

/// One table's rows of one flush.
#[derive(Debug, Clone)]
pub struct TableBatch {
    pub db_id: u32,
    pub db_name: Arc<str>,
    pub table_name: Arc<str>,
    pub batch: RecordBatch,
    /// Where the commit that made these rows durable falls in the order of all commits of all
    /// shards ([`crate::buffer::WriteBuffer::begin_commit`]): a write acked before another was
    /// sent has the lower number, whichever shards took them.
    pub commit: u64,
}

/// What one shard flushed at one epoch.
#[derive(Debug)]
pub struct ShardFlush {
    pub epoch: u64,
    pub shard: usize,
    pub tables: Vec<TableBatch>,
}

/// Every shard's rows of one epoch: one WAL-flush event.
#[derive(Debug)]
pub struct WalFlush {
    pub epoch: u64,
    pub tables: Vec<TableBatch>,
}

/// Bound of each subscriber's queue, in events.
pub const SUBSCRIBER_QUEUE_EVENTS: usize = 1024;
/// Bound of the shards-to-merger queue, in shard flushes.
pub const MERGER_QUEUE_FLUSHES: usize = 4096;

/// The list of subscribers the merger publishes to.
#[derive(Default, Clone)]
pub struct Subscribers {
    inner: Arc<Mutex<Vec<Sender<Arc<WalFlush>>>>>,
}

impl Subscribers {
    /// Adds a consumer; it gets every non-empty flush from now on.
    pub fn subscribe(&self) -> Receiver<Arc<WalFlush>> {
        let (tx, rx) = crossbeam_channel::bounded(SUBSCRIBER_QUEUE_EVENTS);
        self.inner.lock().push(tx);
        rx
    }

    /// Events waiting in each subscriber's queue.
    pub fn depths(&self) -> Vec<usize> {
        self.inner.lock().iter().map(|s| s.len()).collect()
    }

    fn publish(&self, ev: Arc<WalFlush>) {
        let subs = self.inner.lock().clone();
        let mut gone = Vec::new();
        for (i, s) in subs.iter().enumerate() {
            // Blocks while this subscriber's queue is full: back-pressure, not a drop.
            if s.send(ev.clone()).is_err() {
                gone.push(i);
            }
        }
        if !gone.is_empty() {
            // A consumer that dropped its receiver is forgotten.
            let mut inner = self.inner.lock();
            inner.retain(|s| !subs.iter().enumerate().any(|(i, t)| gone.contains(&i) && t.same_channel(s)));
        }
    }
}

/// Joins shard flushes by epoch. Returns when every shard's sender is gone.
pub fn run_merger(rx: Receiver<ShardFlush>, shards: usize, subscribers: Subscribers) {
    let mut merger = Merger::new(shards);
    for f in rx.iter() {
        for ev in merger.push(f) {
            subscribers.publish(Arc::new(ev));
        }
    }
}

/// The merging logic alone, so it can be tested without threads.
pub struct Merger {
    /// Highest epoch each shard has reported.
    seen: Vec<Option<u64>>,
    pending: BTreeMap<u64, Vec<TableBatch>>,
}

impl Merger {
    pub fn new(shards: usize) -> Merger {
        Merger { seen: vec![None; shards], pending: BTreeMap::new() }
    }

    /// Takes one shard flush; returns the events that are now complete, in epoch order.
    /// Empty epochs produce no event.
    pub fn push(&mut self, f: ShardFlush) -> Vec<WalFlush> {
        if let Some(s) = self.seen.get_mut(f.shard) {
            *s = Some(s.map_or(f.epoch, |e| e.max(f.epoch)));
        }
        if !f.tables.is_empty() {
            self.pending.entry(f.epoch).or_default().extend(f.tables);
        }
        // An epoch is complete once every shard has reported it or a later one: a shard that
        // skipped ticks while busy folded them into its next flush.
        let Some(done) = self.seen.iter().copied().min().flatten() else {
            return Vec::new();
        };
        let later = self.pending.split_off(&(done + 1));
        let ready = std::mem::replace(&mut self.pending, later);
        ready
            .into_iter()
            .map(|(epoch, mut tables)| {
                // Each shard's list is in its commit order already; this interleaves the shards.
                tables.sort_by_key(|t| t.commit);
                WalFlush { epoch, tables }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn tb(rows: i64) -> TableBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..rows))]).unwrap();
        TableBatch { db_id: 0, db_name: "db".into(), table_name: "t".into(), batch, commit: 0 }
    }

    #[test]
    fn epochs_are_joined_across_shards_and_emitted_in_order() {
        let mut m = Merger::new(2);
        assert!(m.push(ShardFlush { epoch: 1, shard: 0, tables: vec![tb(1)] }).is_empty());
        assert!(m.push(ShardFlush { epoch: 2, shard: 0, tables: vec![tb(2)] }).is_empty());
        let out = m.push(ShardFlush { epoch: 1, shard: 1, tables: vec![tb(3)] });
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].epoch, 1);
        assert_eq!(out[0].tables.len(), 2);
        // Shard 1 skipped epoch 2 and reports 3: epoch 2 is complete, 3 waits for shard 0.
        let out = m.push(ShardFlush { epoch: 3, shard: 1, tables: vec![tb(4)] });
        assert_eq!(out.iter().map(|e| e.epoch).collect::<Vec<_>>(), vec![2]);
        let out = m.push(ShardFlush { epoch: 3, shard: 0, tables: vec![] });
        assert_eq!(out[0].epoch, 3);
        assert_eq!(out[0].tables[0].batch.num_rows(), 4);
    }

    #[test]
    fn a_merged_flush_lists_commits_in_their_order_across_shards() {
        let at = |rows, commit| TableBatch { commit, ..tb(rows) };
        let mut m = Merger::new(2);
        // Shard 0 committed 1 then 4; shard 1 committed 2 then 3 (a client whose writes were
        // acked by alternating shards, each sent after the previous ack).
        assert!(m.push(ShardFlush { epoch: 1, shard: 0, tables: vec![at(1, 1), at(4, 4)] }).is_empty());
        let out = m.push(ShardFlush { epoch: 1, shard: 1, tables: vec![at(2, 2), at(3, 3)] });
        let order: Vec<u64> = out[0].tables.iter().map(|t| t.commit).collect();
        assert_eq!(order, vec![1, 2, 3, 4]);
        let rows: Vec<usize> = out[0].tables.iter().map(|t| t.batch.num_rows()).collect();
        assert_eq!(rows, vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_rust_consumer_receives_every_flush_in_order() {
        let subs = Subscribers::default();
        let rx = subs.subscribe();
        let (tx, merger_rx) = crossbeam_channel::bounded(MERGER_QUEUE_FLUSHES);
        let merger = std::thread::spawn(move || run_merger(merger_rx, 2, subs));
        let producers: Vec<_> = (0..2)
            .map(|shard| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for epoch in 1..=100u64 {
                        tx.send(ShardFlush { epoch, shard, tables: vec![tb(1)] }).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        for p in producers {
            p.join().unwrap();
        }
        merger.join().unwrap();
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got.len(), 100);
        for (i, ev) in got.iter().enumerate() {
            assert_eq!(ev.epoch, i as u64 + 1);
            assert_eq!(ev.tables.len(), 2, "one batch from each shard");
        }
    }
}
