//! Live shard migration (DESIGN §8), the heralds' side. The replicated part, which
//! shards an order serves and where each moving shard stands, is the order's shard
//! table (`core/shards.rs`), changed only through the order's log; this file is the
//! volatile work a herald does to move it forward:
//!
//! 1. adopt each configuration the council commits (`MigrationEntry::Adopt`), which
//!    freezes the shards the order loses at that log index;
//! 2. as the losing herald, read a frozen shard in pieces of at most
//!    `replication_max_bytes` (`Action::ReadShardChunk`) and send each to the gaining
//!    order's herald, resending until acknowledged;
//! 3. as the gaining herald, commit each piece through its own log
//!    (`MigrationEntry::Install`) and acknowledge it once applied;
//! 4. as the losing herald, once the gaining order holds the whole shard, commit
//!    `MigrationEntry::Release`, which drops the frozen copy.
//!
//! All of it restarts from the table after a herald change or a crash: the table says
//! what is frozen and where each incoming shard's data stops.

use std::collections::BTreeMap;

use bytes::Bytes;
use radiant_protocol::{
    ClusterId, Command, LogIndex, MigrationEntry, OrderId, ShardChunk, ShardChunkAck, SystemBody,
};

use super::System;
use crate::core::order::Order;
use crate::core::shards::ShardState;
use crate::core::{Action, Actions, Tick};
use radiant_protocol::slots::ShardId;

/// A herald's volatile migration work.
#[derive(Debug, Default)]
pub(super) struct MigrationWork {
    /// The adoption proposed last, and when.
    adopt_proposed: Option<(u64, Tick)>,
    /// Frozen shards being handed over, by shard.
    handovers: BTreeMap<u32, Handover>,
    /// Pieces proposed into this order's log, answered once applied, by shard.
    installs: BTreeMap<u32, PendingInstall>,
}

#[derive(Debug, Default)]
struct Handover {
    /// Where the gaining order wants the next piece to start.
    after: Option<Bytes>,
    /// A read was asked for at this tick and not yet answered.
    reading_since: Option<Tick>,
    /// When the last piece went out.
    sent_at: Option<Tick>,
    /// Pieces sent without an answer since the last acknowledgement.
    unanswered: u32,
    /// When a `Release` was last proposed.
    release_proposed_at: Option<Tick>,
}

#[derive(Debug)]
struct PendingInstall {
    index: LogIndex,
    after: Option<Bytes>,
    reply_to: String,
}

impl System {
    /// Ticks before a herald repeats an unanswered step (a proposal lost to a herald
    /// change, a piece or acknowledgement lost on the network).
    fn migration_retry_ticks(&self) -> u64 {
        self.options.election_timeout_ticks.max(1)
    }

    /// A settled herald's migration work, every tick.
    pub(super) fn tick_migration(&mut self, order: &mut Order, actions: &mut Actions) {
        self.propose_adoption(order);
        let retry = self.migration_retry_ticks();
        let now = self.now;
        let max_bytes = order.options().replication_max_bytes;
        let outgoing: Vec<(u32, u64)> = order
            .shards()
            .states()
            .iter()
            .enumerate()
            .filter_map(|(shard, state)| match state {
                ShardState::Outgoing { number, .. } => Some((shard as u32, *number)),
                _ => None,
            })
            .collect();
        let work = &mut self.migration;
        work.handovers.retain(|shard, _| outgoing.iter().any(|(moving, _)| moving == shard));
        for (shard, number) in outgoing {
            let handover = work.handovers.entry(shard).or_default();
            if let Some(at) = handover.release_proposed_at {
                if now.0.saturating_sub(at.0) >= retry {
                    handover.release_proposed_at = Some(now);
                    order.propose(&Command::Migration(MigrationEntry::Release { shard, number }));
                }
                continue;
            }
            let reading = handover
                .reading_since
                .is_some_and(|since| now.0.saturating_sub(since.0) < retry.saturating_mul(4));
            let due = handover.sent_at.is_none_or(|at| now.0.saturating_sub(at.0) >= retry);
            if reading || !due {
                continue;
            }
            handover.reading_since = Some(now);
            actions.push(Action::ReadShardChunk {
                shard: ShardId(shard),
                number,
                after: handover.after.clone(),
                max_bytes,
            });
        }
    }

    /// Proposes adopting the newest committed configuration, once per retry interval
    /// until the order has adopted it.
    fn propose_adoption(&mut self, order: &mut Order) {
        let Some(configuration) = &self.record.configuration else { return };
        let number = configuration.number;
        if number <= order.shards().adopted() {
            return;
        }
        let retry = self.migration_retry_ticks();
        let recent = self.migration.adopt_proposed.is_some_and(|(proposed, at)| {
            proposed >= number && self.now.0.saturating_sub(at.0) < retry
        });
        if recent {
            return;
        }
        if configuration.shards.len() != order.shards().states().len() {
            tracing::error!(
                configuration = number,
                shards = configuration.shards.len(),
                ours = order.shards().states().len(),
                "migration: the configuration's shard count differs from this radiant's \
                 shard_count; set the same shard_count on every radiant"
            );
            return;
        }
        let entry = MigrationEntry::Adopt { number, shards: configuration.shards.clone() };
        if order.propose(&Command::Migration(entry)).is_some() {
            tracing::info!(configuration = number, "migration: adopting a configuration");
            self.migration.adopt_proposed = Some((number, self.now));
        }
    }

    /// The driver read a piece of a frozen shard: send it to the gaining order.
    pub(crate) fn on_shard_chunk_read(
        &mut self,
        chunk: ShardChunk,
        order: &mut Order,
        actions: &mut Actions,
    ) {
        let ShardState::Outgoing { to, .. } = order.shards().state(chunk.shard).clone() else {
            return;
        };
        let Some(handover) = self.migration.handovers.get_mut(&chunk.shard) else { return };
        if handover.after != chunk.after || !order.is_settled_herald() {
            return;
        }
        handover.reading_since = None;
        handover.sent_at = Some(self.now);
        handover.unanswered += 1;
        // The herald the controller last reported first; after an unanswered piece, every
        // member of the gaining order (only its herald acts on it).
        let all = handover.unanswered > 1;
        let targets = self.order_addresses(to, all);
        let body = SystemBody::ShardChunk(Box::new(chunk));
        for target in targets {
            self.send(&target, body.clone(), actions);
        }
    }

    /// Peer addresses of `order_id`'s herald, or of all its members when `all` or when
    /// its herald is not known.
    fn order_addresses(&self, order_id: OrderId, all: bool) -> Vec<String> {
        let Some(configuration) = &self.record.configuration else { return Vec::new() };
        let address = |member| configuration.radiants.get(member).map(|a| a.peer.clone());
        let herald = self.heralds.get(&order_id).and_then(address);
        match herald {
            Some(herald) if !all => vec![herald],
            _ => configuration
                .orders
                .get(&order_id)
                .into_iter()
                .flatten()
                .filter_map(address)
                .collect(),
        }
    }

    /// A piece of a shard this order gains (as its herald): commit it, or tell the
    /// sender where this order stands.
    pub(super) fn on_shard_chunk(
        &mut self,
        cluster: ClusterId,
        from: String,
        chunk: ShardChunk,
        order: Option<&mut Order>,
        actions: &mut Actions,
    ) {
        let Some(order) = order.filter(|order| order.is_settled_herald()) else { return };
        if cluster != self.record.cluster {
            return;
        }
        let shard = chunk.shard;
        let number = chunk.number;
        if !order.shards().chunk_fits(&chunk) {
            tracing::warn!(%from, shard, "migration: a piece holds keys of another shard; dropped");
            return;
        }
        match order.shards().state(shard).clone() {
            ShardState::Incoming { after, .. } if after == chunk.after => {
                if let Some(pending) = self.migration.installs.get_mut(&shard) {
                    if pending.after == after {
                        pending.reply_to = from;
                        return;
                    }
                }
                let entry = Command::Migration(MigrationEntry::Install(chunk));
                if let Some(index) = order.propose(&entry) {
                    let pending = PendingInstall { index, after, reply_to: from };
                    self.migration.installs.insert(shard, pending);
                }
            }
            ShardState::Incoming { after, .. } => {
                let ack = ShardChunkAck { shard, number, installed: false, after };
                self.send(&from, SystemBody::ShardChunkAck(ack), actions);
            }
            ShardState::Serving => {
                let ack = ShardChunkAck { shard, number, installed: true, after: None };
                self.send(&from, SystemBody::ShardChunkAck(ack), actions);
            }
            // Not adopted yet (or no longer ours): the sender retries.
            ShardState::Absent | ShardState::Outgoing { .. } => {}
        }
    }

    /// Answers the senders of pieces this order has now applied.
    pub(super) fn answer_installs(&mut self, order: &Order, actions: &mut Actions) {
        if self.migration.installs.is_empty() {
            return;
        }
        if !order.is_settled_herald() {
            self.migration.installs.clear();
            return;
        }
        let applied = order.applied_index();
        let done: Vec<u32> = self
            .migration
            .installs
            .iter()
            .filter(|(_, pending)| pending.index <= applied)
            .map(|(shard, _)| *shard)
            .collect();
        for shard in done {
            let Some(pending) = self.migration.installs.remove(&shard) else { continue };
            let ack = match order.shards().state(shard) {
                ShardState::Serving => {
                    ShardChunkAck { shard, number: 0, installed: true, after: None }
                }
                ShardState::Incoming { number, after } => {
                    ShardChunkAck { shard, number: *number, installed: false, after: after.clone() }
                }
                ShardState::Absent | ShardState::Outgoing { .. } => continue,
            };
            self.send(&pending.reply_to, SystemBody::ShardChunkAck(ack), actions);
        }
    }

    /// The gaining order's answer (as the losing herald): send the next piece, or drop
    /// the frozen copy once it holds the whole shard.
    pub(super) fn on_shard_chunk_ack(
        &mut self,
        cluster: ClusterId,
        ack: ShardChunkAck,
        order: Option<&mut Order>,
    ) {
        let Some(order) = order.filter(|order| order.is_settled_herald()) else { return };
        if cluster != self.record.cluster {
            return;
        }
        let ShardState::Outgoing { number, .. } = order.shards().state(ack.shard).clone() else {
            return;
        };
        let Some(handover) = self.migration.handovers.get_mut(&ack.shard) else { return };
        handover.unanswered = 0;
        if ack.installed {
            if handover.release_proposed_at.is_none() {
                handover.release_proposed_at = Some(self.now);
                let release = MigrationEntry::Release { shard: ack.shard, number };
                tracing::info!(shard = ack.shard, number, "migration: shard handed over");
                order.propose(&Command::Migration(release));
            }
            return;
        }
        // Send from where the gaining order stands, now.
        handover.after = ack.after;
        handover.reading_since = None;
        handover.sent_at = None;
    }

    /// Forgets volatile work (no longer herald).
    pub(super) fn forget_migration(&mut self) {
        self.migration = MigrationWork::default();
    }
}

// ===== the controller's side =====

impl System {
    /// Whether every order of the committed configuration has adopted it and has no
    /// shard in flight: only then may shards move again, so that a shard never has two
    /// moves at once and an order adopting its first configuration gains no data.
    pub(super) fn shards_settled(&self) -> bool {
        let Some(controller) = &self.controller else { return false };
        let Some(committed) = &controller.committed else { return false };
        controller.latest.number == committed.number
            && committed.orders.keys().all(|order_id| {
                controller
                    .shard_reports
                    .get(order_id)
                    .is_some_and(|&(adopted, moving)| adopted >= committed.number && moving == 0)
            })
    }

    /// The controller, each tick: once shards are settled, the next automatic step
    /// (new orders get their share, leaving orders hand theirs over and go).
    pub(super) fn plan_shards(&mut self) {
        if !self.shards_settled() {
            return;
        }
        let Some(controller) = self.controller.as_ref() else { return };
        let Some(next) = super::shape::shard_step(&controller.latest, controller.term) else {
            return;
        };
        let moved = super::balance::moved(&controller.latest.shards, &next.shards);
        tracing::info!(
            configuration = next.number,
            moved,
            orders = next.orders.len(),
            "controller: shards rebalance"
        );
        self.propose_configuration(next);
    }
}
