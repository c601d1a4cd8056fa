//! `radiant status` without `--json`: the status document as readable tables.

use std::fmt::Write;

use serde_json::Value;

/// Renders a status document (see `server::status`) for people.
pub(super) fn render(status: &Value) -> String {
    let mut out = String::new();
    let text = |value: &Value| match value {
        Value::Null => "-".to_string(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if let Some(summary) = status["summary"].as_str() {
        let _ = writeln!(out, "{summary}\n");
    }
    let _ = writeln!(
        out,
        "radiant {} ({}, {}); order {} {}, term {}, herald {}",
        text(&status["member"]),
        text(&status["state"]),
        text(&status["role"]),
        text(&status["order"]),
        text(&status["order_state"]),
        text(&status["term"]),
        text(&status["herald"]),
    );
    match status["not_ready"].as_str() {
        Some(reason) if status["ready"] != true => {
            let _ = writeln!(out, "NOT READY: {reason}");
        }
        _ => {
            let _ = writeln!(out, "ready (takes keyed requests)");
        }
    }
    if let Some(alarm) = status["disk_alarm"].as_str() {
        let _ = writeln!(out, "DISK ALARM: {alarm}");
    }
    let _ = writeln!(
        out,
        "log: last {}, durable {}, commit {}, applied {}, snapshot {}; {} keys; \
         {} bytes on disk, {} free",
        text(&status["last_index"]),
        text(&status["durable_index"]),
        text(&status["commit_index"]),
        text(&status["applied_index"]),
        text(&status["snapshot_index"]),
        text(&status["keys"]),
        text(&status["disk_bytes"]),
        text(&status["disk_free_bytes"]),
    );
    if let Some(reason) = status["order_reason"].as_str() {
        let _ = writeln!(out, "order {}: {reason}", text(&status["order_state"]));
    }
    render_members_and_moves(status, &mut out, &text);
    let system = &status["system"];
    if system.is_object() {
        render_system(system, &mut out, &text);
    }
    out
}

/// This radiant's order members (with liveness when it is their herald) and its shards in
/// flight.
fn render_members_and_moves(status: &Value, out: &mut String, text: &impl Fn(&Value) -> String) {
    for member in status["members"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  member {} {} at {}{}",
            text(&member["id"]),
            text(&member["role"]),
            text(&member["address"]),
            liveness_text(member)
        );
    }
    for shard_move in status["moves"].as_array().into_iter().flatten() {
        let what = if shard_move["direction"] == "in" {
            "arriving (served once all of its data is committed here)".to_string()
        } else {
            format!("frozen, handing over to order {}", text(&shard_move["to"]))
        };
        let _ = writeln!(
            out,
            "  moving: shard {} for configuration {}: {what}",
            text(&shard_move["shard"]),
            text(&shard_move["configuration"]),
        );
    }
}

/// ", heard 40 ms ago" or ", DOWN (not heard for 5400 ms)", when liveness is known.
fn liveness_text(radiant: &Value) -> String {
    match (radiant["down"].as_bool(), radiant["last_heard_ms"].as_u64()) {
        (Some(true), Some(ms)) => format!(", DOWN (not heard for {ms} ms)"),
        (Some(false), Some(ms)) => format!(", heard {ms} ms ago"),
        _ => String::new(),
    }
}

fn render_system(system: &Value, out: &mut String, text: &impl Fn(&Value) -> String) {
    if let Some(error) = system["error"].as_str() {
        let _ = writeln!(out, "ERROR: {error}");
    }
    let controller = &system["controller"];
    let controller_text = if controller.is_object() {
        format!(
            "radiant {} of order {} (council term {}) at {}",
            text(&controller["member"]),
            text(&controller["order"]),
            text(&controller["term"]),
            text(&controller["address"])
        )
    } else {
        "none heard yet".to_string()
    };
    let _ = writeln!(
        out,
        "\nsystem {}: configuration {} (held {}), {} shards; controller {controller_text}",
        text(&system["cluster"]),
        text(&system["configuration"]),
        text(&system["accepted"]),
        text(&system["shard_count"]),
    );
    if system["configuration"] == 0 {
        let _ = writeln!(
            out,
            "forming: {} of bootstrap_expect = {} radiants known",
            text(&system["known_radiants"]),
            text(&system["bootstrap_expect"])
        );
        return;
    }
    render_orders(system, out, text);
    let spares: Vec<String> = system["spares"].as_array().into_iter().flatten().map(text).collect();
    if !spares.is_empty() {
        let _ = writeln!(out, "spares: {}", spares.join(" "));
    }
    render_radiants(system, out, text);
    let seen_by = match &system["seen_by"] {
        Value::Null if system["is_controller"] == true => {
            "this radiant, the controller".to_string()
        }
        Value::Null => "this radiant".to_string(),
        Value::Number(member) => format!("the controller, radiant {member}"),
        other => text(other),
    };
    let _ = writeln!(
        out,
        "(orders' states and radiants' liveness as seen by {seen_by}; a radiant is DOWN once \
         not heard for {} ms; `radiant status --addr ADDR` asks one directly)",
        text(&system["down_after_ms"])
    );
}

fn render_orders(system: &Value, out: &mut String, text: &impl Fn(&Value) -> String) {
    let _ = writeln!(
        out,
        "\n{:<6} {:<31} {:<7} {:<7} {:<7} MEMBERS",
        "ORDER", "STATE", "HERALD", "SHARDS", "MOVING"
    );
    for order in system["orders"].as_array().into_iter().flatten() {
        let members: Vec<String> =
            order["members"].as_array().into_iter().flatten().map(text).collect();
        let leaving = if order["leaving"] == true { " (leaving)" } else { "" };
        let _ = writeln!(
            out,
            "{:<6} {:<31} {:<7} {:<7} {:<7} {}{leaving}",
            text(&order["order"]),
            text(&order["state"]),
            text(&order["herald"]),
            text(&order["shards"]),
            text(&order["moving"]),
            members.join(" ")
        );
        if let Some(reason) = order["reason"].as_str() {
            let _ = writeln!(out, "       because {reason}");
        }
    }
}

fn render_radiants(system: &Value, out: &mut String, text: &impl Fn(&Value) -> String) {
    let controller = &system["controller"];
    let _ = writeln!(
        out,
        "\n{:<8} {:<22} {:<22} {:<6} ROLE, LIVENESS",
        "RADIANT", "PEER", "CLIENT", "ORDER"
    );
    let heralds: Vec<(Value, Value)> = system["orders"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|order| (order["order"].clone(), order["herald"].clone()))
        .collect();
    for radiant in system["radiants"].as_array().into_iter().flatten() {
        let id = &radiant["id"];
        let mut roles = Vec::new();
        if *id == controller["member"] {
            roles.push("controller");
        }
        if heralds.iter().any(|(_, herald)| herald == id) {
            roles.push("herald");
        }
        if roles.is_empty() {
            roles.push(if radiant["order"].is_null() { "spare" } else { "member" });
        }
        let _ = writeln!(
            out,
            "{:<8} {:<22} {:<22} {:<6} {}{}",
            text(id),
            text(&radiant["peer"]),
            text(&radiant["client"]),
            text(&radiant["order"]),
            roles.join(", "),
            liveness_text(radiant)
        );
    }
}

/// `radiant shards`: runs of consecutive shards with one owner, their hash-slot range
/// and where the owning order listens.
pub(super) fn render_shards(map: &crate::client::ShardRoutes) -> String {
    use radiant_protocol::slots::{shard_slot_range, ShardId};
    let mut out = String::new();
    let count = u32::try_from(map.owners.len()).unwrap_or(u32::MAX);
    let _ = writeln!(
        out,
        "configuration {}: {count} shards over 16384 hash slots\n",
        map.configuration
    );
    let _ =
        writeln!(out, "{:<13} {:<13} {:<6} RADIANTS (herald first)", "SHARDS", "SLOTS", "ORDER");
    let mut start = 0usize;
    while start < map.owners.len() {
        let owner = map.owners[start];
        let end = start + map.owners[start..].iter().take_while(|&&o| o == owner).count();
        let first = shard_slot_range(ShardId(start as u32), count).start;
        let last = shard_slot_range(ShardId((end - 1) as u32), count).end - 1;
        let radiants = map.addresses.get(&owner).map(|list| list.join(" ")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<13} {:<13} {:<6} {radiants}",
            format!("{start}-{}", end - 1),
            format!("{first}-{last}"),
            owner
        );
        start = end;
    }
    out
}

/// A configuration for people (`radiant configuration`).
pub(super) fn render_configuration(configuration: &radiant_protocol::Configuration) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "configuration {} (council term {}), {} shards",
        configuration.number,
        configuration.council_term,
        configuration.shards.len()
    );
    let _ = writeln!(out, "\n{:<6} {:<7} MEMBERS", "ORDER", "SHARDS");
    for (order_id, members) in &configuration.orders {
        let members: Vec<String> = members.iter().map(ToString::to_string).collect();
        let leaving = if configuration.leaving.contains(order_id) { " (leaving)" } else { "" };
        let shards = configuration.shard_count_of(*order_id);
        let order_id = order_id.to_string();
        let _ = writeln!(out, "{order_id:<6} {shards:<7} {}{leaving}", members.join(" "));
    }
    if !configuration.spares.is_empty() {
        let spares: Vec<String> = configuration.spares.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "spares: {}", spares.join(" "));
    }
    let _ = writeln!(out, "\n{:<8} {:<22} CLIENT", "RADIANT", "PEER");
    for (member, address) in &configuration.radiants {
        let member = member.to_string();
        let _ = writeln!(out, "{member:<8} {:<22} {}", address.peer, address.client);
    }
    out
}
