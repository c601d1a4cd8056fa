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
        // An order's members change only through its herald's log. An order that has not
        // yet reported a herald this council term may never have elected one: its
        // replicas still count the voters they started with, and taking one away
        // before they can commit that change would leave the rest short of a majority
        // for good.
        if let Some(order_id) = latest.order_of(member) {
            if !controller.heralds.contains_key(&order_id) {
                return Err(ErrorResponse::Unavailable {
                    reason: format!(
                        "radiant {member} belongs to order {order_id}, which has not reported \
                         a herald to the controller yet (a new order is still electing its \
                         first); its members change only through its herald: retry shortly, \
                         or, if the order lost its majority, see `radiant admin \
                         recover-order`"
                    ),
                });
            }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use radiant_protocol::{ClusterId, MemberId};

    use super::*;
    use crate::core::system::{Controller, SystemOptions, SystemRecord};
    use crate::core::ConnectionId;

    fn address(port: u16) -> RadiantAddress {
        RadiantAddress {
            peer: format!("10.0.0.1:{port}"),
            client: format!("10.0.0.1:{}", port + 1),
            resp: String::new(),
        }
    }

    /// A controller (member 1, herald of order 1 of three) whose configuration has just
    /// formed order 2 out of two joiners; order 2 has reported no herald.
    fn controller_with_a_new_order() -> System {
        let founders: BTreeMap<String, RadiantAddress> =
            [7400u16, 7410, 7420].map(|port| (address(port).peer, address(port))).into();
        let first = shape::initial_configuration(1, &founders, 3, 4);
        let (second, _) = shape::with_joiner(&first, 1, address(7430), 2);
        let (third, _) = shape::with_joiner(&second, 1, address(7440), 2);
        assert_eq!(third.orders.len(), 2, "the two joiners form order 2");
        let order_id = OrderId::new(1).expect("nonzero");
        let record = SystemRecord {
            cluster: ClusterId(9),
            member: MemberId::new(1),
            committed: third.number,
            configuration: Some(third.clone()),
            accepted: Some(third.clone()),
            council_term: 1,
            order_id: Some(order_id),
            ..SystemRecord::default()
        };
        let options = SystemOptions {
            bootstrap_expect: 3,
            order_size: 2,
            ..crate::core::system::tests::options(7400)
        };
        let mut system = System::new(options, record, 1);
        system.controller = Some(Controller {
            term: 1,
            latest: third.clone(),
            committed: Some(third),
            held: BTreeMap::new(),
            heralds: [(order_id, MemberId::new(1).expect("nonzero"))].into(),
            pending_joins: BTreeMap::new(),
            pending_admin: Vec::new(),
            shard_reports: BTreeMap::new(),
            order_reports: BTreeMap::new(),
            herald_addresses: BTreeMap::new(),
            heartbeat_elapsed: 0,
        });
        system
    }

    fn remove(system: &mut System, member: u64) -> Vec<Action> {
        let mut actions = Actions::new();
        let reply_to = ReplyTo { connection: ConnectionId(1), correlation_id: member };
        let member = MemberId::new(member).expect("nonzero");
        system.on_admin(reply_to, ClientRequest::RemoveRadiant { member }, &mut actions);
        actions.drain().collect()
    }

    /// Found by `radiant sim --sharded --remove-radiants --seed 5776`: a member of an
    /// order that had not elected its first herald was removed, and the other member,
    /// still counting it as a voter, could never elect one.
    #[test]
    fn a_member_of_an_order_without_a_herald_is_not_removed() {
        let mut system = controller_with_a_new_order();
        let before = system.controller.as_ref().map(|c| c.latest.number);
        let actions = remove(&mut system, 4);
        let refused = actions.iter().any(|action| match action {
            Action::Reply { result: Err(ErrorResponse::Unavailable { reason }), .. } => {
                reason.contains("order 2") && reason.contains("herald")
            }
            _ => false,
        });
        assert!(refused, "removing a member of herald-less order 2 is refused: {actions:?}");
        assert_eq!(system.controller.as_ref().map(|c| c.latest.number), before);

        // Once order 2 reports a herald, the same removal is proposed.
        let order_two = OrderId::new(2).expect("nonzero");
        if let Some(controller) = system.controller.as_mut() {
            controller.heralds.insert(order_two, MemberId::new(5).expect("nonzero"));
        }
        let actions = remove(&mut system, 4);
        assert!(actions.is_empty(), "answered once the change commits: {actions:?}");
        let latest = system.controller.as_ref().map(|c| &c.latest).expect("controller");
        assert_eq!(latest.orders.get(&order_two).map(|members| members.len()), Some(1));
    }
}
