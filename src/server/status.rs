//! `radiant status`: this radiant's view of itself, its order and the system, as JSON.

use serde_json::{json, Value};

use crate::core::order::Order;
use crate::core::shards::ShardState;
use crate::core::system::System;
use crate::core::Radiant;
use crate::storage::state_machine::StateMachine;

/// The status document: the radiant (state, role, readiness and why not, disk use), its
/// order (state in the seed's spelling, herald, log positions, membership) and the
/// system (configuration, controller, every order with its herald, members and shards,
/// every radiant), and what the reactor counted (`counted`: what the trusted boundary
/// refused as `security`, the memory budget as `memory`).
pub fn status_json(
    radiant: &Radiant,
    machine: &StateMachine,
    disk_bytes: u64,
    counted: Value,
) -> String {
    let order = radiant.order();
    let system = radiant.system();
    let role = match (order, system) {
        (Some(_), Some(system)) if system.is_controller() => "controller".to_string(),
        (Some(order), _) => format!("{:?}", order.role()).to_lowercase(),
        (None, Some(system)) if system.record().is_associated() => "spare".to_string(),
        (None, _) => "none".to_string(),
    };
    let state = system.map_or("ASSOCIATED", |system| system.status(order).state.as_str());
    let readiness = radiant.readiness();
    let mut document = json!({
        "member": radiant.member_id().map(|member| member.get()),
        "state": state,
        "role": role,
        "ready": readiness.is_ok(),
        "not_ready": readiness.err(),
        "keys": machine.map().len(),
        "disk_bytes": disk_bytes,
    });
    merge(&mut document, counted);
    if let Some(order) = order {
        merge(&mut document, order_json(order));
    }
    if let Some(system) = system {
        document["system"] = system_json(system, order);
    }
    document.to_string()
}

/// One line for systemd's `STATUS=` (what `systemctl status` shows): whether the radiant
/// is ready and, if not, why; a raised disk-space alarm; else its role, order, herald
/// and configuration.
pub fn status_line(radiant: &Radiant, disk_alarm: Option<&str>) -> String {
    if let Err(reason) = radiant.readiness() {
        return reason;
    }
    if let Some(alarm) = disk_alarm {
        return alarm.to_string();
    }
    let member = radiant.member_id().map_or(0, |member| member.get());
    let configuration = radiant.system().map_or(0, |system| system.record().committed);
    match radiant.order() {
        Some(order) => {
            let role = format!("{:?}", order.role()).to_lowercase();
            let herald = order.herald().map_or("none".to_string(), |h| h.get().to_string());
            let group = order.group().get();
            format!(
                "ready: member {member}, {role} of order {group} (herald {herald}), \
                 configuration {configuration}"
            )
        }
        None => format!("ready: member {member}, configuration {configuration}"),
    }
}

fn merge(document: &mut Value, more: Value) {
    if let (Some(document), Value::Object(more)) = (document.as_object_mut(), more) {
        document.extend(more);
    }
}

fn order_json(order: &Order) -> Value {
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
        "group": order.group().get(),
        "order_state": order.state().to_string(),
        "term": order.term(),
        "herald": order.herald().map(|herald| herald.get()),
        "last_index": order.last_index(),
        "commit_index": order.commit_index(),
        "applied_index": order.applied_index(),
        "durable_index": order.durable_index(),
        "snapshot_index": order.snapshot_index(),
        "members": members,
        "adopted": order.shards().adopted(),
        "moves": moves_json(order),
    })
}

/// This order's shards in flight: arriving (with the configuration that gave them) or
/// frozen until the gaining order holds them.
fn moves_json(order: &Order) -> Vec<Value> {
    order
        .shards()
        .states()
        .iter()
        .enumerate()
        .filter_map(|(shard, state)| match state {
            ShardState::Incoming { number, .. } => {
                Some(json!({ "shard": shard, "direction": "in", "configuration": number }))
            }
            ShardState::Outgoing { number, to } => Some(json!({
                "shard": shard,
                "direction": "out",
                "configuration": number,
                "to": to.get(),
            })),
            ShardState::Absent | ShardState::Serving => None,
        })
        .collect()
}

fn system_json(system: &System, order: Option<&Order>) -> Value {
    let status = system.status(order);
    let controller = status.controller.map(|view| {
        json!({
            "term": view.term,
            "group": view.group.map(|group| group.get()),
            "member": view.member.map(|member| member.get()),
            "address": view.address,
        })
    });
    let configuration = status.configuration;
    let orders: Vec<Value> = configuration
        .map(|configuration| {
            configuration
                .orders
                .iter()
                .map(|(group, members)| {
                    let herald = status.heralds.get(group).map(|member| member.get());
                    let mine = order.filter(|order| order.group() == *group);
                    json!({
                        "group": group.get(),
                        "herald": herald.or_else(|| mine.and_then(Order::herald).map(|m| m.get())),
                        "members": members.iter().map(|member| member.get()).collect::<Vec<_>>(),
                        "shards": configuration.shard_count_of(*group),
                        "state": mine.map(|order| order.state().to_string()),
                        "leaving": configuration.leaving.contains(group),
                        "moving": system.shard_report(*group).map(|(_, moving)| moving),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let radiants: Vec<Value> = configuration
        .map(|configuration| {
            configuration
                .radiants
                .iter()
                .map(|(member, address)| {
                    json!({
                        "id": member.get(),
                        "peer": address.peer,
                        "client": address.client,
                        "resp": (!address.resp.is_empty()).then_some(&address.resp),
                        "order": configuration.order_of(*member).map(|group| group.get()),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "state": status.state.as_str(),
        "error": status.error,
        "cluster": status.cluster.is_set().then(|| status.cluster.to_string()),
        "configuration": configuration.map_or(0, |configuration| configuration.number),
        "accepted": status.accepted.map_or(0, |accepted| accepted.number),
        "is_controller": status.is_controller,
        "controller": controller,
        "orders": orders,
        "spares": configuration
            .map(|c| c.spares.iter().map(|member| member.get()).collect::<Vec<_>>())
            .unwrap_or_default(),
        "radiants": radiants,
        "shard_count": configuration.map_or(0, |configuration| configuration.shards.len()),
        "shard_owners": configuration
            .map(|c| c.shards.iter().map(|group| group.get()).collect::<Vec<_>>())
            .unwrap_or_default(),
        "known_radiants": status.known,
        "bootstrap_expect": status.bootstrap_expect,
    })
}
