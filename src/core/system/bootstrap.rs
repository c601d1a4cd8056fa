//! Forming: beacons and address tables, the first controller election among brand-new
//! radiants, configuration 1, and joining an established system.

use std::collections::{BTreeMap, BTreeSet};

use radiant_protocol::message::system::MAX_JOIN_HOPS;
use radiant_protocol::{
    BeaconHandshake, BeaconResponse, ClusterId, CouncilAppend, CouncilAppendAck,
    CouncilRequestVote, CouncilVote, JoinAccepted, JoinSystem, RadiantAddress, SystemBody,
};

use super::{shape, Controller, Holder, RadiantState, System};
use crate::core::Actions;

impl System {
    /// Beacons on schedule, stands for bootstrap controller when enough radiants are
    /// known, and as bootstrap controller repeats configuration 1 until it commits.
    pub(super) fn tick_forming(&mut self, actions: &mut Actions) {
        if self.now >= self.next_beacon {
            self.beacon(actions);
            self.next_beacon = super::Tick(self.now.0 + self.options.beacon_interval_ticks.max(1));
        }
        if self.controller.is_some() {
            self.heartbeat_bootstrap(actions);
            return;
        }
        // Known and reachable: heard from directly (the neighbour too, when one is
        // configured, so a radiant pointed at an established system joins it instead).
        let expect = self.options.bootstrap_expect as usize;
        let neighbor_heard =
            self.options.neighbor.as_ref().is_none_or(|neighbor| self.heard.contains(neighbor));
        if self.join_via.is_some() || self.heard.len() + 1 < expect || !neighbor_heard {
            return;
        }
        let deadline = match self.bootstrap_deadline {
            Some(deadline) => deadline,
            None => {
                // A radiant that sees everyone waits a random while, so the others
                // catch up and, usually, one stands alone. Alone it need not wait.
                let election = self.options.election_timeout_ticks.max(1);
                let wait = if self.options.bootstrap_expect <= 1 {
                    0
                } else {
                    self.prng.range(election, election * 3)
                };
                let deadline = super::Tick(self.now.0 + wait);
                self.bootstrap_deadline = Some(deadline);
                deadline
            }
        };
        if self.now >= deadline {
            self.stand_for_bootstrap(actions);
        }
    }

    /// One round of beacons: to the neighbour unless it beaconed us first (then it is in
    /// charge), to one other known radiant in turn so address tables spread, and a join
    /// request once an established system answered.
    fn beacon(&mut self, actions: &mut Actions) {
        let handshake = self.handshake();
        let neighbor = self.options.neighbor.clone();
        if let Some(neighbor) = &neighbor {
            // The neighbour that beaconed us is in charge, until we hold a configuration
            // it may have committed without telling us: then we ask it.
            let in_charge = self.neighbor_beaconed_at.is_some_and(|at| {
                self.now.0 < at.0 + 3 * self.options.beacon_interval_ticks.max(1)
            });
            if !in_charge || self.record.accepted.is_some() {
                self.send(neighbor, handshake.clone(), actions);
            }
        }
        let others: Vec<String> = self
            .known
            .keys()
            .filter(|peer| **peer != self.options.peer_address && Some(*peer) != neighbor.as_ref())
            .cloned()
            .collect();
        if !others.is_empty() {
            let target = others[self.gossip_cursor % others.len()].clone();
            self.gossip_cursor = self.gossip_cursor.wrapping_add(1);
            self.send(&target, handshake, actions);
        }
        if let Some(via) = self.join_via.clone() {
            let join = JoinSystem { joiner: self.my_address(), hops: 0 };
            self.send(&via, SystemBody::JoinSystem(join), actions);
        }
    }

    fn handshake(&self) -> SystemBody {
        SystemBody::BeaconHandshake(BeaconHandshake {
            client: self.options.client_address.clone(),
            member: self.record.member,
            bootstrap_expect: self.options.bootstrap_expect,
            known: self.known_table(),
        })
    }

    /// An associated radiant still greets its neighbour now and then (every 20 beacon
    /// intervals): address tables stay fresh, and a radiant whose data directory belongs
    /// to another system is refused and says so instead of going unnoticed.
    pub(super) fn beacon_neighbor_slowly(&mut self, actions: &mut Actions) {
        if self.now < self.next_beacon {
            return;
        }
        self.next_beacon = super::Tick(self.now.0 + self.options.beacon_interval_ticks.max(1) * 20);
        if let Some(neighbor) = self.options.neighbor.clone() {
            let handshake = self.handshake();
            self.send(&neighbor, handshake, actions);
        }
        // And one other radiant of its configuration in turn: one that holds a newer
        // committed configuration answers `JoinAccepted` with it. A spare learns so that
        // it is in a new order even when no controller is left to tell it (its neighbour
        // may have left the system).
        let others: Vec<String> = self
            .record
            .configuration
            .iter()
            .flat_map(|configuration| configuration.radiants.values())
            .map(|address| address.peer.clone())
            .filter(|peer| *peer != self.options.peer_address)
            .collect();
        if !others.is_empty() {
            self.gossip_cursor = self.gossip_cursor.wrapping_add(1);
            let other = others[self.gossip_cursor % others.len()].clone();
            let handshake = self.handshake();
            self.send(&other, handshake, actions);
        }
    }

    fn known_table(&self) -> Vec<RadiantAddress> {
        self.known.values().cloned().collect()
    }

    fn merge_known(&mut self, table: &[RadiantAddress]) {
        for address in table {
            if !address.peer.is_empty() {
                let known =
                    self.known.entry(address.peer.clone()).or_insert_with(|| address.clone());
                if known.resp.is_empty() {
                    known.resp.clone_from(&address.resp);
                }
            }
        }
    }

    pub(super) fn on_handshake(
        &mut self,
        cluster: ClusterId,
        from: String,
        handshake: BeaconHandshake,
        actions: &mut Actions,
    ) {
        self.merge_known(&handshake.known);
        let sender = self.known.entry(from.clone()).or_insert_with(|| RadiantAddress {
            peer: from.clone(),
            client: String::new(),
            resp: String::new(),
        });
        sender.client.clone_from(&handshake.client);
        let first = self.heard.insert(from.clone());
        if first && handshake.bootstrap_expect != self.options.bootstrap_expect {
            let (theirs, ours) = (handshake.bootstrap_expect, self.options.bootstrap_expect);
            let why = "system: bootstrap_expect differs; a new system's radiants must agree";
            tracing::warn!(peer = %from, theirs, ours, "{why}");
        }
        if self.options.neighbor.as_deref() == Some(from.as_str()) {
            self.neighbor_beaconed_at = Some(self.now);
        }
        let associated = self.record.configuration.clone().filter(|_| self.record.is_associated());
        if let Some(configuration) = associated {
            // A radiant this system already counts (it missed the commit, or its
            // JoinAccepted was lost): tell it who it is.
            let listed = configuration.radiants.iter().find(|(_, address)| address.peer == from);
            // A radiant it no longer lists but that had an id of this system was removed:
            // tell it too (it may still lead its order and must hand over).
            let removed = handshake
                .member
                .filter(|member| {
                    member.get() < configuration.next_member_id
                        && !configuration.radiants.contains_key(member)
                })
                .filter(|_| cluster == self.record.cluster);
            if let Some(member) = listed.map(|(&member, _)| member).or(removed) {
                let accepted = JoinAccepted { member, configuration };
                self.send(&from, SystemBody::JoinAccepted(accepted), actions);
                return;
            }
        }
        let next_id = self.temporary_ids.len() as u64 + 1;
        let temporary_id = *self.temporary_ids.entry(from.clone()).or_insert(next_id);
        let response = BeaconResponse {
            temporary_id,
            established: self.record.is_associated(),
            configuration_number: self.record.committed,
            controller: self
                .controller_view
                .as_ref()
                .map(|view| view.address.clone())
                .unwrap_or_default(),
            known: self.known_table(),
        };
        self.send(&from, SystemBody::BeaconResponse(response), actions);
    }

    pub(super) fn on_beacon_response(&mut self, from: String, response: BeaconResponse) {
        self.merge_known(&response.known);
        self.heard.insert(from.clone());
        let holds_bootstrap = self.record.accepted.is_some() || self.controller.is_some();
        if response.established && !self.record.is_associated() && !holds_bootstrap {
            let via = if response.controller.is_empty() { from } else { response.controller };
            if self.join_via.as_ref() != Some(&via) {
                tracing::info!(via = %via, "system: found an established system; asking to join");
            }
            self.join_via = Some(via);
        }
    }

    // ===== joins =====

    pub(super) fn on_join(&mut self, join: JoinSystem, actions: &mut Actions) {
        if self.is_controller() {
            let _ = self.admit(join.joiner, actions);
            return;
        }
        let Some(view) = &self.controller_view else { return };
        if join.hops < MAX_JOIN_HOPS && view.address != self.options.peer_address {
            let relayed = JoinSystem { joiner: join.joiner, hops: join.hops + 1 };
            let to = view.address.clone();
            self.send(&to, SystemBody::JoinSystem(relayed), actions);
        }
    }

    /// The controller's side of a join: one configuration change at a time. Returns
    /// the number of the configuration that lists the joiner, or `None` while another
    /// change is in flight (the joiner retries).
    pub(super) fn admit(&mut self, joiner: RadiantAddress, actions: &mut Actions) -> Option<u64> {
        let order_size = self.options.order_size;
        let controller = self.controller.as_mut().expect("is_controller");
        let listed =
            controller.latest.radiants.iter().find(|(_, address)| address.peer == joiner.peer);
        if let Some((&member, _)) = listed {
            let number = controller.latest.number;
            controller.pending_joins.insert(joiner.peer, member);
            self.answer_joins(actions);
            return Some(number);
        }
        let committed_number = controller.committed.as_ref().map_or(0, |c| c.number);
        if controller.latest.number > committed_number {
            return None;
        }
        let (next, member) =
            shape::with_joiner(&controller.latest, controller.term, joiner.clone(), order_size);
        let number = next.number;
        let peer = &joiner.peer;
        tracing::info!(%member, %peer, configuration = number, "controller: admitting");
        controller.latest = next;
        controller.pending_joins.insert(joiner.peer, member);
        controller.heartbeat_elapsed = u64::MAX;
        Some(number)
    }

    /// Sends `JoinAccepted` to every pending joiner the committed configuration lists.
    pub(super) fn answer_joins(&mut self, actions: &mut Actions) {
        let Some(controller) = self.controller.as_mut() else { return };
        let Some(committed) = controller.committed.clone() else { return };
        let ready: Vec<(String, radiant_protocol::MemberId)> = controller
            .pending_joins
            .iter()
            .filter(|(_, member)| committed.radiants.contains_key(member))
            .map(|(peer, member)| (peer.clone(), *member))
            .collect();
        let mut sends = Vec::new();
        for (peer, member) in ready {
            controller.pending_joins.remove(&peer);
            let accepted = JoinAccepted { member, configuration: committed.clone() };
            sends.push((peer, SystemBody::JoinAccepted(accepted)));
        }
        for (peer, body) in sends {
            self.send(&peer, body, actions);
        }
    }

    pub(super) fn on_join_accepted(
        &mut self,
        cluster: ClusterId,
        accepted: JoinAccepted,
        actions: &mut Actions,
    ) {
        let lists_me = accepted
            .configuration
            .radiants
            .get(&accepted.member)
            .is_some_and(|address| address.peer == self.options.peer_address);
        // Or it tells this radiant, by its own id, that it was removed.
        let removes_me = self.record.member == Some(accepted.member)
            && cluster == self.record.cluster
            && !accepted.configuration.radiants.contains_key(&accepted.member);
        if !(lists_me || removes_me)
            || !cluster.is_set()
            || self.record.committed >= accepted.configuration.number
        {
            return;
        }
        let number = accepted.configuration.number;
        tracing::info!(member = %accepted.member, configuration = number, "system: joined");
        self.controller = None;
        self.adopt_committed(cluster, accepted.configuration, actions);
    }

    // ===== the bootstrap election =====

    fn stand_for_bootstrap(&mut self, actions: &mut Actions) {
        self.record.bootstrap_term += 1;
        self.record.bootstrap_vote = Some(self.options.peer_address.clone());
        self.bootstrap_deadline = Some(super::Tick(self.council_timeout()));
        self.persist(actions);
        let term = self.record.bootstrap_term;
        tracing::info!(term, known = self.known.len(), "system: standing for bootstrap controller");
        self.bootstrap_votes = Some(BTreeSet::from([self.options.peer_address.clone()]));
        let (last_number, last_term) = self.held_position();
        let request = CouncilRequestVote {
            term,
            candidate_order: None,
            candidate_member: None,
            last_number,
            last_term,
        };
        let me = self.options.peer_address.clone();
        let peers: Vec<String> = self.known.keys().filter(|peer| **peer != me).cloned().collect();
        for peer in &peers {
            self.send(peer, SystemBody::CouncilRequestVote(request.clone()), actions);
        }
        self.count_bootstrap_votes(actions);
    }

    fn held_position(&self) -> (u64, u64) {
        self.record.accepted.as_ref().map_or((0, 0), |held| (held.number, held.council_term))
    }

    fn bootstrap_quorum(&self) -> usize {
        self.options.bootstrap_expect as usize / 2 + 1
    }

    /// Moves to a later bootstrap term, dropping any candidacy or controller role.
    fn adopt_bootstrap_term(&mut self, term: u64) {
        if term > self.record.bootstrap_term {
            self.record.bootstrap_term = term;
            self.record.bootstrap_vote = None;
            self.bootstrap_votes = None;
            self.controller = None;
        }
    }

    pub(super) fn on_bootstrap_request_vote(
        &mut self,
        from: String,
        request: CouncilRequestVote,
        actions: &mut Actions,
    ) {
        if self.record.is_associated() {
            return; // Answered by beacons: the straggler is told its configuration.
        }
        let before = (self.record.bootstrap_term, self.record.bootstrap_vote.clone());
        self.adopt_bootstrap_term(request.term);
        let up_to_date = (request.last_number, request.last_term) >= self.held_position();
        let free = self.record.bootstrap_vote.as_ref().is_none_or(|vote| *vote == from);
        let granted = request.term == self.record.bootstrap_term && up_to_date && free;
        if granted {
            self.record.bootstrap_vote = Some(from.clone());
            self.bootstrap_deadline = Some(super::Tick(self.council_timeout()));
        }
        if before != (self.record.bootstrap_term, self.record.bootstrap_vote.clone()) {
            // Why: a vote must survive a crash before anyone hears of it.
            self.persist(actions);
        }
        let vote = CouncilVote { term: self.record.bootstrap_term, order_id: None, granted };
        self.send(&from, SystemBody::CouncilVote(vote), actions);
    }

    pub(super) fn on_bootstrap_vote(
        &mut self,
        from: String,
        vote: CouncilVote,
        actions: &mut Actions,
    ) {
        if self.record.is_associated() {
            return;
        }
        if vote.term > self.record.bootstrap_term {
            self.adopt_bootstrap_term(vote.term);
            self.persist(actions);
            return;
        }
        if vote.term != self.record.bootstrap_term || !vote.granted {
            return;
        }
        if let Some(votes) = self.bootstrap_votes.as_mut() {
            votes.insert(from);
            self.count_bootstrap_votes(actions);
        }
    }

    fn count_bootstrap_votes(&mut self, actions: &mut Actions) {
        let won = self.bootstrap_votes.as_ref().is_some_and(|v| v.len() >= self.bootstrap_quorum());
        if !won || self.controller.is_some() {
            return;
        }
        let term = self.record.bootstrap_term;
        // A winner that already holds a configuration 1 finishes committing it (it may
        // be committed already); otherwise it makes one and fixes the cluster id.
        let latest = match self.record.accepted.clone() {
            Some(mut held) => {
                held.council_term = term;
                held
            }
            None => {
                self.record.cluster = ClusterId(
                    u128::from(self.prng.next_u64()) << 64 | u128::from(self.prng.next_u64()) | 1,
                );
                // Known and heard from directly: a radiant only gossiped about may never
                // have started.
                let reachable: BTreeMap<String, RadiantAddress> = self
                    .known
                    .iter()
                    .filter(|(peer, _)| {
                        self.heard.contains(*peer) || **peer == self.options.peer_address
                    })
                    .map(|(peer, address)| (peer.clone(), address.clone()))
                    .collect();
                shape::initial_configuration(
                    term,
                    &reachable,
                    self.options.order_size,
                    self.options.shard_count,
                )
            }
        };
        let (cluster, radiants) = (self.record.cluster, latest.radiants.len());
        tracing::info!(term, %cluster, radiants, "system: elected bootstrap controller");
        self.record.accepted = Some(latest.clone());
        self.persist(actions);
        let mut held = BTreeMap::new();
        held.insert(Holder::Radiant(self.options.peer_address.clone()), latest.number);
        self.controller = Some(Controller {
            term,
            latest,
            committed: None,
            held,
            heralds: BTreeMap::new(),
            pending_joins: BTreeMap::new(),
            pending_admin: Vec::new(),
            shard_reports: BTreeMap::new(),
            order_reports: BTreeMap::new(),
            herald_addresses: BTreeMap::new(),
            heartbeat_elapsed: u64::MAX,
        });
        self.heartbeat_bootstrap(actions);
        self.try_commit_bootstrap(actions);
    }

    /// The bootstrap controller sends configuration 1 to every radiant it lists.
    fn heartbeat_bootstrap(&mut self, actions: &mut Actions) {
        let interval = self.options.heartbeat_interval_ticks;
        let Some(controller) = self.controller.as_mut() else { return };
        if !controller.heartbeat_due(interval) {
            return;
        }
        let append = CouncilAppend {
            term: controller.term,
            controller_order: None,
            controller_member: None,
            committed: controller.committed.as_ref().map_or(0, |c| c.number),
            configuration: Some(controller.latest.clone()),
            committed_configuration: None,
            heralds: Vec::new(),
        };
        // Not to itself: the bootstrap controller holds configuration 1 already.
        let me = &self.options.peer_address;
        let peers = controller.latest.radiants.values().map(|address| &address.peer);
        let peers: Vec<String> = peers.filter(|peer| *peer != me).cloned().collect();
        self.send_to_all(&peers, &append, actions);
    }

    pub(super) fn on_bootstrap_append(
        &mut self,
        cluster: ClusterId,
        from: String,
        append: CouncilAppend,
        actions: &mut Actions,
    ) {
        if self.record.is_associated() {
            return;
        }
        if append.term < self.record.bootstrap_term {
            let ack = CouncilAppendAck {
                term: self.record.bootstrap_term,
                order_id: None,
                member: None,
                held: 0,
                success: false,
                adopted: 0,
                moving: 0,
                order_state: String::new(),
                reason: String::new(),
                members: Vec::new(),
            };
            self.send(&from, SystemBody::CouncilAppendAck(ack), actions);
            return;
        }
        let mut changed = append.term > self.record.bootstrap_term;
        self.adopt_bootstrap_term(append.term);
        self.bootstrap_deadline = Some(super::Tick(self.council_timeout()));
        self.join_via = None;
        let Some(configuration) = append.configuration else { return };
        let lists_me = configuration
            .radiants
            .values()
            .any(|address| address.peer == self.options.peer_address);
        if configuration.check().is_err() || !lists_me || !cluster.is_set() {
            return;
        }
        self.learn_addresses(&configuration);
        if self.record.accepted.as_ref() != Some(&configuration) {
            self.record.accepted = Some(configuration.clone());
            self.record.cluster = cluster;
            changed = true;
        }
        if changed {
            self.persist(actions);
        }
        let held = configuration.number;
        if append.committed >= held {
            tracing::info!(configuration = held, %cluster, "system: configuration 1 committed");
            self.adopt_committed(cluster, configuration, actions);
        }
        let ack = CouncilAppendAck {
            term: append.term,
            order_id: None,
            member: None,
            held,
            success: true,
            adopted: 0,
            moving: 0,
            order_state: String::new(),
            reason: String::new(),
            members: Vec::new(),
        };
        self.send(&from, SystemBody::CouncilAppendAck(ack), actions);
    }

    /// The bootstrap controller counts radiants holding configuration 1; a majority of
    /// `bootstrap_expect` commits it, and the controller tells everyone once.
    pub(super) fn on_bootstrap_ack(
        &mut self,
        from: String,
        ack: CouncilAppendAck,
        actions: &mut Actions,
    ) {
        if ack.term > self.record.bootstrap_term {
            self.adopt_bootstrap_term(ack.term);
            self.persist(actions);
            return;
        }
        let Some(controller) = self.controller.as_mut() else { return };
        if !ack.success || ack.term != controller.term || controller.committed.is_some() {
            return;
        }
        controller.held.insert(Holder::Radiant(from), ack.held);
        self.try_commit_bootstrap(actions);
    }

    fn try_commit_bootstrap(&mut self, actions: &mut Actions) {
        let quorum = self.bootstrap_quorum();
        let Some(controller) = self.controller.as_mut() else { return };
        let holding = controller.held.values().filter(|&&held| held >= 1).count();
        if holding < quorum || controller.committed.is_some() {
            return;
        }
        let configuration = controller.latest.clone();
        controller.committed = Some(configuration.clone());
        controller.heartbeat_elapsed = u64::MAX;
        self.heartbeat_bootstrap(actions);
        self.controller = None;
        let cluster = self.record.cluster;
        self.adopt_committed(cluster, configuration, actions);
        self.state = RadiantState::Associated;
    }
}
