//! Coarse deadlines for a shard: answers it awaits from another thread (request triggers),
//! request bodies, and the idle and header timeouts of its connections ([`Alarm`]).
//!
//! A glommio timer per request costs an io_uring timeout to arm and a cancel when the answer
//! comes first, which under `wrk` was a tenth of the shard's time. These deadlines instead sit in
//! one list per shard that a single task sweeps every [`SWEEP`]: arming is a push, dropping is
//! free, and a deadline fires late by at most one sweep, which is fine for bounds measured in
//! seconds. It owns only that list; it never fires a deadline before it is due.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often the list is swept, and so how late a deadline may fire.
pub const SWEEP: Duration = Duration::from_millis(100);

struct State {
    due: Instant,
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// One shard's armed deadlines.
#[derive(Default)]
pub struct Deadlines {
    armed: RefCell<Vec<Rc<State>>>,
    alarms: RefCell<Vec<Rc<AlarmState>>>,
}

struct AlarmState {
    due: Cell<Option<Instant>>,
    waker: RefCell<Option<Waker>>,
}

/// A deadline that can be moved, for a connection's whole life: re-arming it allocates nothing,
/// so a keep-alive connection pays no allocation per request for its timeouts.
pub struct Alarm(Rc<AlarmState>);

impl Alarm {
    /// Ready once `due` has passed; until then the task is woken by the sweep that sees it due.
    pub fn poll_at(&self, due: Instant, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= due {
            self.0.due.set(None);
            return Poll::Ready(());
        }
        self.0.due.set(Some(due));
        let mut w = self.0.waker.borrow_mut();
        match w.as_ref() {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Completes once its instant has passed and a sweep has seen it.
pub struct Deadline(Rc<State>);

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.fired.get() {
            return Poll::Ready(());
        }
        let mut w = self.0.waker.borrow_mut();
        match w.as_ref() {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Deadlines {
    /// A deadline `after` from now.
    pub fn after(&self, after: Duration) -> Deadline {
        let state = Rc::new(State {
            due: Instant::now() + after,
            fired: Cell::new(false),
            waker: RefCell::new(None),
        });
        self.armed.borrow_mut().push(state.clone());
        Deadline(state)
    }

    /// An alarm swept with this list, disarmed until polled.
    pub fn alarm(&self) -> Alarm {
        let state = Rc::new(AlarmState { due: Cell::new(None), waker: RefCell::new(None) });
        self.alarms.borrow_mut().push(state.clone());
        Alarm(state)
    }

    /// Sweeps forever; spawn once per shard.
    pub async fn run(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(SWEEP).await;
            self.sweep(Instant::now());
        }
    }

    /// Fires every deadline due by `now` and forgets those nobody awaits any more.
    fn sweep(&self, now: Instant) {
        let mut due = Vec::new();
        self.armed.borrow_mut().retain(|s| {
            // Only this list holds it: the awaiting request is gone (answered or dropped).
            if Rc::strong_count(s) == 1 {
                return false;
            }
            if s.due <= now {
                due.push(s.clone());
                return false;
            }
            true
        });
        let mut rung = Vec::new();
        self.alarms.borrow_mut().retain(|a| {
            if Rc::strong_count(a) == 1 {
                return false;
            }
            if a.due.get().is_some_and(|d| d <= now) {
                a.due.set(None);
                if let Some(w) = a.waker.borrow_mut().take() {
                    rung.push(w);
                }
            }
            true
        });
        // Woken outside the borrow: a woken task may arm a new deadline.
        for s in due {
            s.fired.set(true);
            if let Some(w) = s.waker.borrow_mut().take() {
                w.wake();
            }
        }
        for w in rung {
            w.wake();
        }
    }

    #[cfg(test)]
    fn armed(&self) -> usize {
        self.armed.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(d: &mut Deadline, waker: &Waker) -> Poll<()> {
        Pin::new(d).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_deadline_fires_only_once_due_and_swept() {
        let list = Deadlines::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut d = list.after(Duration::from_secs(5));
        assert!(poll(&mut d, &waker).is_pending());
        list.sweep(Instant::now());
        assert!(poll(&mut d, &waker).is_pending(), "not due yet");
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        list.sweep(Instant::now() + Duration::from_secs(6));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the awaiting task is woken"
        );
        assert!(poll(&mut d, &waker).is_ready());
        assert_eq!(list.armed(), 0);
    }

    #[test]
    fn an_alarm_rings_once_due_and_can_be_moved() {
        let list = Deadlines::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let alarm = list.alarm();
        let soon = Instant::now() + Duration::from_secs(5);
        assert!(alarm.poll_at(soon, &mut cx).is_pending());
        list.sweep(Instant::now());
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "not due yet");
        // Moved later: a sweep past the old instant does not ring it.
        assert!(alarm.poll_at(soon + Duration::from_secs(10), &mut cx).is_pending());
        list.sweep(soon + Duration::from_secs(1));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        list.sweep(soon + Duration::from_secs(11));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "rung once due");
        list.sweep(soon + Duration::from_secs(60));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "rung once, not again");
        assert!(alarm.poll_at(Instant::now(), &mut cx).is_ready(), "an instant already past is ready at once");
        drop(alarm);
        list.sweep(Instant::now());
        assert!(list.alarms.borrow().is_empty(), "a dropped alarm is forgotten");
    }

    #[test]
    fn a_dropped_deadline_is_forgotten_at_the_next_sweep() {
        let list = Deadlines::default();
        let kept = list.after(Duration::from_secs(60));
        drop(list.after(Duration::from_secs(60)));
        assert_eq!(list.armed(), 2);
        list.sweep(Instant::now());
        assert_eq!(list.armed(), 1);
        drop(kept);
        list.sweep(Instant::now());
        assert_eq!(list.armed(), 0);
    }
}
