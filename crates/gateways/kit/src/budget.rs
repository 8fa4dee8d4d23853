//! One memory budget per listener, with a share per connection. Every byte of client traffic a
//! connection holds (a request read but not answered, a response encoded but not written, a
//! message body buffered) is a [`Charge`] against both its connection's share and the
//! listener's budget. A connection whose share is used up waits in [`ConnectionBudget::charge`]
//! before reading more from its socket: backpressure on that client, never an OOM, and other
//! connections keep their own shares.
//!
//! A [reservation](ConnectionBudget::reserve) holds room in the connection's share for memory
//! that may come (a long-polling Fetch's answer) and charges the listener's budget only when it
//! is filled.
//!
//! Bounds (see [`crate::limits`]): all charges of a listener ≤ its budget, plus overdrafts and
//! filled reservations (each ≤ its connection's share); one
//! connection's charges ≤ its share, or one single charge larger than the share (a big
//! request is let in alone, when the share is empty), plus overdrafts. An overdraft
//! ([`ConnectionBudget::charge_now`]) is for bytes already in memory (an encoded response):
//! it never waits, so a connection cannot deadlock on its own answers, and it makes that
//! connection's next [`ConnectionBudget::charge`] wait until the overdraft is paid back.
//!
//! Amounts are kept in KiB (rounded up), so a 4 TiB budget fits in the counters and small
//! frames cost at least 1 KiB: an honest over-estimate of their allocation overhead.
//! Waiters are woken together when memory is freed; they are not served in FIFO order.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::limits::{LimitsError, ListenerLimits, KIB};

/// KiB needed for `bytes`, rounded up.
pub fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(KIB)
}

/// A counter of KiB in use against a capacity, whose takers wait for room.
#[derive(Debug)]
struct Pool {
    capacity_kib: u64,
    used_kib: Mutex<u64>,
    freed: Notify,
}

impl Pool {
    fn new(capacity_kib: u64) -> Self {
        Pool {
            capacity_kib,
            used_kib: Mutex::new(0),
            freed: Notify::new(),
        }
    }

    /// Takes `amount` if it fits, or if nothing is taken (so one charge larger than the
    /// capacity is admitted alone rather than never).
    fn try_take(&self, amount: u64) -> bool {
        let mut used = self.used_kib.lock();
        if Self::room_for(*used, amount, self.capacity_kib) {
            *used += amount;
            true
        } else {
            false
        }
    }

    /// Whether `try_take(amount)` would succeed now, without taking anything.
    fn fits(&self, amount: u64) -> bool {
        Self::room_for(*self.used_kib.lock(), amount, self.capacity_kib)
    }

    fn room_for(used: u64, amount: u64, capacity: u64) -> bool {
        used == 0 || used + amount <= capacity
    }

    async fn take(&self, amount: u64) {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a release between check and wait is not missed.
            freed.as_mut().enable();
            if self.try_take(amount) {
                return;
            }
            freed.await;
        }
    }

    fn force(&self, amount: u64) {
        *self.used_kib.lock() += amount;
    }

    fn give(&self, amount: u64) {
        if amount == 0 {
            return;
        }
        {
            let mut used = self.used_kib.lock();
            debug_assert!(*used >= amount, "budget released more than was charged");
            *used = used.saturating_sub(amount);
        }
        self.freed.notify_waiters();
    }

    fn used(&self) -> u64 {
        *self.used_kib.lock()
    }
}

/// The memory budget of one listener. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    global: Arc<Pool>,
    share_kib: u64,
}

impl MemoryBudget {
    /// A budget of `limits.memory_budget_bytes`, each connection's share
    /// `limits.connection_share_bytes`.
    pub fn new(limits: &ListenerLimits) -> Result<Self, LimitsError> {
        limits.validate()?;
        Ok(MemoryBudget {
            global: Arc::new(Pool::new(kib(limits.memory_budget_bytes))),
            share_kib: kib(limits.connection_share_bytes),
        })
    }

    /// A new connection's account, with a full share.
    pub fn connection(&self) -> ConnectionBudget {
        ConnectionBudget {
            global: self.global.clone(),
            share: Arc::new(Pool::new(self.share_kib)),
        }
    }

    /// Bytes charged across all connections now (KiB granularity).
    pub fn used_bytes(&self) -> u64 {
        self.global.used() * KIB
    }

    /// The budget, in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.global.capacity_kib * KIB
    }

    /// One connection's share, in bytes.
    pub fn share_bytes(&self) -> u64 {
        self.share_kib * KIB
    }
}

/// One connection's account against its listener's budget. Cloning gives another handle on the
/// same account (e.g. for the connection's reader task and its writer).
#[derive(Clone, Debug)]
pub struct ConnectionBudget {
    global: Arc<Pool>,
    share: Arc<Pool>,
}

impl ConnectionBudget {
    /// Charges `bytes`, waiting until the connection's share and the listener's budget have
    /// room. Call it before reading a frame's body: while it waits, the socket is not read.
    /// Cancel-safe: dropping the future releases whatever it had taken.
    pub async fn charge(&self, bytes: u64) -> Charge {
        let amount = kib(bytes);
        self.share.take(amount).await;
        let mut charge = Charge {
            global: self.global.clone(),
            share: self.share.clone(),
            share_kib: amount,
            global_kib: 0,
        };
        self.global.take(amount).await;
        charge.global_kib = amount;
        charge
    }

    /// Reserves `bytes` of the connection's share for memory that may come (a long-polling
    /// Fetch's response), waiting for room in the share only. The listener's budget is charged
    /// when the reservation is filled ([`Charge::grow_now`] after [`Charge::shrink_to`] the
    /// actual size): reservations of idle long-polls, mostly never filled, would otherwise use
    /// up the shared budget and stall every other connection's reads.
    pub async fn reserve(&self, bytes: u64) -> Charge {
        let amount = kib(bytes);
        self.share.take(amount).await;
        Charge {
            global: self.global.clone(),
            share: self.share.clone(),
            share_kib: amount,
            global_kib: 0,
        }
    }

    /// [`reserve`](Self::reserve) only if that needs no waiting.
    pub fn try_reserve(&self, bytes: u64) -> Option<Charge> {
        let amount = kib(bytes);
        self.share.try_take(amount).then(|| Charge {
            global: self.global.clone(),
            share: self.share.clone(),
            share_kib: amount,
            global_kib: 0,
        })
    }

    /// Charges `bytes` only if that needs no waiting.
    pub fn try_charge(&self, bytes: u64) -> Option<Charge> {
        let amount = kib(bytes);
        if !self.share.try_take(amount) {
            return None;
        }
        if !self.global.try_take(amount) {
            self.share.give(amount);
            return None;
        }
        Some(self.charge_of(amount))
    }

    /// Charges `bytes` at once, over the share and budget if need be. Only for bytes already
    /// in memory (an encoded response): the overdraft makes the next [`charge`](Self::charge)
    /// wait, which is what stops a client that does not read its answers.
    pub fn charge_now(&self, bytes: u64) -> Charge {
        let amount = kib(bytes);
        self.share.force(amount);
        self.global.force(amount);
        self.charge_of(amount)
    }

    /// A charge of nothing, to grow later with [`Charge::grow_now`] or [`Charge::merge`].
    pub fn empty(&self) -> Charge {
        self.charge_of(0)
    }

    /// Whether `try_charge(bytes)` would succeed now. Takes nothing, so unlike a charge that is
    /// dropped at once it wakes nobody waiting on the budget: for a loop that asks before each
    /// read.
    pub fn has_room(&self, bytes: u64) -> bool {
        let amount = kib(bytes);
        self.share.fits(amount) && self.global.fits(amount)
    }

    /// Bytes this connection holds now (KiB granularity).
    pub fn held_bytes(&self) -> u64 {
        self.share.used() * KIB
    }

    fn charge_of(&self, amount: u64) -> Charge {
        Charge {
            global: self.global.clone(),
            share: self.share.clone(),
            share_kib: amount,
            global_kib: amount,
        }
    }
}

/// Bytes held against a budget; released when dropped.
#[derive(Debug)]
#[must_use = "a charge is released as soon as it is dropped"]
pub struct Charge {
    global: Arc<Pool>,
    share: Arc<Pool>,
    share_kib: u64,
    global_kib: u64,
}

impl Charge {
    /// Bytes held (KiB granularity).
    pub fn bytes(&self) -> u64 {
        self.share_kib * KIB
    }

    /// Keeps only what `bytes` needs, releasing the rest (a response reserved at its maximum
    /// turned out smaller). Never grows.
    pub fn shrink_to(&mut self, bytes: u64) {
        let keep = kib(bytes);
        if keep < self.share_kib {
            self.share.give(self.share_kib - keep);
            self.share_kib = keep;
        }
        if keep < self.global_kib {
            self.global.give(self.global_kib - keep);
            self.global_kib = keep;
        }
    }

    /// Grows the charge to cover `bytes` without waiting (an overdraft, as
    /// [`ConnectionBudget::charge_now`]); also charges the listener budget for a
    /// [reservation](ConnectionBudget::reserve) being filled.
    pub fn grow_now(&mut self, bytes: u64) {
        let want = kib(bytes);
        if want > self.share_kib {
            self.share.force(want - self.share_kib);
            self.share_kib = want;
        }
        if want > self.global_kib {
            self.global.force(want - self.global_kib);
            self.global_kib = want;
        }
    }

    /// Bytes this charge holds against the listener's budget (less than [`bytes`](Self::bytes)
    /// for a reservation not yet filled).
    pub fn listener_bytes(&self) -> u64 {
        self.global_kib * KIB
    }

    /// Adds another charge of the same connection to this one.
    pub fn merge(&mut self, mut other: Charge) {
        debug_assert!(
            Arc::ptr_eq(&self.share, &other.share),
            "charges of two connections"
        );
        self.share_kib += std::mem::take(&mut other.share_kib);
        self.global_kib += std::mem::take(&mut other.global_kib);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.share.give(self.share_kib);
        self.global.give(self.global_kib);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn budget(total: u64, share: u64) -> MemoryBudget {
        MemoryBudget::new(&ListenerLimits {
            memory_budget_bytes: total,
            connection_share_bytes: share,
            ..ListenerLimits::default()
        })
        .unwrap()
    }

    async fn blocked<F: std::future::Future>(fut: F) -> bool {
        tokio::time::timeout(Duration::from_secs(3600), fut)
            .await
            .is_err()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_over_its_share_waits_until_it_frees_memory() {
        let b = budget(1 << 20, 64 << 10);
        let conn = b.connection();
        let first = conn.charge(40 << 10).await;
        let _second = conn.charge(24 << 10).await;
        assert_eq!(conn.held_bytes(), 64 << 10);
        assert!(blocked(conn.charge(1)).await, "over the share must wait");
        // Another connection has its own share.
        let other = b.connection();
        let _o = other.charge(64 << 10).await;
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(1), conn.charge(40 << 10)).await;
        assert!(third.is_ok(), "freed memory lets the connection read again");
    }

    #[tokio::test(start_paused = true)]
    async fn the_listener_budget_bounds_all_connections() {
        let b = budget(128 << 10, 64 << 10);
        let (c1, c2, c3) = (b.connection(), b.connection(), b.connection());
        let h1 = c1.charge(64 << 10).await;
        let _h2 = c2.charge(64 << 10).await;
        assert_eq!(b.used_bytes(), 128 << 10);
        assert!(blocked(c3.charge(1024)).await);
        assert_eq!(
            b.used_bytes(),
            128 << 10,
            "a cancelled wait gave back its share"
        );
        assert_eq!(c3.held_bytes(), 0);
        drop(h1);
        assert!(c3.try_charge(1024).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn has_room_answers_like_try_charge_and_takes_nothing() {
        let b = budget(128 << 10, 64 << 10);
        let (c1, c2) = (b.connection(), b.connection());
        assert!(c1.has_room(1024));
        let held = c1.charge(64 << 10).await;
        assert!(!c1.has_room(1024), "its share is full");
        assert!(c2.has_room(1024));
        assert_eq!(b.used_bytes(), 64 << 10, "asking took nothing");
        drop(held);
        assert!(c1.has_room(1024));
    }

    #[tokio::test(start_paused = true)]
    async fn a_charge_larger_than_the_share_is_let_in_alone() {
        let b = budget(1 << 20, 64 << 10);
        let conn = b.connection();
        let small = conn.charge(1).await;
        assert!(blocked(conn.charge(200 << 10)).await);
        drop(small);
        let big = conn.charge(200 << 10).await;
        assert_eq!(big.bytes(), 200 << 10);
        assert!(conn.try_charge(1).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn overdraft_never_waits_and_blocks_the_next_read() {
        let b = budget(1 << 20, 64 << 10);
        let conn = b.connection();
        let mut response = conn.charge_now(100 << 10);
        assert_eq!(conn.held_bytes(), 100 << 10);
        assert!(blocked(conn.charge(1)).await);
        response.shrink_to(10 << 10);
        assert_eq!(conn.held_bytes(), 10 << 10);
        response.grow_now(20 << 10);
        let other = conn.charge(1).await;
        response.merge(other);
        assert_eq!(response.bytes(), 21 << 10);
        drop(response);
        assert_eq!((conn.held_bytes(), b.used_bytes()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reservation_holds_the_share_and_charges_the_budget_when_filled() {
        let b = budget(1 << 20, 64 << 10);
        let conn = b.connection();
        let mut fetch = conn.reserve(48 << 10).await;
        assert_eq!((conn.held_bytes(), b.used_bytes()), (48 << 10, 0));
        assert!(blocked(conn.reserve(32 << 10)).await, "the share is held");
        // The answer came back with 10 KiB.
        fetch.shrink_to(10 << 10);
        fetch.grow_now(10 << 10);
        assert_eq!(
            (fetch.bytes(), fetch.listener_bytes()),
            (10 << 10, 10 << 10)
        );
        assert_eq!((conn.held_bytes(), b.used_bytes()), (10 << 10, 10 << 10));
        drop(fetch);
        assert_eq!((conn.held_bytes(), b.used_bytes()), (0, 0));
    }

    proptest::proptest! {
        /// Whatever mix of charges, shrinks, overdrafts and releases, the accounts return to
        /// zero, and a waiting charge is only admitted within the share (or alone).
        #[test]
        fn accounts_balance(ops in proptest::collection::vec((0u8..6, 0u64..200_000), 1..60)) {
            let b = budget(1 << 30, 256 << 10);
            let conn = b.connection();
            let mut held: Vec<Charge> = Vec::new();
            for (op, bytes) in ops {
                match op {
                    4 => if let Some(c) = conn.try_reserve(bytes) { held.push(c) },
                    5 => if let Some(c) = held.last_mut() { c.grow_now(bytes) },
                    0 => if let Some(c) = conn.try_charge(bytes) {
                        proptest::prop_assert!(
                            conn.held_bytes() <= 256 << 10 || held.iter().all(|c| c.bytes() == 0)
                        );
                        held.push(c);
                    },
                    1 => held.push(conn.charge_now(bytes)),
                    2 => if let Some(c) = held.last_mut() { c.shrink_to(bytes) },
                    _ => { held.pop(); }
                }
                let share: u64 = held.iter().map(|c| c.bytes()).sum();
                let listener: u64 = held.iter().map(|c| c.listener_bytes()).sum();
                proptest::prop_assert_eq!(share, conn.held_bytes());
                proptest::prop_assert_eq!(listener, b.used_bytes());
            }
            held.clear();
            proptest::prop_assert_eq!(conn.held_bytes(), 0);
            proptest::prop_assert_eq!(b.used_bytes(), 0);
        }
    }
}
