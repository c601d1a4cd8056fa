//! Operators' direct changes (`radiant admin add` / `remove`): carried out by the
//! controller as configuration changes and answered once they commit. Any radiant
//! takes the request and points the client at the controller.

use radiant_protocol::{
    ClientRequest, ClientResponse, Configuration, ErrorResponse, OrderId, OrderStateOp,
    RadiantAddress,
};

use super::{shape, System};
use crate::core::{Action, Actions, ReplyTo};

impl System {
    /// `AddRadiant` or `RemoveRadiant` from an admin client.
    pub fn on_admin(&mut self, reply_to: ReplyTo, request: ClientRequest, actions: &mut Actions) {
        if !self.is_controller() {
            let error = self.controller_hint();
            actions.push(Action::Reply { reply_to, result: Err(error) });
            return;
        }
        let outcome = match request {
            ClientRequest::AddRadiant { peer, client, resp } => self
                .admit(RadiantAddress { peer, client, resp }, actions)
                .ok_or(ErrorResponse::Locked(OrderStateOp::MembershipSet)),
            ClientRequest::RemoveRadiant { member } => self.remove(member),
            ClientRequest::MoveShard { shard, to } => self.move_shard(shard, to),
            ClientRequest::LeaveOrder { order_id } => self.leave(order_id),
            _ => Err(ErrorResponse::BadRequest { reason: "not a system admin request".into() }),
        };
        match outcome {
            Ok(number) => {
                if let Some(controller) = self.controller.as_mut() {
                    controller.pending_admin.push((reply_to, number));
                }
                self.answer_admin(actions);
            }
            Err(error) => actions.push(Action::Reply { reply_to, result: Err(error) }),
        }
    }

    fn remove(&mut self, member: radiant_protocol::MemberId) -> Result<u64, ErrorResponse> {
        let controller = self.settled_controller()?;
        // The last member of an order takes its order with it: the order leaves (its
        // shards move first), and its removal removes the radiant.
        let latest = &controller.latest;
        let alone = latest.order_of(member).filter(|order_id| {
            latest.orders.get(order_id).is_some_and(|members| members.len() == 1)
        });
        if let Some(order_id) = alone {
            return self.leave(order_id);
        }
        let next = shape::without_member(&controller.latest, controller.term, member)
            .map_err(|reason| ErrorResponse::BadRequest { reason })?;
        tracing::info!(%member, configuration = next.number, "controller: removing a radiant");
        Ok(self.propose_configuration(next))
    }

    /// An operator's `Move`: one configuration of its own, once earlier moves are done.
    fn move_shard(&mut self, shard: u32, to: OrderId) -> Result<u64, ErrorResponse> {
        if !self.shards_settled() {
            return Err(ErrorResponse::Locked(OrderStateOp::Replicating));
        }
        let controller = self.controller.as_mut().expect("is_controller");
        let next = shape::with_move(&controller.latest, controller.term, shard, to)
            .map_err(|reason| ErrorResponse::BadRequest { reason })?;
        if next.shards == controller.latest.shards {
            return Ok(controller.latest.number);
        }
        tracing::info!(shard, %to, configuration = next.number, "controller: moving a shard");
        Ok(self.propose_configuration(next))
    }

    /// An operator's `Leave`: the order's shards move away, then it goes.
    fn leave(&mut self, order_id: OrderId) -> Result<u64, ErrorResponse> {
        let controller = self.settled_controller()?;
        let next = shape::with_leaving(&controller.latest, controller.term, order_id)
            .map_err(|reason| ErrorResponse::BadRequest { reason })?;
        tracing::info!(%order_id, configuration = next.number, "controller: an order is leaving");
        Ok(self.propose_configuration(next))
    }

    /// The controller, when no configuration of its is uncommitted (else `Locked`: one
    /// change at a time; the client retries).
    fn settled_controller(&mut self) -> Result<&mut super::Controller, ErrorResponse> {
        let controller = self.controller.as_mut().expect("is_controller");
        let committed_number = controller.committed.as_ref().map_or(0, |c| c.number);
        if controller.latest.number > committed_number {
            return Err(ErrorResponse::Locked(OrderStateOp::MembershipSet));
        }
        Ok(controller)
    }

    /// Makes `next` the controller's newest configuration and sends it at once.
    pub(super) fn propose_configuration(&mut self, next: Configuration) -> u64 {
        let controller = self.controller.as_mut().expect("is_controller");
        let number = next.number;
        controller.latest = next;
        controller.heartbeat_elapsed = u64::MAX;
        number
    }

    /// Answers every admin request whose configuration has committed.
    pub(super) fn answer_admin(&mut self, actions: &mut Actions) {
        let Some(controller) = self.controller.as_mut() else { return };
        let committed = controller.committed.as_ref().map_or(0, |c| c.number);
        controller.pending_admin.retain(|&(reply_to, number)| {
            let done = number <= committed;
            if done {
                actions.push(Action::Reply { reply_to, result: Ok(ClientResponse::Done) });
            }
            !done
        });
    }

    /// A controller stepping down fails what it had not finished. The configuration it
    /// proposed may still commit under the next controller, and an admin request has no
    /// session: a blind retry of a `RemoveRadiant` or `LeaveOrder` that did commit is
    /// refused as if it had never been asked, so the answer is "outcome unknown", not
    /// `Unavailable` (which the client library retries).
    pub(super) fn fail_admin(&mut self, actions: &mut Actions) {
        let Some(controller) = self.controller.as_mut() else { return };
        for (reply_to, number) in controller.pending_admin.drain(..) {
            let reason = format!(
                "the controller stepped down before configuration {number} committed; it may \
                 still commit under the next controller: check `radiant status` (or `radiant \
                 configuration`) and retry only if the change is not there"
            );
            actions.push(Action::Reply {
                reply_to,
                result: Err(ErrorResponse::OutcomeUnknown { reason }),
            });
        }
    }

    /// `NotHerald` naming the controller (the client follows it), or `Unavailable`.
    fn controller_hint(&self) -> ErrorResponse {
        let view = self.controller_view.as_ref();
        let member = view.and_then(|view| view.member);
        let address = member.and_then(|member| {
            let configuration = self.record.configuration.as_ref()?;
            Some(configuration.radiants.get(&member)?.client.clone())
        });
        match (member, address) {
            (Some(member), Some(address)) => {
                ErrorResponse::NotHerald { herald: Some(member), address: Some(address) }
            }
            _ => ErrorResponse::Unavailable {
                reason: "no controller is known yet (the system may be forming or electing \
                         one); retry shortly"
                    .into(),
            },
        }
    }
}
