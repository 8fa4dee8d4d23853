//! Unit tests of the rebalance state machine, driven with explicit time.
use super::*;
use crate::group::JoinRequest;

const DELAY: Duration = Duration::from_millis(100);

fn request(member_id: &str, instance: Option<&str>) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        instance_id: instance.map(Into::into),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
        require_known_member_id: false,
    }
}

fn outcome(rx: &mut oneshot::Receiver<JoinOutcome>) -> Option<JoinOutcome> {
    rx.try_recv().ok()
}

/// Two members join a new group, the leader assigns, both get their assignment.
fn stable_pair(now: Instant) -> (Group, String, String) {
    let mut g = Group::new("g".into());
    let mut a = g.join(request("", None), "a".into(), DELAY, now);
    let mut b = g.join(request("", None), "b".into(), DELAY, now);
    assert!(outcome(&mut a).is_none(), "waits for the initial delay");
    g.tick(DELAY, now + DELAY);
    let (ja, jb) = (outcome(&mut a).unwrap(), outcome(&mut b).unwrap());
    assert_eq!((ja.generation, jb.generation), (1, 1));
    assert_eq!(ja.leader, "a");
    assert_eq!(ja.members.len(), 2, "the leader sees every subscription");
    assert!(jb.members.is_empty());
    assert_eq!(g.state, GroupState::CompletingRebalance);
    let mut sb = g.sync("b", None, 1, vec![], now);
    assert!(sb.try_recv().is_err(), "a follower waits for the leader");
    let mut sa = g.sync(
        "a",
        None,
        1,
        vec![
            ("a".into(), Bytes::from_static(b"A")),
            ("b".into(), Bytes::from_static(b"B")),
        ],
        now,
    );
    assert_eq!(sa.try_recv().unwrap().assignment, Bytes::from_static(b"A"));
    assert_eq!(sb.try_recv().unwrap().assignment, Bytes::from_static(b"B"));
    assert_eq!(g.state, GroupState::Stable);
    (g, "a".into(), "b".into())
}

#[test]
fn join_sync_and_heartbeat() {
    let now = Instant::now();
    let (mut g, a, _) = stable_pair(now);
    assert_eq!(g.heartbeat(&a, None, 1, now), Ok(()));
    assert_eq!(
        g.heartbeat(&a, None, 0, now),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        g.heartbeat("nobody", None, 1, now),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn a_new_member_triggers_a_rebalance_everyone_rejoins() {
    let now = Instant::now();
    let (mut g, a, b) = stable_pair(now);
    let mut c = g.join(request("", None), "c".into(), DELAY, now);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat(&a, None, 1, now),
        Err(GroupError::RebalanceInProgress)
    );
    let mut ra = g.join(request(&a, None), String::new(), DELAY, now);
    assert!(outcome(&mut c).is_none());
    let mut rb = g.join(request(&b, None), String::new(), DELAY, now);
    let (ja, jb, jc) = (
        outcome(&mut ra).unwrap(),
        outcome(&mut rb).unwrap(),
        outcome(&mut c).unwrap(),
    );
    assert_eq!((ja.generation, jb.generation, jc.generation), (2, 2, 2));
    assert_eq!(ja.leader, a, "the leader is kept");
    assert_eq!(ja.members.len(), 3);
}

#[test]
fn silent_members_expire_and_the_rest_rebalance() {
    let now = Instant::now();
    let (mut g, a, b) = stable_pair(now);
    let later = now + Duration::from_secs(11);
    g.heartbeat(&a, None, 1, now + Duration::from_secs(9))
        .unwrap();
    let expired = g.tick(DELAY, later);
    assert_eq!(expired, vec![b.clone()]);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    let mut ra = g.join(request(&a, None), String::new(), DELAY, later);
    let ja = outcome(&mut ra).unwrap();
    assert_eq!(ja.generation, 2);
    assert_eq!(ja.members.len(), 1);
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_deadline() {
    let now = Instant::now();
    let (mut g, a, _b) = stable_pair(now);
    let mut ra = g.join(
        JoinRequest {
            protocols: vec![("range".into(), Bytes::from_static(b"new"))],
            ..request(&a, None)
        },
        String::new(),
        DELAY,
        now,
    );
    assert!(outcome(&mut ra).is_none());
    g.tick(DELAY, now + Duration::from_secs(31));
    let ja = outcome(&mut ra).unwrap();
    assert_eq!(ja.members.len(), 1, "b did not rejoin in time");
}

#[test]
fn leaving_empties_the_group() {
    let now = Instant::now();
    let (mut g, a, b) = stable_pair(now);
    let results = g.leave(
        &[(a.clone(), None), (b.clone(), None), ("x".into(), None)],
        DELAY,
        now,
    );
    assert_eq!(
        results,
        vec![Ok(()), Ok(()), Err(GroupError::UnknownMemberId)]
    );
    assert_eq!(g.state, GroupState::Empty);
    assert!(g.dirty);
}

#[test]
fn member_id_required_then_join_with_it() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let mut first = g.join(
        JoinRequest {
            require_known_member_id: true,
            ..request("", None)
        },
        "m1".into(),
        DELAY,
        now,
    );
    let o = outcome(&mut first).unwrap();
    assert_eq!(o.error, Some(GroupError::MemberIdRequired));
    assert_eq!(o.member_id, "m1");
    assert!(
        g.members.is_empty(),
        "no ghost member before the second join"
    );
    let mut second = g.join(request("m1", None), String::new(), DELAY, now);
    g.tick(DELAY, now + DELAY);
    assert_eq!(outcome(&mut second).unwrap().generation, 1);
}

#[test]
fn a_restarted_static_member_keeps_its_assignment_without_a_rebalance() {
    let now = Instant::now();
    let mut g = Group::new("g".into());
    let mut a = g.join(request("", Some("i1")), "a1".into(), DELAY, now);
    g.tick(DELAY, now + DELAY);
    assert_eq!(outcome(&mut a).unwrap().generation, 1);
    let mut s = g.sync(
        "a1",
        Some("i1"),
        1,
        vec![("a1".into(), Bytes::from_static(b"P"))],
        now,
    );
    assert_eq!(s.try_recv().unwrap().assignment, Bytes::from_static(b"P"));
    // The process restarts: a new member id, the same instance id.
    let mut again = g.join(request("", Some("i1")), "a2".into(), DELAY, now);
    let o = outcome(&mut again).unwrap();
    assert_eq!(o.error, None);
    assert_eq!(o.generation, 1, "no new generation");
    assert_eq!(g.state, GroupState::Stable);
    assert_eq!(g.members["a2"].assignment, Bytes::from_static(b"P"));
    // The old id is fenced.
    assert_eq!(
        g.heartbeat("a1", Some("i1"), 1, now),
        Err(GroupError::FencedInstanceId)
    );
}

#[test]
fn incompatible_protocols_are_refused() {
    let now = Instant::now();
    let (mut g, _, _) = stable_pair(now);
    let mut x = g.join(
        JoinRequest {
            protocols: vec![("roundrobin".into(), Bytes::new())],
            ..request("", None)
        },
        "x".into(),
        DELAY,
        now,
    );
    assert_eq!(
        outcome(&mut x).unwrap().error,
        Some(GroupError::InconsistentGroupProtocol)
    );
}
