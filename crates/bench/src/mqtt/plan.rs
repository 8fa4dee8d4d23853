//! The pure decisions of the MQTT scenarios — who sits in which room, where a chat message goes,
//! which task drives which connection, when the fan-out publisher may send — kept apart from the
//! I/O so they are unit-tested and the same for every broker.

use crate::pacing::share;

/// Topic of chat room `room`: every member subscribes to it.
pub fn room_topic(room: usize) -> String {
    format!("chat/room/{room}")
}

/// Inbox topic of client `id`: only that client subscribes to it.
pub fn inbox_topic(id: usize) -> String {
    format!("chat/user/{id}")
}

/// The room client `id` joins: round robin, so rooms differ in size by at most one member.
pub fn room_of(id: usize, rooms: usize) -> usize {
    id % rooms.max(1)
}

/// Members of `room` when `connections` clients are spread by [`room_of`].
pub fn room_members(room: usize, connections: usize, rooms: usize) -> u64 {
    share(connections as u64, room, rooms.max(1))
}

/// The chat scenario's shape, the same flags for the MQTT and the AMQP driver so both send the
/// same seeded message mix to the same rooms.
#[derive(clap::Args, Debug, Clone)]
pub struct ChatArgs {
    /// Chat: client connections.
    #[arg(long, default_value_t = 2000)]
    pub connections: usize,
    /// Chat: rooms (client i joins room i mod rooms).
    #[arg(long, default_value_t = 50)]
    pub rooms: usize,
    /// Chat: share of messages sent to a random user's inbox; the rest go to a random room.
    #[arg(long, default_value_t = 0.5)]
    pub p2p_ratio: f64,
}

/// Where one chat message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    Room(usize),
    User(usize),
}

impl Destination {
    pub fn topic(self) -> String {
        match self {
            Destination::Room(room) => room_topic(room),
            Destination::User(id) => inbox_topic(id),
        }
    }

    /// Deliveries the broker owes for this message: every room member (the sender included,
    /// MQTT 3.1.1 has no "no local"), or the one inbox owner.
    pub fn deliveries(self, connections: usize, rooms: usize) -> u64 {
        match self {
            Destination::Room(room) => room_members(room, connections, rooms),
            Destination::User(_) => 1,
        }
    }
}

/// SplitMix64: a tiny seeded generator, so each pacer's message mix is reproducible and drawing
/// a destination costs a few nanoseconds (no dependency, no shared state between pacers).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is below 2^-40 for the n used here.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// One chat message: a random sender and, with probability `p2p_ratio`, a random user's inbox,
/// otherwise a random room.
pub fn pick(
    rng: &mut Rng,
    connections: usize,
    rooms: usize,
    p2p_ratio: f64,
) -> (usize, Destination) {
    let sender = rng.below(connections);
    let destination = if rng.chance(p2p_ratio) {
        Destination::User(rng.below(connections))
    } else {
        Destination::Room(rng.below(rooms))
    };
    (sender, destination)
}

/// The connections task `shard` of `shards` drives: every `shards`-th id, so each task gets a
/// slice of every room and the load spreads evenly.
pub fn shard_ids(total: usize, shard: usize, shards: usize) -> Vec<usize> {
    (shard..total).step_by(shards.max(1)).collect()
}

/// Closed-loop fan-out: the publisher may send its next message while fewer than `inflight`
/// messages per subscriber are not yet delivered — an end-to-end window, so a broker cannot
/// look fast by accepting publishes and queueing (or dropping) them for slow subscribers.
pub fn window_open(sent: u64, delivered: u64, subscribers: u64, inflight: u64) -> bool {
    let owed = sent.saturating_mul(subscribers).saturating_sub(delivered);
    owed < inflight.saturating_mul(subscribers.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_balanced_and_members_add_up() {
        let (connections, rooms) = (2000, 50);
        let mut counts = vec![0u64; rooms];
        for id in 0..connections {
            counts[room_of(id, rooms)] += 1;
        }
        for (room, &count) in counts.iter().enumerate() {
            assert_eq!(count, room_members(room, connections, rooms));
        }
        assert_eq!(counts.iter().sum::<u64>(), connections as u64);
        // Uneven: 10 clients in 3 rooms are 4, 3, 3.
        assert_eq!(
            (0..3).map(|r| room_members(r, 10, 3)).collect::<Vec<_>>(),
            [4, 3, 3]
        );
    }

    #[test]
    fn topics_are_the_documented_ones() {
        assert_eq!(room_topic(7), "chat/room/7");
        assert_eq!(inbox_topic(1999), "chat/user/1999");
        assert_eq!(Destination::Room(3).topic(), "chat/room/3");
        assert_eq!(Destination::User(12).topic(), "chat/user/12");
    }

    #[test]
    fn deliveries_owed_per_destination() {
        assert_eq!(Destination::User(5).deliveries(2000, 50), 1);
        assert_eq!(Destination::Room(5).deliveries(2000, 50), 40);
        assert_eq!(Destination::Room(0).deliveries(10, 3), 4);
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut rng = Rng::new(1);
        assert!((0..10_000).all(|_| rng.below(7) < 7));
        assert!((0..100).all(|_| !rng.chance(0.0)));
        assert!((0..100).all(|_| rng.chance(1.0)));
    }

    #[test]
    fn p2p_ratio_is_respected_and_targets_are_uniform() {
        let mut rng = Rng::new(7);
        let (connections, rooms, n) = (100, 10, 100_000);
        let (mut p2p, mut per_room) = (0, vec![0u32; rooms]);
        for _ in 0..n {
            let (sender, destination) = pick(&mut rng, connections, rooms, 0.3);
            assert!(sender < connections);
            match destination {
                Destination::User(id) => {
                    assert!(id < connections);
                    p2p += 1;
                }
                Destination::Room(room) => per_room[room] += 1,
            }
        }
        let share = p2p as f64 / n as f64;
        assert!((0.29..0.31).contains(&share), "p2p share {share}");
        let expected = (n - p2p) as f64 / rooms as f64;
        for count in per_room {
            assert!((f64::from(count) - expected).abs() < expected * 0.05);
        }
    }

    #[test]
    fn shards_cover_every_id_once() {
        let mut all: Vec<usize> = (0..4).flat_map(|s| shard_ids(103, s, 4)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        assert_eq!(shard_ids(3, 5, 8), Vec::<usize>::new());
    }

    #[test]
    fn fanout_window_counts_every_subscriber() {
        // 10 subscribers, window of 4 messages each.
        assert!(window_open(0, 0, 10, 4));
        assert!(window_open(3, 0, 10, 4));
        assert!(!window_open(4, 0, 10, 4), "4 messages owed to each of 10");
        assert!(window_open(4, 1, 10, 4), "one delivery frees room");
        assert!(window_open(1000, 9970, 10, 4));
        assert!(!window_open(1000, 9960, 10, 4));
        assert!(
            window_open(5, 50, 10, 4),
            "more delivered than sent never blocks"
        );
    }
}
