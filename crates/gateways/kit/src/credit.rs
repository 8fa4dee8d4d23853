//! Consumer credit: how many deliveries a consumer may have outstanding (sent, not yet
//! settled). One concept behind AMQP 0-9-1 `basic.qos` prefetch, MQTT 5 receive-maximum,
//! STOMP `client` acks with a prefetch, and AMQP 1.0 link credit:
//! - [`Credit::consume`] before each delivery (refused when the window is full),
//! - [`Credit::settle`] when the client acknowledges (or rejects) deliveries,
//! - [`Credit::grant`] when the client changes its window (a new prefetch, a credit top-up).
//!
//! A window of 0 means unlimited, as AMQP's prefetch 0. Invariant (checked in debug builds and
//! by property tests): with a limited window, consumes succeed only while
//! `outstanding < window`, and `outstanding` never underflows.

/// Deliveries outstanding against a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Credit {
    /// 0 = unlimited.
    window: u32,
    outstanding: u32,
}

/// [`Credit::consume`] with no credit left: wait for a settle or a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no credit: {outstanding} deliveries outstanding of a window of {window}")]
pub struct NoCredit {
    pub window: u32,
    pub outstanding: u32,
}

impl Credit {
    /// A window of `window` outstanding deliveries; 0 is unlimited.
    pub fn new(window: u32) -> Self {
        Credit {
            window,
            outstanding: 0,
        }
    }

    /// No limit (AMQP prefetch 0, STOMP `auto` ack).
    pub fn unlimited() -> Self {
        Self::new(0)
    }

    /// Sets a new window (AMQP `basic.qos`, MQTT's receive-maximum at connect). Outstanding
    /// deliveries stay outstanding; if the new window is smaller, no more is delivered until
    /// enough are settled.
    pub fn grant(&mut self, window: u32) {
        self.window = window;
    }

    /// Adds `more` to a limited window (AMQP 1.0 `flow` credit); no effect when unlimited.
    pub fn top_up(&mut self, more: u32) {
        if self.window != 0 {
            self.window = self.window.saturating_add(more);
        }
    }

    /// Takes credit for one delivery.
    pub fn consume(&mut self) -> Result<(), NoCredit> {
        if !self.can_deliver() {
            return Err(NoCredit {
                window: self.window,
                outstanding: self.outstanding,
            });
        }
        self.outstanding = self.outstanding.saturating_add(1);
        Ok(())
    }

    /// Returns the credit of `n` settled deliveries. Settling more than is outstanding is a
    /// client error the protocol reports itself (e.g. AMQP's unknown delivery tag); here it
    /// saturates at zero. Returns how many were actually outstanding.
    pub fn settle(&mut self, n: u32) -> u32 {
        let settled = n.min(self.outstanding);
        self.outstanding -= settled;
        settled
    }

    /// Whether one more delivery may be sent now.
    pub fn can_deliver(&self) -> bool {
        self.window == 0 || self.outstanding < self.window
    }

    /// How many more deliveries may be sent now; `None` when unlimited.
    pub fn available(&self) -> Option<u32> {
        (self.window != 0).then(|| self.window.saturating_sub(self.outstanding))
    }

    /// Deliveries sent and not yet settled.
    pub fn outstanding(&self) -> u32 {
        self.outstanding
    }

    /// The window; 0 is unlimited.
    pub fn window(&self) -> u32 {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn prefetch_window_stops_deliveries_until_acks() {
        let mut c = Credit::new(2);
        assert_eq!(c.consume(), Ok(()));
        assert_eq!(c.consume(), Ok(()));
        assert_eq!(
            c.consume(),
            Err(NoCredit {
                window: 2,
                outstanding: 2
            })
        );
        assert_eq!(c.available(), Some(0));
        assert_eq!(c.settle(1), 1);
        assert!(c.can_deliver());
        assert_eq!(c.settle(5), 1, "only what was outstanding is settled");
        assert_eq!(c.outstanding(), 0);
    }

    #[test]
    fn unlimited_and_regrant() {
        let mut c = Credit::unlimited();
        for _ in 0..1000 {
            c.consume().unwrap();
        }
        assert_eq!(c.available(), None);
        c.grant(10);
        assert!(!c.can_deliver(), "a smaller window waits for settles");
        c.settle(991);
        assert_eq!(c.available(), Some(1));
        c.top_up(4);
        assert_eq!(c.available(), Some(5));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Consume,
        Settle(u32),
        Grant(u32),
        TopUp(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Consume),
            2 => (0u32..5).prop_map(Op::Settle),
            1 => (0u32..8).prop_map(Op::Grant),
            1 => (0u32..3).prop_map(Op::TopUp),
        ]
    }

    proptest! {
        /// A model: a consume succeeds exactly when the window allows it, and outstanding
        /// equals consumes minus settles (never negative).
        #[test]
        fn matches_the_model(ops in proptest::collection::vec(op(), 0..200)) {
            let mut c = Credit::new(3);
            let (mut window, mut outstanding) = (3u32, 0u32);
            for op in ops {
                match op {
                    Op::Consume => {
                        let allowed = window == 0 || outstanding < window;
                        prop_assert_eq!(c.consume().is_ok(), allowed);
                        if allowed { outstanding += 1; }
                    }
                    Op::Settle(n) => {
                        let settled = n.min(outstanding);
                        prop_assert_eq!(c.settle(n), settled);
                        outstanding -= settled;
                    }
                    Op::Grant(w) => { c.grant(w); window = w; }
                    Op::TopUp(n) => { c.top_up(n); if window != 0 { window += n; } }
                }
                prop_assert_eq!(c.outstanding(), outstanding);
                prop_assert_eq!(c.window(), window);
            }
        }
    }
}
