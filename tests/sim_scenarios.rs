//! Hand-written scenarios on the deterministic simulator, for behaviours random seeds
//! rarely isolate: check-quorum, pre-vote, herald transfer, and membership changes
//! (learner catch-up, promotion, removal). Every invariant is checked every tick.

use bytes::Bytes;
use radiant::core::OrderRole;
use radiant::sim::order::{member_entry, Simulator};
use radiant_protocol::{ClientRequest, ClientResponse, ErrorResponse, MemberId, OrderStateOp};

/// Ten ticks is one election timeout in the simulator.
const ELECTION: u64 = 10;

fn member(id: u64) -> MemberId {
    MemberId::new(id).expect("nonzero")
}

fn settled(simulator: &mut Simulator) -> (usize, u64) {
    simulator.run_ticks(20 * ELECTION);
    simulator.herald().expect("a herald within 20 election timeouts")
}

fn put(
    simulator: &mut Simulator,
    radiant: usize,
    key: &str,
) -> Result<ClientResponse, ErrorResponse> {
    let request = ClientRequest::Put {
        key: Bytes::from(key.to_string()),
        value: Bytes::from_static(b"v"),
        session: None,
    };
    simulator.request(radiant, request, 10 * ELECTION)
}

#[test]
fn an_isolated_herald_steps_down_and_the_majority_elects_another() {
    let mut simulator = Simulator::quiet(1, 3, 3);
    let (herald, term) = settled(&mut simulator);
    simulator.isolate(herald);
    simulator.run_ticks(5 * ELECTION);
    let order = simulator.order(herald).expect("up");
    assert_ne!(
        order.role(),
        OrderRole::Herald,
        "check-quorum: a herald that hears no majority steps down"
    );
    let (new_herald, new_term) = simulator.herald().expect("the majority elected a herald");
    assert_ne!(new_herald, herald);
    assert!(new_term > term);
}

#[test]
fn a_member_returning_from_a_partition_does_not_depose_the_herald() {
    let mut simulator = Simulator::quiet(2, 3, 3);
    let (herald, term) = settled(&mut simulator);
    let follower = (herald + 1) % 3;
    simulator.isolate(follower);
    simulator.run_ticks(20 * ELECTION);
    assert_eq!(
        simulator.order(follower).expect("up").term(),
        term,
        "pre-vote: an isolated member keeps its term"
    );
    simulator.heal();
    simulator.run_ticks(20 * ELECTION);
    assert_eq!(
        simulator.herald(),
        Some((herald, term)),
        "the returning member did not cause an election"
    );
    assert!(put(&mut simulator, herald, "after-heal").is_ok());
}

#[test]
fn a_herald_transfer_hands_the_role_to_the_named_member() {
    let mut simulator = Simulator::quiet(3, 3, 3);
    let (herald, term) = settled(&mut simulator);
    let target = (herald + 1) % 3;
    let to = Some(member(target as u64 + 1));
    let answer = simulator.request(herald, ClientRequest::TransferHerald { to }, 10 * ELECTION);
    assert_eq!(answer, Ok(ClientResponse::Done));
    simulator.run_ticks(5 * ELECTION);
    let (new_herald, new_term) = simulator.herald().expect("a herald");
    assert_eq!(new_herald, target);
    assert!(new_term > term);
}

#[test]
fn a_learner_catches_up_is_promoted_and_a_voter_can_then_be_removed() {
    let mut simulator = Simulator::quiet(4, 4, 3);
    let (herald, _) = settled(&mut simulator);
    for index in 0..30 {
        assert!(put(&mut simulator, herald, &format!("k{index}")).is_ok());
    }
    let add = ClientRequest::AddMember { member: member(4), address: member_entry(3) };
    assert_eq!(simulator.request(herald, add, 10 * ELECTION), Ok(ClientResponse::Done));
    simulator.run_ticks(10 * ELECTION);
    let herald_order = simulator.order(herald).expect("up");
    assert!(
        herald_order.membership().voters.contains(&member(4)),
        "the caught-up learner was promoted"
    );
    let commit = herald_order.commit_index();
    let learner = simulator.order(3).expect("up");
    assert!(
        learner.commit_index() >= commit,
        "learner commit {} < {commit}",
        learner.commit_index()
    );
    assert_eq!(learner.membership().voters.len(), 4);

    let victim = (herald + 1) % 3;
    let remove = ClientRequest::RemoveMember { member: member(victim as u64 + 1) };
    let (herald, _) = simulator.herald().expect("a herald");
    assert_eq!(simulator.request(herald, remove, 10 * ELECTION), Ok(ClientResponse::Done));
    simulator.run_ticks(10 * ELECTION);
    let voters = &simulator.order(herald).expect("up").membership().voters;
    assert_eq!(voters.len(), 3);
    assert!(!voters.contains(&member(victim as u64 + 1)));
    assert!(put(&mut simulator, herald, "after-removal").is_ok());
    // The removed member hears its order no more: it must not send clients to the
    // herald it last knew, which may be long gone, but say why it serves nothing.
    let state = simulator.order(victim).expect("up").state();
    assert!(
        matches!(state, radiant::core::order::OrderState::Error(_)),
        "removed member is {state}"
    );
    match put(&mut simulator, victim, "at-the-removed-member") {
        Err(ErrorResponse::Unavailable { reason }) => {
            assert!(reason.contains("ERROR"), "{reason}");
        }
        other => panic!("the removed member answered {other:?}"),
    }
}

#[test]
fn a_second_membership_change_while_one_is_pending_gets_locked() {
    let mut simulator = Simulator::quiet(5, 5, 3);
    let (herald, _) = settled(&mut simulator);
    // Radiant 4 is down, so the learner never catches up and the change stays pending.
    simulator.isolate(3);
    let add = ClientRequest::AddMember { member: member(4), address: member_entry(3) };
    assert_eq!(simulator.request(herald, add, 10 * ELECTION), Ok(ClientResponse::Done));
    let add_another = ClientRequest::AddMember { member: member(5), address: member_entry(4) };
    let answer = simulator.request(herald, add_another, 10 * ELECTION);
    assert_eq!(answer, Err(ErrorResponse::Locked(OrderStateOp::MembershipUpdate)));
}

#[test]
fn a_herald_drops_acknowledgements_of_entries_it_never_sent() {
    use radiant_protocol::{AppendAck, OrderId, PeerBody, PeerHeader, PeerMessage};
    let mut simulator = Simulator::quiet(6, 3, 3);
    let (herald, term) = settled(&mut simulator);
    let follower = (herald + 1) % 3;
    let commit = simulator.order(herald).expect("up").commit_index();
    let header = PeerHeader {
        cluster: radiant_protocol::ClusterId::UNSET,
        order_id: OrderId::new(1).expect("nonzero"),
        from: member(follower as u64 + 1),
        to: member(herald as u64 + 1),
        term,
    };
    let bogus =
        AppendAck { success: true, match_index: 1 << 40, reject_hint: 0, read_round: 1 << 40 };
    simulator.inject(herald, PeerMessage { header, body: PeerBody::AppendAck(bogus) });
    simulator.run_ticks(5 * ELECTION);
    assert_eq!(simulator.herald().map(|(index, _)| index), Some(herald));
    assert!(
        simulator.order(herald).expect("up").commit_index() <= commit + 1,
        "a bogus ack moved commit"
    );
    assert!(put(&mut simulator, herald, "still-serving").is_ok());
}

#[test]
fn a_herald_that_loses_its_role_says_outcome_unknown_for_a_write_without_a_session() {
    let mut simulator = Simulator::quiet(7, 3, 3);
    let (herald, _) = settled(&mut simulator);
    // Cut off, the herald appends the put, cannot commit it, and steps down (check-quorum):
    // the put may still commit under the next herald, so a redirect would invite a retry
    // that applies it twice.
    simulator.isolate(herald);
    let answer = put(&mut simulator, herald, "orphan");
    assert!(matches!(answer, Err(ErrorResponse::OutcomeUnknown { .. })), "{answer:?}");
}

#[test]
fn a_herald_that_loses_its_role_sends_a_write_with_a_session_on_to_retry() {
    let mut simulator = Simulator::quiet(8, 3, 3);
    let (herald, _) = settled(&mut simulator);
    simulator.isolate(herald);
    let session = radiant_protocol::ClientId::new(77)
        .map(|client_id| radiant_protocol::Session { client_id, sequence: 1 });
    let request = ClientRequest::Delete { key: Bytes::from_static(b"orphan"), session };
    let answer = simulator.request(herald, request, 10 * ELECTION);
    // Its session makes the retry apply once: the client is sent on (or told to back off
    // while the order votes), never left with an unknown outcome.
    assert!(
        matches!(answer, Err(ErrorResponse::NotHerald { .. } | ErrorResponse::Locked(_))),
        "{answer:?}"
    );
}

/// Issue 14: reads that arrive together share heartbeat rounds. Sixty-four linearizable
/// gets in one tick cost the herald one round, and the periodic heartbeats of the ticks
/// until they are answered, not a round each (before, each read broadcast its own).
#[test]
fn reads_that_arrive_together_share_one_heartbeat_round() {
    let mut simulator = Simulator::quiet(4, 3, 3);
    let (herald, _) = settled(&mut simulator);
    put(&mut simulator, herald, "key").expect("put");
    let started =
        |simulator: &Simulator| simulator.order(herald).expect("up").read_rounds_started();
    let before = started(&simulator);
    let gets: Vec<_> = (0..64)
        .map(|_| ClientRequest::Get {
            key: Bytes::from_static(b"key"),
            consistency: radiant_protocol::ReadConsistency::Linearizable,
        })
        .collect();
    let answers = simulator.requests(herald, gets, 10 * ELECTION);
    for answer in &answers {
        let value = Some(Bytes::from_static(b"v"));
        assert_eq!(answer, &Ok(ClientResponse::GetResult { value }), "{answers:?}");
    }
    let rounds = started(&simulator) - before;
    assert!(rounds <= 3, "64 reads arriving together took {rounds} heartbeat rounds");
}

fn get(consistency: radiant_protocol::ReadConsistency) -> ClientRequest {
    ClientRequest::Get { key: Bytes::from_static(b"key"), consistency }
}

/// Issue 14: follower reads. A follower serves a follower read itself, after asking the
/// herald for a read index, and sees every write acknowledged before the read; a plain
/// linearizable read at a follower is still sent to the herald.
#[test]
fn a_follower_serves_a_follower_read_that_sees_every_acknowledged_write() {
    use radiant_protocol::ReadConsistency;
    let mut simulator = Simulator::quiet(6, 3, 3);
    let (herald, _) = settled(&mut simulator);
    let follower = (0..3).find(|&radiant| radiant != herald).expect("a follower");
    for round in 0..5 {
        let key = "key";
        let value = Bytes::from(format!("v{round}"));
        let request = ClientRequest::Put { key: Bytes::from(key), value, session: None };
        simulator.request(herald, request, 10 * ELECTION).expect("put");
        let answer = simulator.request(follower, get(ReadConsistency::Follower), 10 * ELECTION);
        let value = Some(Bytes::from(format!("v{round}")));
        assert_eq!(answer, Ok(ClientResponse::GetResult { value }), "round {round}");
    }
    let redirected = simulator.request(follower, get(ReadConsistency::Linearizable), ELECTION);
    assert!(
        matches!(redirected, Err(ErrorResponse::NotHerald { .. })),
        "a linearizable read at a follower: {redirected:?}"
    );
}

/// A follower cut off from its herald gets no read index: its follower reads are
/// refused (within an election timeout or two), so clients retry elsewhere, rather
/// than served from what it has.
#[test]
fn a_follower_cut_off_from_its_herald_refuses_follower_reads() {
    use radiant_protocol::ReadConsistency;
    let mut simulator = Simulator::quiet(7, 3, 3);
    let (herald, _) = settled(&mut simulator);
    put(&mut simulator, herald, "key").expect("put");
    let follower = (0..3).find(|&radiant| radiant != herald).expect("a follower");
    simulator.isolate(follower);
    let answer = simulator.request(follower, get(ReadConsistency::Follower), 5 * ELECTION);
    assert!(
        matches!(answer, Err(ErrorResponse::NotHerald { .. } | ErrorResponse::Locked(_))),
        "a follower read at a cut-off follower: {answer:?}"
    );
}

#[test]
fn a_survivor_resets_an_order_that_lost_its_majority_and_serves_everything_it_held() {
    let mut simulator = Simulator::quiet(11, 3, 3);
    let (herald, _) = settled(&mut simulator);
    for index in 0..30 {
        assert!(put(&mut simulator, herald, &format!("k{index}")).is_ok());
    }
    simulator.run_ticks(2 * ELECTION);
    let survivor = (herald + 1) % 3;
    let held = simulator.order(survivor).expect("up").commit_index();
    let order_id = simulator.order(survivor).expect("up").order_id();
    let recover = ClientRequest::RecoverOrder { order_id, survivor: member(survivor as u64 + 1) };
    // Whole, the order refuses.
    let refused = simulator.request(survivor, recover.clone(), 10 * ELECTION);
    assert!(matches!(refused, Err(ErrorResponse::BadRequest { .. })), "{refused:?}");

    // The other two are cut off for good: no majority, no herald.
    for lost in (0..3).filter(|&index| index != survivor) {
        simulator.isolate(lost);
    }
    simulator.run_ticks(ELECTION);
    let early = simulator.request(survivor, recover.clone(), ELECTION);
    assert!(matches!(early, Err(ErrorResponse::BadRequest { .. })), "too early: {early:?}");
    simulator.run_ticks(5 * ELECTION);
    assert_eq!(
        simulator.request(survivor, recover.clone(), 10 * ELECTION),
        Ok(ClientResponse::Done)
    );

    let order = simulator.order(survivor).expect("up");
    assert_eq!(order.role(), OrderRole::Herald);
    assert_eq!(
        order.membership().voters.iter().copied().collect::<Vec<_>>(),
        [member(survivor as u64 + 1)]
    );
    assert!(order.commit_index() > held, "the reset committed after everything it held");
    assert!(put(&mut simulator, survivor, "after-reset").is_ok());
    // A retried recovery finds the work done: it answers success and changes nothing.
    let before = simulator.order(survivor).map(|order| (order.term(), order.commit_index()));
    let again = simulator.request(survivor, recover, 10 * ELECTION);
    assert_eq!(again, Ok(ClientResponse::Done), "a second reset");
    let after = simulator.order(survivor).map(|order| (order.term(), order.commit_index()));
    assert_eq!(before, after, "a retried reset starts no term and appends nothing");
    simulator.run_ticks(10 * ELECTION);
}
