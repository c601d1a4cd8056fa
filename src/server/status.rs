//! `radiant status`: this radiant's view of itself and its order, as JSON.

use serde_json::json;

use crate::core::Radiant;
use crate::storage::state_machine::StateMachine;

/// The status document: member, role, order state (seed spelling), herald, log
/// positions, membership, and key count.
pub fn status_json(radiant: &Radiant, machine: &StateMachine) -> String {
    let order = radiant.order();
    let membership = order.membership();
    let members: Vec<_> = membership
        .addresses
        .iter()
        .map(|(member, address)| {
            let role = if membership.voters.contains(member) { "voter" } else { "learner" };
            json!({ "id": member.get(), "address": address, "role": role })
        })
        .collect();
    json!({
        "member": radiant.member_id().get(),
        "role": format!("{:?}", order.role()).to_lowercase(),
        "order_state": order.state().to_string(),
        "term": order.term(),
        "herald": order.herald().map(|herald| herald.get()),
        "last_index": order.last_index(),
        "commit_index": order.commit_index(),
        "applied_index": order.applied_index(),
        "durable_index": order.durable_index(),
        "snapshot_index": order.snapshot_index(),
        "members": members,
        "keys": machine.map().len(),
    })
    .to_string()
}
