//! Spreads connections evenly over the shards.
//!
//! Every shard accepts on its own `SO_REUSEPORT` listener, and the kernel picks the listener by
//! a hash of the connection's addresses, so four long-lived connections can all land on one
//! shard while another idles (ingest then ran at one shard's speed in half the load-test runs).
//! A shard that accepts a connection while another serves fewer hands it over: a duplicate of
//! the socket's descriptor goes through the other shard's channel. It owns the per-shard counts
//! and the channels; it never reads or writes a socket.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};

/// A connection handed to another shard, with its place in that shard's count.
pub type Handoff = (OwnedFd, Open);

pub struct Balancer {
    open: Vec<AtomicUsize>,
    handoff: Vec<UnboundedSender<Handoff>>,
}

/// One open connection of one shard; dropping it (when the connection ends) frees its place.
pub struct Open {
    balancer: Arc<Balancer>,
    shard: usize,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.balancer.open[self.shard].fetch_sub(1, Ordering::AcqRel);
    }
}

impl Balancer {
    /// The balancer, and for each shard the channel its handed-over connections arrive on.
    pub fn new(shards: usize) -> (Arc<Balancer>, Vec<UnboundedReceiver<Handoff>>) {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards.max(1)).map(|_| unbounded()).unzip();
        let open = (0..shards.max(1)).map(|_| AtomicUsize::new(0)).collect();
        (Arc::new(Balancer { open, handoff: senders }), receivers)
    }

    /// Where a connection just accepted on `shard` should be served: the shard with the fewest
    /// open connections if it has fewer than `shard`, else `shard` itself.
    pub fn place(&self, shard: usize) -> usize {
        let mine = self.open[shard].load(Ordering::Acquire);
        let (least, count) = self
            .open
            .iter()
            .enumerate()
            .map(|(i, n)| (i, n.load(Ordering::Acquire)))
            .min_by_key(|&(i, n)| (n, i != shard))
            .unwrap_or((shard, mine));
        if count < mine {
            least
        } else {
            shard
        }
    }

    /// Connections open over all shards.
    pub fn total(&self) -> usize {
        self.open.iter().map(|n| n.load(Ordering::Acquire)).sum()
    }

    /// Counts a connection as served by `shard`.
    pub fn open(self: &Arc<Self>, shard: usize) -> Open {
        self.open[shard].fetch_add(1, Ordering::AcqRel);
        Open { balancer: self.clone(), shard }
    }

    /// Hands a connection to `shard`; gives it back if that shard has stopped.
    pub fn hand_over(self: &Arc<Self>, shard: usize, fd: OwnedFd) -> Result<(), OwnedFd> {
        let open = self.open(shard);
        self.handoff[shard].unbounded_send((fd, open)).map_err(|e| e.into_inner().0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_piling_on_one_shard_are_spread_evenly() {
        let (b, _rx) = Balancer::new(2);
        let mut kept = Vec::new();
        // The kernel sends all four to shard 0.
        for _ in 0..4 {
            let to = b.place(0);
            kept.push(b.open(to));
        }
        let per_shard: Vec<usize> = b.open.iter().map(|n| n.load(Ordering::Acquire)).collect();
        assert_eq!(per_shard, vec![2, 2]);
        // Connections that end free their place: the next goes where there is room.
        kept.retain(|o| o.shard != 1);
        assert_eq!(b.place(0), 1);
        assert_eq!(b.place(1), 1);
    }

    #[test]
    fn a_shard_keeps_a_connection_when_none_has_fewer() {
        let (b, _rx) = Balancer::new(3);
        assert_eq!(b.place(2), 2);
        let _o = b.open(2);
        assert_eq!(b.place(2), 0);
    }
}
