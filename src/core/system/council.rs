//! The council (DESIGN §8): Raft one level up, whose members are orders. An order's
//! council term, vote and accepted configurations are entries of its own log
//! (`Command::Council`), so they survive herald changes; its herald speaks for it, and
//! answers only after the entry a message caused has committed.

use std::collections::{BTreeMap, BTreeSet};

use radiant_protocol::{
    ClusterId, Command, Configuration, CouncilAppend, CouncilAppendAck, CouncilEntry,
    CouncilRequestVote, CouncilVote, MembershipChange, OrderId, SystemBody, Term,
};

use super::{newer, Controller, Holder, System};
use crate::core::order::membership::member_address;
use crate::core::order::Order;
use crate::core::{Actions, Tick};

impl System {
    /// Associated radiants: heralds stand for controller when none is heard, the
    /// controller heartbeats, and heralds carry out their order's target membership.
    pub(super) fn tick_council(&mut self, order: Option<&mut Order>, actions: &mut Actions) {
        let Some(order) = order else { return };
        // An order dissolved by `leave`, or a radiant removed, takes part until the
        // configuration that removes it commits (as a Raft server not in the new
        // configuration may still lead until it commits): if the controller falls
        // before that, the order holding the change may be the only one that can finish
        // it. Then it takes no part (its replicas keep running), and a removed herald of
        // an order that stays hands over.
        let listed = self.record.configuration.as_ref().is_some_and(|configuration| {
            configuration.orders.contains_key(&order.order_id())
                && self.record.member.is_some_and(|me| configuration.radiants.contains_key(&me))
        });
        if !order.is_settled_herald() || self.record.order_id != Some(order.order_id()) || !listed {
            self.fail_admin(actions);
            if self.controller.take().is_some() {
                tracing::info!("controller: no longer herald of its order; stepping down");
            }
            self.candidacy = None;
            self.proposal_pending = false;
            self.forget_migration();
            // A herald removed from an order that stays still hands the order over.
            if order.is_settled_herald() && self.record.order_id == Some(order.order_id()) {
                self.reconcile_membership(order, actions);
            }
            return;
        }
        if self.controller.is_some() {
            self.plan_shards();
            self.heartbeat_council(actions);
        } else if self.now >= self.council_deadline && !self.proposal_pending {
            let term = self.newest_council_term_seen() + 1;
            tracing::info!(term, "council: no controller heard; standing for controller");
            self.propose(order, CouncilEntry::Vote { term, candidate: Some(order.order_id()) });
            self.standing = Some(term);
            self.council_deadline = Tick(self.council_timeout());
        } else if self.candidacy.is_some()
            && self.now.0.is_multiple_of(self.options.heartbeat_interval_ticks.max(1))
        {
            self.request_votes(order.order_id(), actions);
        }
        self.reconcile_membership(order, actions);
        self.tick_migration(order, actions);
    }

    /// The newest council term this radiant knows of: its order's, the stamps of the
    /// configurations it holds and the controller it heard. A candidate stands above all
    /// of them: a member whose record took its term from a configuration's stamp (not
    /// from its order's log) may lead an order that saw a later controller, and must not
    /// stand in that controller's term.
    fn newest_council_term_seen(&self) -> Term {
        let held = [&self.record.configuration, &self.record.accepted]
            .into_iter()
            .flatten()
            .map(|configuration| configuration.council_term);
        let heard = self.controller_view.as_ref().map(|view| view.term);
        held.chain(heard).fold(self.record.council_term, Term::max)
    }

    fn propose(&mut self, order: &mut Order, entry: CouncilEntry) {
        if order.propose(&Command::Council(entry)).is_some() {
            self.proposal_pending = true;
        }
    }

    /// Moves the order one step toward the committed configuration's target members.
    fn reconcile_membership(&mut self, order: &mut Order, actions: &mut Actions) {
        let Some(configuration) = &self.record.configuration else { return };
        let Some(target) = configuration.orders.get(&order.order_id()) else { return };
        if order.membership_change_pending() {
            return;
        }
        // A learner the configuration no longer lists (one added before an operator
        // removed a radiant that was gone for good) would block every later step.
        let stale_learner =
            order.membership().learners.iter().copied().find(|member| !target.contains(member));
        if let Some(member) = stale_learner {
            tracing::info!(%member, "order: dropping a learner the configuration no longer lists");
            order.propose(&Command::Membership(MembershipChange::Remove { member }));
            return;
        }
        if !order.membership().learners.is_empty() {
            return;
        }
        if !target.contains(&order.me()) {
            // Removed from its own order: hand the herald role over; the next herald
            // removes this radiant.
            match order.hand_over(actions) {
                Ok(to) => tracing::info!(%to, "order: removed by the controller; handing over"),
                Err(reason) => tracing::warn!(%reason, "order: removed, but cannot hand over"),
            }
            return;
        }
        let current = order.membership();
        let missing = target.iter().find(|member| !current.contains(**member));
        let change = if let Some(&member) = missing {
            let Some(address) = configuration.radiants.get(&member) else { return };
            let address = member_address(&address.peer, &address.client);
            MembershipChange::AddLearner { member, address }
        } else if let Some(&member) =
            current.voters.iter().find(|member| !target.contains(member) && **member != order.me())
        {
            MembershipChange::Remove { member }
        } else {
            return;
        };
        tracing::info!(?change, "order: carrying out the controller's membership");
        order.propose(&Command::Membership(change));
    }

    /// Every member applies its order's committed council entries; the herald then
    /// answers the messages that caused them.
    pub(super) fn apply_council_entries(&mut self, order: &mut Order, actions: &mut Actions) {
        let entries = order.drain_council_applied();
        if entries.is_empty() {
            return;
        }
        self.proposal_pending = false;
        let herald = order.is_settled_herald();
        for (_, entry) in entries {
            match entry {
                CouncilEntry::Vote { term, candidate } => {
                    self.apply_vote(term, candidate, herald, order.order_id(), actions)
                }
                CouncilEntry::Accept(configuration) => {
                    let newer_than_held = self
                        .record
                        .accepted
                        .as_ref()
                        .is_none_or(|held| newer(&configuration, held));
                    if newer_than_held {
                        self.learn_addresses(&configuration);
                        self.record.accepted = Some(configuration);
                    }
                }
                CouncilEntry::Commit { number } => {
                    let held = self.record.accepted.clone().filter(|held| held.number == number);
                    if let Some(configuration) = held {
                        let cluster = self.record.cluster;
                        self.adopt_committed(cluster, configuration, actions);
                    }
                }
            }
        }
        self.persist(actions);
        if herald {
            if let Some(to) = self.ack_to.take() {
                self.acknowledge(&to, order, true, actions);
            }
        }
    }

    fn apply_vote(
        &mut self,
        term: u64,
        candidate: Option<OrderId>,
        herald: bool,
        mine: OrderId,
        actions: &mut Actions,
    ) {
        if term > self.record.council_term {
            self.record.council_term = term;
            self.record.council_vote = None;
            if self.controller.as_ref().is_some_and(|c| c.term < term) {
                self.fail_admin(actions);
                self.controller = None;
            }
        }
        if term != self.record.council_term || candidate.is_none() {
            return;
        }
        if self.record.council_vote.is_none() {
            self.record.council_vote = candidate;
        }
        if !herald || self.record.council_vote != candidate {
            return;
        }
        if candidate == Some(mine) {
            // Only the radiant that stood campaigns: another herald of this order (after
            // a failover or a restart that re-applies the entry) must not become a second
            // controller in the same council term.
            if self.standing.take() == Some(term) {
                self.start_candidacy(term, mine, actions);
            }
        } else if let Some((order_id, to)) = self.vote_replies.remove(&term) {
            if Some(order_id) == candidate {
                let vote = CouncilVote { term, order_id: Some(mine), granted: true };
                self.send(&to, SystemBody::CouncilVote(vote), actions);
            }
        }
    }

    fn start_candidacy(&mut self, term: u64, mine: OrderId, actions: &mut Actions) {
        if self.record.accepted.is_none() {
            return;
        }
        self.candidacy = Some((term, BTreeSet::from([mine])));
        self.request_votes(mine, actions);
        self.count_council_votes(actions);
    }

    /// Asks every order that has not voted yet; repeated while the candidacy lasts,
    /// since a herald busy committing an earlier council entry drops the request.
    fn request_votes(&mut self, mine: OrderId, actions: &mut Actions) {
        let (Some(held), Some((term, votes))) = (&self.record.accepted, &self.candidacy) else {
            return;
        };
        let request = CouncilRequestVote {
            term: *term,
            candidate_order: Some(mine),
            candidate_member: self.record.member,
            last_number: held.number,
            last_term: held.council_term,
        };
        // Every radiant of the voting orders, as the held and the committed configuration
        // list them: an order's herald may be a member the held configuration removes
        // (it stays herald until that configuration commits and it hands over).
        let mut targets = BTreeSet::new();
        for configuration in [Some(held), self.record.configuration.as_ref()].into_iter().flatten()
        {
            let members = configuration
                .orders
                .iter()
                .filter(|(order_id, _)| {
                    held.orders.contains_key(order_id) && !votes.contains(order_id)
                })
                .flat_map(|(_, members)| members.iter());
            targets.extend(members.filter_map(|member| {
                configuration.radiants.get(member).map(|address| address.peer.clone())
            }));
        }
        for to in targets {
            self.send(&to, SystemBody::CouncilRequestVote(request.clone()), actions);
        }
    }

    pub(super) fn on_council_request_vote(
        &mut self,
        from: String,
        request: CouncilRequestVote,
        order: Option<&mut Order>,
        actions: &mut Actions,
    ) {
        let Some(order) = order.filter(|order| order.is_settled_herald()) else { return };
        let Some(candidate) = request.candidate_order else { return };
        // A dissolved order that never heard it was removed must not disturb the council
        // with ever higher terms (Raft's removed-server problem).
        let member_order = self
            .record
            .configuration
            .as_ref()
            .is_none_or(|configuration| configuration.orders.contains_key(&candidate));
        if !member_order {
            return;
        }
        // A controller heard within the shortest council timeout is alive: a candidate
        // of a later term is a radiant cut off from it (or one the system removed), and
        // must not depose it (Raft's leader stickiness).
        let base = self.options.election_timeout_ticks.max(1) * 4;
        let controller_alive = self.controller.is_some()
            || self.controller_view.as_ref().is_some_and(|view| {
                view.term >= self.record.council_term && self.now.0 < view.heard_at.0 + base
            });
        if controller_alive && request.term > self.record.council_term {
            return;
        }
        let term = self.record.council_term;
        let mine = Some(order.order_id());
        let reply = |granted| CouncilVote { term, order_id: mine, granted };
        if request.term < term || (request.term == term && self.record.council_vote.is_some()) {
            let granted = request.term == term && self.record.council_vote == Some(candidate);
            self.send(&from, SystemBody::CouncilVote(reply(granted)), actions);
            return;
        }
        if self.proposal_pending {
            return; // The candidate asks again.
        }
        let held = self.record.accepted.as_ref().map_or((0, 0), |c| (c.number, c.council_term));
        let up_to_date = (request.last_number, request.last_term) >= held;
        if !up_to_date && request.term == term {
            // Already in this term: no need to write it again, just say no.
            self.send(&from, SystemBody::CouncilVote(reply(false)), actions);
            return;
        }
        let vote = up_to_date.then_some(candidate);
        if up_to_date {
            self.vote_replies.insert(request.term, (candidate, from));
        }
        self.propose(order, CouncilEntry::Vote { term: request.term, candidate: vote });
    }

    pub(super) fn on_council_vote(
        &mut self,
        vote: CouncilVote,
        order: Option<&mut Order>,
        actions: &mut Actions,
    ) {
        if vote.term > self.record.council_term {
            if let Some(order) = order {
                if !self.proposal_pending {
                    self.propose(order, CouncilEntry::Vote { term: vote.term, candidate: None });
                }
            }
            self.candidacy = None;
            return;
        }
        let Some((term, votes)) = self.candidacy.as_mut() else { return };
        if vote.term != *term || !vote.granted {
            return;
        }
        if let Some(order_id) = vote.order_id {
            votes.insert(order_id);
        }
        self.count_council_votes(actions);
    }

    fn count_council_votes(&mut self, actions: &mut Actions) {
        let Some((term, votes)) = &self.candidacy else { return };
        let Some(held) = self.record.accepted.clone() else { return };
        let voters = voting_orders(&held, self.record.configuration.as_ref());
        let granted = votes.iter().filter(|order_id| voters.contains(order_id)).count();
        if granted <= voters.len() / 2 {
            return;
        }
        let term = *term;
        self.candidacy = None;
        let committed =
            self.record.configuration.clone().filter(|c| c.number == self.record.committed);
        let mut latest = held;
        if committed.as_ref().is_none_or(|c| c.number < latest.number) {
            // An uncommitted configuration from an earlier term is re-stamped with this
            // term, as a new Raft leader commits its predecessors' entries through one of
            // its own.
            latest.council_term = term;
        }
        tracing::info!(term, configuration = latest.number, "council: elected controller");
        self.controller = Some(Controller {
            term,
            latest,
            committed,
            held: Default::default(),
            heralds: Default::default(),
            pending_joins: Default::default(),
            pending_admin: Vec::new(),
            shard_reports: BTreeMap::new(),
            order_reports: BTreeMap::new(),
            herald_addresses: BTreeMap::new(),
            heartbeat_elapsed: u64::MAX,
        });
        self.heartbeat_council(actions);
    }

    /// The controller's heartbeat to every radiant of its newest configuration.
    fn heartbeat_council(&mut self, actions: &mut Actions) {
        let interval = self.options.heartbeat_interval_ticks;
        let order_id = self.record.order_id;
        let member = self.record.member;
        let Some(controller) = self.controller.as_mut() else { return };
        if !controller.heartbeat_due(interval) {
            return;
        }
        if let (Some(order_id), Some(member)) = (order_id, member) {
            controller.heralds.insert(order_id, member);
        }
        let append = CouncilAppend {
            term: controller.term,
            controller_order: order_id,
            controller_member: member,
            committed: controller.committed.as_ref().map_or(0, |c| c.number),
            configuration: Some(controller.latest.clone()),
            committed_configuration: controller
                .committed
                .clone()
                .filter(|committed| committed.number < controller.latest.number),
            heralds: controller.heralds.iter().map(|(&g, &m)| (g, m)).collect(),
        };
        // To itself too: its own order accepts the configuration like any other. And to
        // the radiants of the committed configuration the newest drops: one may still be
        // its order's herald, whose order must accept the change for it to commit.
        let mut peers: BTreeSet<String> = [Some(&controller.latest), controller.committed.as_ref()]
            .into_iter()
            .flatten()
            .flat_map(|configuration| configuration.radiants.values())
            .map(|address| address.peer.clone())
            .collect();
        peers.extend(
            controller
                .herald_addresses
                .iter()
                .filter(|(order_id, _)| controller.latest.orders.contains_key(order_id))
                .map(|(_, address)| address.clone()),
        );
        let peers: Vec<String> = peers.into_iter().collect();
        self.send_to_all(&peers, &append, actions);
    }

    pub(super) fn on_council_append(
        &mut self,
        cluster: ClusterId,
        from: String,
        append: CouncilAppend,
        order: Option<&mut Order>,
        actions: &mut Actions,
    ) {
        let current = self.controller_view.as_ref().map_or(0, |view| view.term);
        if append.term >= current.max(self.record.council_term) {
            self.controller_view = Some(super::ControllerView {
                term: append.term,
                order_id: append.controller_order,
                member: append.controller_member,
                address: from.clone(),
                heard_at: self.now,
            });
            self.heralds = append.heralds.iter().copied().collect();
            self.council_deadline = Tick(self.council_timeout());
            // A controller of this term exists: a candidacy of the same term or earlier is
            // over (else, counting votes by configurations it accepts from that very
            // controller, it could win the term a second time with a new electorate).
            if self.candidacy.as_ref().is_some_and(|(term, _)| *term <= append.term) {
                self.candidacy = None;
            }
            // Every radiant, herald or not, spare or member, acts on what is committed.
            let committed = [&append.configuration, &append.committed_configuration]
                .into_iter()
                .flatten()
                .find(|configuration| configuration.number == append.committed);
            if let Some(configuration) = committed.filter(|_| cluster.is_set()) {
                self.adopt_committed(cluster, configuration.clone(), actions);
            }
        }
        let Some(order) = order.filter(|order| order.is_settled_herald()) else { return };
        if append.term < self.record.council_term {
            self.acknowledge(&from, order, false, actions);
            return;
        }
        if self.proposal_pending {
            self.ack_to = Some(from);
            return;
        }
        let mut entries = Vec::new();
        if append.term > self.record.council_term {
            entries.push(CouncilEntry::Vote { term: append.term, candidate: None });
        }
        let held = self.record.accepted.clone();
        let mut holds = held.as_ref().map_or(0, |c| c.number);
        if let Some(configuration) = append.configuration {
            if held.as_ref().is_none_or(|held| newer(&configuration, held))
                && configuration.check().is_ok()
            {
                holds = configuration.number;
                entries.push(CouncilEntry::Accept(configuration));
            }
        }
        if append.committed > self.record.committed && holds >= append.committed {
            entries.push(CouncilEntry::Commit { number: append.committed.min(holds) });
        }
        if entries.is_empty() {
            self.acknowledge(&from, order, true, actions);
            return;
        }
        for entry in entries {
            self.propose(order, entry);
        }
        self.ack_to = Some(from);
    }

    fn acknowledge(&mut self, to: &str, order: &Order, success: bool, actions: &mut Actions) {
        let health = order.health();
        let ack = CouncilAppendAck {
            term: self.record.council_term,
            order_id: Some(order.order_id()),
            member: Some(order.me()),
            held: self.record.accepted.as_ref().map_or(0, |c| c.number),
            success,
            adopted: order.shards().adopted(),
            moving: order.shards().moving(),
            order_state: health.0.to_string(),
            reason: health.1.unwrap_or_default(),
            members: order.member_quiet_ticks(),
        };
        self.send(to, SystemBody::CouncilAppendAck(ack), actions);
    }

    pub(super) fn on_append_ack(
        &mut self,
        from: String,
        ack: CouncilAppendAck,
        actions: &mut Actions,
    ) {
        let Some(order_id) = ack.order_id else {
            return self.on_bootstrap_ack(from, ack, actions);
        };
        let Some(controller) = self.controller.as_mut() else { return };
        if ack.term > controller.term {
            tracing::info!(
                term = ack.term,
                "controller: a later council term exists; stepping down"
            );
            self.fail_admin(actions);
            self.controller = None;
            return;
        }
        if !ack.success || ack.term != controller.term {
            return;
        }
        if let Some(member) = ack.member {
            controller.heralds.insert(order_id, member);
        }
        controller.held.insert(Holder::Order(order_id), ack.held);
        controller.shard_reports.insert(order_id, (ack.adopted, ack.moving));
        if let Some(herald) = ack.member {
            let report = super::OrderReport {
                heard_at: self.now,
                herald,
                state: ack.order_state,
                reason: ack.reason,
                members: ack.members,
            };
            controller.order_reports.insert(order_id, report);
        }
        controller.herald_addresses.insert(order_id, from);
        let latest = &controller.latest;
        let voters = voting_orders(latest, controller.committed.as_ref());
        let holding = voters
            .iter()
            .filter(|order_id| {
                controller.held.get(&Holder::Order(**order_id)).is_some_and(|&n| n >= latest.number)
            })
            .count();
        let committed_number = controller.committed.as_ref().map_or(0, |c| c.number);
        if latest.number > committed_number && holding > voters.len() / 2 {
            tracing::info!(configuration = latest.number, "controller: configuration committed");
            controller.committed = Some(latest.clone());
            controller.heartbeat_elapsed = u64::MAX;
            let dissolved =
                self.record.order_id.is_some_and(|mine| !latest.orders.contains_key(&mine));
            let latest = latest.clone();
            self.answer_joins(actions);
            self.answer_admin(actions);
            if dissolved {
                // Its own order left: it takes no more part (heartbeats go only to the
                // radiants of the configuration, so no one else would tell it).
                tracing::info!("controller: its own order left the system; stepping down");
                self.adopt_committed(self.record.cluster, latest, actions);
                self.controller = None;
            }
        }
    }
}

/// The orders whose majority elects a controller holding `latest`, and commits `latest`:
/// its orders, less any it creates over the committed configuration (a new order has no
/// replica, so no vote, until the configuration that creates it commits). Configurations
/// add or remove one order at a time, so majorities of consecutive ones overlap.
fn voting_orders(latest: &Configuration, committed: Option<&Configuration>) -> BTreeSet<OrderId> {
    latest
        .orders
        .keys()
        .copied()
        .filter(|order_id| {
            committed.is_none_or(|committed| {
                committed.number >= latest.number || committed.orders.contains_key(order_id)
            })
        })
        .collect()
}
