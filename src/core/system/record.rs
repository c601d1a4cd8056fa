//! What a radiant must remember about the system across restarts (its "system file"):
//! the cluster id, its permanent id, its bootstrap vote, the newest configuration it
//! holds and the order it was assigned with that order's initial membership.
//!
//! The core hands a whole record to the driver (`Action::PersistSystem`), which writes
//! it atomically and durably before carrying out the actions after it. This file owns
//! the byte format; `storage::system_file` owns the file.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use radiant_protocol::{ClusterId, Configuration, MemberId, OrderId, Term};

use crate::core::order::Membership;

/// The persistent part of a radiant's system state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemRecord {
    /// The system's id, fixed by the first controller election (unset before).
    pub cluster: ClusterId,
    /// This radiant's permanent id (none before it is associated).
    pub member: Option<MemberId>,
    /// The bootstrap council term this radiant has seen (before configuration 1).
    pub bootstrap_term: Term,
    /// Whom it voted for in `bootstrap_term` (a peer address).
    pub bootstrap_vote: Option<String>,
    /// The newest configuration it knows committed (the one it acts on).
    pub configuration: Option<Configuration>,
    /// The newest configuration number it knows committed.
    pub committed: u64,
    /// The newest configuration its order (or, while forming, it) holds, committed or not.
    pub accepted: Option<Configuration>,
    /// Its order's council term (mirrors the order's log, so a restart keeps it).
    pub council_term: Term,
    /// Its order's council vote in `council_term`.
    pub council_vote: Option<OrderId>,
    /// The order it was assigned to.
    pub order_id: Option<OrderId>,
    /// That order's membership when this radiant started its replica (the replica's
    /// log changes it from there, so it is never rewritten).
    pub initial_membership: Membership,
}

const MAGIC: &[u8; 4] = b"RSYS";
const VERSION: u8 = 1;

impl SystemRecord {
    /// Whether this radiant belongs to an established system (it has an order or is a
    /// spare in a committed configuration).
    pub fn is_associated(&self) -> bool {
        self.member.is_some() && self.committed > 0 && self.configuration.is_some()
    }

    /// Encodes the record: magic, version, fields, then a CRC32C of everything before.
    pub fn encode(&self) -> Bytes {
        let mut dst = BytesMut::new();
        dst.put_slice(MAGIC);
        dst.put_u8(VERSION);
        dst.put_u128(self.cluster.0);
        dst.put_u64(MemberId::to_wire(self.member));
        dst.put_u64(self.bootstrap_term);
        put_text(&mut dst, self.bootstrap_vote.as_deref().unwrap_or(""));
        for configuration in [&self.configuration, &self.accepted] {
            let bytes = configuration.as_ref().map(Configuration::to_bytes).unwrap_or_default();
            dst.put_u32(bytes.len() as u32);
            dst.put_slice(&bytes);
        }
        dst.put_u64(self.committed);
        dst.put_u64(self.council_term);
        dst.put_u64(OrderId::to_wire(self.council_vote));
        dst.put_u64(OrderId::to_wire(self.order_id));
        let membership = self.initial_membership.encode();
        dst.put_u32(membership.len() as u32);
        dst.put_slice(&membership);
        let checksum = crc32c::crc32c(&dst);
        dst.put_u32(checksum);
        dst.freeze()
    }

    /// Decodes what `encode` wrote; the error says what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<SystemRecord, String> {
        let (body, checksum) =
            bytes.split_last_chunk::<4>().ok_or_else(|| "shorter than a checksum".to_string())?;
        if crc32c::crc32c(body) != u32::from_be_bytes(*checksum) {
            return Err("checksum mismatch (the file is damaged)".into());
        }
        let mut reader = Bytes::copy_from_slice(body);
        let short = || "truncated".to_string();
        if reader.remaining() < 5 || &reader.split_to(4)[..] != MAGIC {
            return Err("not a radiant system file (bad magic)".into());
        }
        if reader.get_u8() != VERSION {
            return Err("written by an incompatible version".into());
        }
        if reader.remaining() < 32 {
            return Err(short());
        }
        let cluster = ClusterId(reader.get_u128());
        let member = MemberId::new(reader.get_u64());
        let bootstrap_term = reader.get_u64();
        let vote = get_text(&mut reader).ok_or_else(short)?;
        let configuration = get_configuration(&mut reader)?;
        let accepted = get_configuration(&mut reader)?;
        if reader.remaining() < 32 {
            return Err(short());
        }
        let committed = reader.get_u64();
        let council_term = reader.get_u64();
        let council_vote = OrderId::new(reader.get_u64());
        let order_id = OrderId::new(reader.get_u64());
        let membership = get_chunk(&mut reader).ok_or_else(short)?;
        let initial_membership = Membership::decode(membership)
            .ok_or_else(|| "initial membership does not decode".to_string())?;
        if reader.has_remaining() {
            return Err("trailing bytes".into());
        }
        Ok(SystemRecord {
            cluster,
            member,
            bootstrap_term,
            bootstrap_vote: (!vote.is_empty()).then_some(vote),
            configuration,
            committed,
            accepted,
            council_term,
            council_vote,
            order_id,
            initial_membership,
        })
    }
}

fn get_configuration(reader: &mut Bytes) -> Result<Option<Configuration>, String> {
    let bytes = get_chunk(reader).ok_or_else(|| "truncated".to_string())?;
    if bytes.is_empty() {
        return Ok(None);
    }
    let decoded = Configuration::from_bytes(bytes);
    Ok(Some(decoded.map_err(|error| format!("configuration: {error}"))?))
}

fn put_text(dst: &mut BytesMut, text: &str) {
    dst.put_u32(text.len() as u32);
    dst.put_slice(text.as_bytes());
}

fn get_chunk(reader: &mut Bytes) -> Option<Bytes> {
    if reader.remaining() < 4 {
        return None;
    }
    let len = reader.get_u32() as usize;
    (reader.remaining() >= len).then(|| reader.split_to(len))
}

fn get_text(reader: &mut Bytes) -> Option<String> {
    String::from_utf8(get_chunk(reader)?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use radiant_protocol::RadiantAddress;

    fn record() -> SystemRecord {
        let member = MemberId::new(1).expect("nonzero");
        let order_id = OrderId::new(1).expect("nonzero");
        let mut configuration = Configuration {
            number: 1,
            council_term: 2,
            next_member_id: 2,
            next_order_id: 2,
            shards: vec![order_id; 4],
            ..Configuration::default()
        };
        let address = RadiantAddress {
            peer: "127.0.0.1:1".into(),
            client: "127.0.0.1:2".into(),
            resp: String::new(),
        };
        configuration.radiants.insert(member, address);
        configuration.orders.insert(order_id, [member].into());
        SystemRecord {
            cluster: ClusterId(77),
            member: Some(member),
            bootstrap_term: 2,
            bootstrap_vote: Some("127.0.0.1:1".into()),
            configuration: Some(configuration.clone()),
            committed: 1,
            accepted: Some(configuration),
            council_term: 3,
            council_vote: Some(order_id),
            order_id: Some(order_id),
            initial_membership: Membership::with_voters([(
                member,
                "127.0.0.1:1 127.0.0.1:2".into(),
            )]),
        }
    }

    #[test]
    fn a_record_round_trips() {
        let record = record();
        assert_eq!(SystemRecord::decode(&record.encode()), Ok(record));
        let empty = SystemRecord::default();
        assert_eq!(SystemRecord::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn a_damaged_record_is_refused_with_a_reason() {
        let mut bytes = record().encode().to_vec();
        bytes[10] ^= 1;
        assert!(SystemRecord::decode(&bytes).unwrap_err().contains("checksum"));
        assert!(SystemRecord::decode(&bytes[..3]).is_err());
    }
}
