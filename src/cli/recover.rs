//! `radiant admin recover-order`: majority-loss recovery (`RECOVER_RESET`, see
//! `core/order/reset.rs` for what the survivor does and what may be lost).
//!
//! The command finds the survivor's client address (from the status of the radiant it
//! reaches), asks the survivor to reset its order to itself, then, in a formed system,
//! asks the controller to remove every other member of that order from the
//! configuration, so the controller stops listing radiants that are gone. New members
//! are added afterwards as usual (`radiant admin add`).

use std::process::ExitCode;

use radiant_protocol::{ClientRequest, MemberId, OrderId};
use serde_json::Value;

use super::{connect, Target};
use crate::error_chain;

/// The survivor's client address, from a status document: this radiant's own when it is
/// the survivor, else the configuration's entry for it.
fn survivor_address(status: &Value, survivor: MemberId, asked: &str) -> Result<String, String> {
    if status["member"] == survivor.get() {
        return Ok(asked.to_string());
    }
    let radiants = status["system"]["radiants"].as_array().into_iter().flatten();
    radiants
        .into_iter()
        .find(|radiant| radiant["id"] == survivor.get())
        .and_then(|radiant| radiant["client"].as_str().map(str::to_string))
        .ok_or_else(|| {
            format!(
                "radiant {asked} is member {} and does not know member {survivor}'s client \
                 address: give the survivor's own address with --addr",
                status["member"]
            )
        })
}

/// The other members the configuration lists for `order_id` (none for a static order).
fn lost_members(status: &Value, order_id: OrderId, survivor: MemberId) -> Vec<MemberId> {
    let orders = status["system"]["orders"].as_array().into_iter().flatten();
    orders
        .into_iter()
        .filter(|order| order["order"] == order_id.get())
        .flat_map(|order| order["members"].as_array().into_iter().flatten())
        .filter_map(|member| member.as_u64().and_then(MemberId::new))
        .filter(|&member| member != survivor)
        .collect()
}

/// Runs the recovery of `order_id` from `survivor`.
pub(super) fn recover_order(
    order_id: OrderId,
    survivor: MemberId,
    target: &Target,
) -> Result<ExitCode, String> {
    let status = connect(target)?.status_document().map_err(|error| error_chain(&error))?;
    let address = survivor_address(&status, survivor, &target.addr)?;
    let mut at_survivor = connect(&Target { addr: address.clone(), ..target.clone() })?;
    let status = at_survivor.status_document().map_err(|error| error_chain(&error))?;
    at_survivor
        .admin(ClientRequest::RecoverOrder { order_id, survivor })
        .map_err(|error| format!("the survivor at {address} refused: {}", error_chain(&error)))?;
    println!("order {order_id} reset: member {survivor} is its only member and herald");
    for lost in lost_members(&status, order_id, survivor) {
        at_survivor.admin(ClientRequest::RemoveRadiant { member: lost }).map_err(|error| {
            format!(
                "order {order_id} is recovered, but removing lost member {lost} from the \
                 configuration failed: {}; retry with `radiant admin remove {lost}`",
                error_chain(&error)
            )
        })?;
        println!("removed lost member {lost} from the configuration");
    }
    Ok(ExitCode::SUCCESS)
}
