//! `radiant status`: this radiant's view of itself, its order and the system, as JSON.

use std::collections::BTreeMap;

use radiant_protocol::{MemberId, OrderId};
use serde_json::{json, Value};

use crate::core::order::{Order, OrderState};
use crate::core::shards::ShardState;
use crate::core::system::{System, SystemStatus};
use crate::core::Radiant;
use crate::storage::state_machine::StateMachine;

/// The status document: the radiant (state, role, readiness and why not, disk use), its
/// order (state in the seed's spelling, herald, log positions, membership) and the
/// system (configuration, controller, every order with its herald, members and shards,
/// every radiant, with each order's state and reason and each radiant's liveness as far
/// as this radiant can tell), what the reactor counted (`counted`: what the trusted
/// boundary refused as `security`, the memory budget as `memory`, the disk alarm), and a
/// `summary` line.
pub fn status_json(
    radiant: &Radiant,
    machine: &StateMachine,
    (disk_bytes, tick_ms): (u64, u64),
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
        "shard_count": machine.shard_count(),
        "disk_bytes": disk_bytes,
    });
    merge(&mut document, counted);
    if let Some(order) = order {
        merge(&mut document, order_json(order, tick_ms));
    }
    if let Some(system) = system {
        document["system"] = system_json(system, order, tick_ms);
    }
    document["summary"] = Value::String(summary(&document));
    document.to_string()
}

/// One line that says whether the system is healthy as this status document shows it and,
/// if not, what is wrong and what to do. `radiant status` recomputes it after merging in
/// the controller's view of the other orders.
pub fn summary(document: &Value) -> String {
    let mut problems = Vec::new();
    if document["ready"] != true {
        let reason = document["not_ready"].as_str().unwrap_or("no reason given");
        problems.push(format!("this radiant is not ready ({reason})"));
    }
    if let Some(alarm) = document["disk_alarm"].as_str() {
        problems.push(alarm.to_string());
    }
    let system = &document["system"];
    if let Some(error) = system["error"].as_str() {
        problems.push(format!("system error: {error}"));
    }
    let configured = system["configuration"].as_u64().unwrap_or(0) > 0;
    if configured && !system["controller"].is_object() {
        problems.push(
            "no controller heard: the heralds elect one within a few seconds; if this \
             lasts, most orders have no herald (check each order's radiants)"
                .to_string(),
        );
    }
    let down_after = system["down_after_ms"].as_u64().unwrap_or(0);
    for radiant in system["radiants"].as_array().into_iter().flatten() {
        if radiant["down"] == true {
            let id = &radiant["id"];
            problems.push(format!(
                "radiant {id} (order {}) is DOWN, not heard for {} ms (DOWN after {down_after} \
                 ms): restart it, or replace it (`radiant admin remove {id}`, then add a \
                 radiant)",
                radiant["order"], radiant["last_heard_ms"]
            ));
        }
    }
    for order in system["orders"].as_array().into_iter().flatten() {
        let state = order["state"].as_str().unwrap_or("-");
        if state != "ACTIVE" && state != "-" {
            let reason = order["reason"].as_str().unwrap_or("no reason given");
            problems.push(format!("order {} is {state}: {reason}", order["order"]));
        }
    }
    if !system.is_object() {
        return static_order_summary(document, problems);
    }
    if problems.is_empty() {
        let orders = system["orders"].as_array().map_or(0, Vec::len);
        let radiants = system["radiants"].as_array().map_or(0, Vec::len);
        let configuration = &system["configuration"];
        return format!(
            "HEALTHY: {radiants} radiant(s) in {orders} order(s), every one heard, \
             configuration {configuration}"
        );
    }
    format!("DEGRADED: {}", problems.join("; "))
}

/// The summary of a static order (no system): its members' liveness as its herald sees
/// it, and its state.
fn static_order_summary(document: &Value, mut problems: Vec<String>) -> String {
    for member in document["members"].as_array().into_iter().flatten() {
        if member["down"] == true {
            problems.push(format!(
                "member {} is DOWN, not heard for {} ms: restart it, or replace it (`radiant \
                 admin remove-member {}`, then add a member)",
                member["id"], member["last_heard_ms"], member["id"]
            ));
        }
    }
    let state = document["order_state"].as_str().unwrap_or("-");
    if state != "ACTIVE" && problems.is_empty() {
        let reason = document["order_reason"].as_str().unwrap_or("no reason given");
        problems.push(format!("the order is {state}: {reason}"));
    }
    if !problems.is_empty() {
        return format!("DEGRADED: {}", problems.join("; "));
    }
    let members = document["members"].as_array().map_or(0, Vec::len);
    let seen = if document["members"][0]["down"].is_boolean() {
        "every one heard by this herald"
    } else {
        "ask the herald for their liveness"
    };
    format!("HEALTHY: a static order of {members} member(s), {seen}")
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
            let order_id = order.order_id().get();
            format!(
                "ready: member {member}, {role} of order {order_id} (herald {herald}), \
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

fn order_json(order: &Order, tick_ms: u64) -> Value {
    let membership = order.membership();
    let quiet: std::collections::BTreeMap<_, _> = order.member_quiet_ticks().into_iter().collect();
    let down_ticks = order.member_down_ticks();
    let members: Vec<_> = membership
        .addresses
        .iter()
        .map(|(member, address)| {
            let role = if membership.voters.contains(member) { "voter" } else { "learner" };
            let mut member_json = json!({ "id": member.get(), "address": address, "role": role });
            // Only the herald hears every member; elsewhere liveness is unknown here.
            if let Some(&ticks) = quiet.get(member) {
                member_json["last_heard_ms"] = json!(ticks.saturating_mul(tick_ms));
                member_json["down"] = json!(ticks >= down_ticks);
            }
            member_json
        })
        .collect();
    let (health, reason) = order.health();
    json!({
        "order": order.order_id().get(),
        // The reported state (`Order::health`): as the replica's, but an error while a
        // member is down.
        "order_state": health.to_string(),
        "order_reason": reason,
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

/// What this radiant can tell of each order's state and each radiant's liveness: its own
/// order first hand when it is the herald (or its own view of it otherwise), and, when it
/// is the controller, every order as its herald last reported it.
#[derive(Default)]
struct Liveness {
    /// Each order's state and why it is not `ACTIVE`.
    orders: BTreeMap<OrderId, (String, Option<String>)>,
    /// Each radiant's ticks since it was last heard, and who heard it.
    radiants: BTreeMap<MemberId, (u64, &'static str)>,
    /// Ticks of silence after which a radiant is `DOWN`.
    down_ticks: u64,
}

fn liveness(status: &SystemStatus<'_>, order: Option<&Order>) -> Liveness {
    let Some(order) = order else { return Liveness::default() };
    let down_ticks = order.member_down_ticks();
    let mut liveness = Liveness { down_ticks, ..Liveness::default() };
    for (order_id, report) in status.order_reports.into_iter().flatten() {
        let age = status.now.0.saturating_sub(report.heard_at.0);
        let reason = (!report.reason.is_empty()).then(|| report.reason.clone());
        let (state, reason) = if age >= down_ticks {
            let reason = format!(
                "its herald (radiant {}) has not answered the controller for {age} ticks: it \
                 is down and no other has been elected, or the order has lost its majority",
                report.herald
            );
            (OrderState::Reset.to_string(), Some(reason))
        } else {
            (report.state.clone(), reason)
        };
        liveness.orders.insert(*order_id, (state, reason));
        for &(member, quiet) in &report.members {
            let quiet = if member == report.herald { age } else { quiet.saturating_add(age) };
            liveness.radiants.insert(member, (quiet, "controller"));
        }
    }
    let (health, reason) = order.health();
    liveness.orders.insert(order.order_id(), (health.to_string(), reason));
    for (member, quiet) in order.member_quiet_ticks() {
        liveness.radiants.insert(member, (quiet, "herald"));
    }
    liveness
}

/// The controller as this radiant knows it: itself when it is the controller (it hears
/// no heartbeat of its own), else the one it last heard.
fn controller_json(system: &System, status: &SystemStatus<'_>) -> Option<Value> {
    if status.is_controller {
        let record = system.record();
        let address = record.member.and_then(|member| {
            status.configuration.and_then(|c| c.radiants.get(&member)).map(|a| a.peer.clone())
        });
        return Some(json!({
            "term": system.controller_term(),
            "order": record.order_id.map(|order_id| order_id.get()),
            "member": record.member.map(|member| member.get()),
            "address": address,
        }));
    }
    status.controller.map(|view| {
        json!({
            "term": view.term,
            "order": view.order_id.map(|order_id| order_id.get()),
            "member": view.member.map(|member| member.get()),
            "address": view.address,
        })
    })
}

fn system_json(system: &System, order: Option<&Order>, tick_ms: u64) -> Value {
    let status = system.status(order);
    let liveness = liveness(&status, order);
    let configuration = status.configuration;
    let orders: Vec<Value> = configuration
        .map(|configuration| {
            configuration
                .orders
                .iter()
                .map(|(order_id, members)| {
                    let herald = status.heralds.get(order_id).map(|member| member.get());
                    let mine = order.filter(|order| order.order_id() == *order_id);
                    let (state, reason) = liveness.orders.get(order_id).cloned().unzip();
                    json!({
                        "order": order_id.get(),
                        "herald": herald.or_else(|| mine.and_then(Order::herald).map(|m| m.get())),
                        "members": members.iter().map(|member| member.get()).collect::<Vec<_>>(),
                        "shards": configuration.shard_count_of(*order_id),
                        "state": state,
                        "reason": reason.flatten(),
                        "leaving": configuration.leaving.contains(order_id),
                        "moving": system.shard_report(*order_id).map(|(_, moving)| moving),
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
                    let mut radiant = json!({
                        "id": member.get(),
                        "peer": address.peer,
                        "client": address.client,
                        "resp": (!address.resp.is_empty()).then_some(&address.resp),
                        "order": configuration.order_of(*member).map(|order_id| order_id.get()),
                    });
                    if let Some(&(quiet, heard_by)) = liveness.radiants.get(member) {
                        radiant["last_heard_ms"] = json!(quiet.saturating_mul(tick_ms));
                        radiant["down"] = json!(quiet >= liveness.down_ticks);
                        radiant["heard_by"] = json!(heard_by);
                    }
                    radiant
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
        "controller": controller_json(system, &status),
        "down_after_ms": liveness.down_ticks.saturating_mul(tick_ms),
        "orders": orders,
        "spares": configuration
            .map(|c| c.spares.iter().map(|member| member.get()).collect::<Vec<_>>())
            .unwrap_or_default(),
        "radiants": radiants,
        "shard_count": configuration.map_or(0, |configuration| configuration.shards.len()),
        "shard_owners": configuration
            .map(|c| c.shards.iter().map(|order_id| order_id.get()).collect::<Vec<_>>())
            .unwrap_or_default(),
        "known_radiants": status.known,
        "bootstrap_expect": status.bootstrap_expect,
    })
}
