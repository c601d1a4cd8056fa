//! An order's membership: its voters, its learners (catching up, not counted in any
//! majority) and every member's peer address. Changes go through the log one member
//! at a time (`MembershipChange`) and take effect when committed, and a herald starts
//! no second change until the first is applied: with single-member steps any two
//! majorities of consecutive memberships overlap, which is what keeps one herald per term.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use radiant_protocol::{LogIndex, MemberId, MembershipChange};

/// Voters, learners and addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// Members whose acknowledgements and votes count.
    pub voters: BTreeSet<MemberId>,
    /// Members that receive the log but do not count.
    pub learners: BTreeSet<MemberId>,
    /// Peer address of every member.
    pub addresses: BTreeMap<MemberId, String>,
}

impl Membership {
    /// A membership of voters only.
    pub fn with_voters(voters: impl IntoIterator<Item = (MemberId, String)>) -> Self {
        let addresses: BTreeMap<MemberId, String> = voters.into_iter().collect();
        Membership {
            voters: addresses.keys().copied().collect(),
            learners: BTreeSet::new(),
            addresses,
        }
    }

    /// Votes needed for a majority of the voters.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Whether `member` belongs to the order at all.
    pub fn contains(&self, member: MemberId) -> bool {
        self.voters.contains(&member) || self.learners.contains(&member)
    }

    /// Every member except `me`, voters and learners.
    pub fn others(&self, me: MemberId) -> Vec<MemberId> {
        self.voters
            .iter()
            .chain(self.learners.iter())
            .copied()
            .filter(|&member| member != me)
            .collect()
    }

    /// The largest index a majority of voters have reached, given each voter's match.
    pub fn committed_index(&self, match_of: impl Fn(MemberId) -> LogIndex) -> LogIndex {
        let mut matches: Vec<LogIndex> = self.voters.iter().map(|&voter| match_of(voter)).collect();
        if matches.is_empty() {
            return 0;
        }
        matches.sort_unstable_by(|a, b| b.cmp(a));
        matches[self.quorum() - 1]
    }

    /// Applies one committed change. Returns false (and changes nothing) when the
    /// change does not apply: adding a present member, promoting a non-learner,
    /// removing an absent member, removing the last voter, or resetting to a non-voter.
    pub fn apply(&mut self, change: &MembershipChange) -> bool {
        match change {
            MembershipChange::AddLearner { member, address } => {
                if self.contains(*member) {
                    return false;
                }
                self.learners.insert(*member);
                self.addresses.insert(*member, address.clone());
            }
            MembershipChange::Promote { member } => {
                if !self.learners.remove(member) {
                    return false;
                }
                self.voters.insert(*member);
            }
            MembershipChange::Remove { member } => {
                let is_last_voter = self.voters.len() == 1 && self.voters.contains(member);
                if is_last_voter || !self.contains(*member) {
                    return false;
                }
                self.voters.remove(member);
                self.learners.remove(member);
                self.addresses.remove(member);
            }
            MembershipChange::Reset { member } => {
                if !self.voters.contains(member) {
                    return false;
                }
                self.voters.retain(|voter| voter == member);
                self.learners.clear();
                self.addresses.retain(|other, _| other == member);
            }
        }
        true
    }

    /// Encodes for a snapshot: u32 count, then per member u64 id, u8 voter flag,
    /// u16 address length and the address.
    pub fn encode(&self) -> Bytes {
        let mut buffer = BytesMut::new();
        buffer.put_u32(self.addresses.len() as u32);
        for (member, address) in &self.addresses {
            buffer.put_u64(member.get());
            buffer.put_u8(u8::from(self.voters.contains(member)));
            buffer.put_u16(address.len() as u16);
            buffer.put_slice(address.as_bytes());
        }
        buffer.freeze()
    }

    /// Decodes what `encode` wrote; `None` for anything malformed (snapshot data is
    /// checksummed, so this means an incompatible writer).
    pub fn decode(mut bytes: Bytes) -> Option<Membership> {
        let mut membership = Membership::default();
        if bytes.remaining() < 4 {
            return None;
        }
        let count = bytes.get_u32();
        let mut previous = 0;
        for _ in 0..count {
            if bytes.remaining() < 11 {
                return None;
            }
            // Members in increasing order, each once, as `encode` writes them: a repeated
            // member could otherwise come back both voter and learner (and the bytes
            // would have two readings; the system-file fuzz target found this).
            let id = bytes.get_u64();
            if id <= previous {
                return None;
            }
            previous = id;
            let member = MemberId::new(id)?;
            let voter = match bytes.get_u8() {
                0 => false,
                1 => true,
                _ => return None,
            };
            let length = usize::from(bytes.get_u16());
            if bytes.remaining() < length {
                return None;
            }
            let address = String::from_utf8(bytes.split_to(length).to_vec()).ok()?;
            if voter {
                membership.voters.insert(member);
            } else {
                membership.learners.insert(member);
            }
            membership.addresses.insert(member, address);
        }
        bytes.is_empty().then_some(membership)
    }
}

/// A member's address string is `PEER_ADDRESS CLIENT_ADDRESS` (the client part may be
/// missing). Peers dial the first; clients are redirected to the second.
pub fn member_peer_address(membership: &Membership, member: MemberId) -> Option<String> {
    membership.addresses.get(&member)?.split_whitespace().next().map(str::to_string)
}

/// The client address of `member`, when its address string carries one.
pub fn member_client_address(membership: &Membership, member: MemberId) -> Option<String> {
    membership.addresses.get(&member)?.split_whitespace().nth(1).map(str::to_string)
}

/// Formats the address string of a member.
pub fn member_address(peer: &str, client: &str) -> String {
    format!("{peer} {client}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(value: u64) -> MemberId {
        MemberId::new(value).expect("nonzero")
    }

    fn three() -> Membership {
        Membership::with_voters((1..=3).map(|member| (id(member), format!("127.0.0.1:{member}"))))
    }

    #[test]
    fn commit_is_the_highest_index_a_majority_reached() {
        let membership = three();
        let matches = [(1, 9), (2, 7), (3, 3)];
        let committed = membership.committed_index(|member| {
            matches
                .iter()
                .find(|(candidate, _)| *candidate == member.get())
                .map_or(0, |(_, index)| *index)
        });
        assert_eq!(committed, 7);
    }

    #[test]
    fn learners_do_not_count_until_promoted() {
        let mut membership = three();
        assert!(
            membership.apply(&MembershipChange::AddLearner { member: id(4), address: "a".into() })
        );
        assert_eq!(membership.quorum(), 2);
        assert!(
            !membership.apply(&MembershipChange::AddLearner { member: id(4), address: "a".into() })
        );
        assert!(membership.apply(&MembershipChange::Promote { member: id(4) }));
        assert_eq!(membership.quorum(), 3);
        assert!(membership.apply(&MembershipChange::Remove { member: id(1) }));
        assert_eq!(membership.voters.len(), 3);
    }

    #[test]
    fn a_reset_keeps_only_the_survivor_and_only_a_voter_survives() {
        let mut membership = three();
        membership.apply(&MembershipChange::AddLearner { member: id(4), address: "d".into() });
        assert!(!membership.clone().apply(&MembershipChange::Reset { member: id(4) }));
        assert!(membership.apply(&MembershipChange::Reset { member: id(2) }));
        assert_eq!(membership.voters.iter().copied().collect::<Vec<_>>(), [id(2)]);
        assert!(membership.learners.is_empty());
        assert_eq!(membership.addresses.keys().copied().collect::<Vec<_>>(), [id(2)]);
        assert_eq!(membership.quorum(), 1);
    }

    #[test]
    fn the_last_voter_cannot_be_removed() {
        let mut membership = Membership::with_voters([(id(1), "a".to_string())]);
        assert!(!membership.apply(&MembershipChange::Remove { member: id(1) }));
    }

    #[test]
    fn encoding_round_trips_and_rejects_trailing_bytes() {
        let mut membership = three();
        membership.apply(&MembershipChange::AddLearner {
            member: id(9),
            address: "10.0.0.9:7400".into(),
        });
        assert_eq!(Membership::decode(membership.encode()), Some(membership.clone()));
        let mut longer = BytesMut::from(&membership.encode()[..]);
        longer.put_u8(0);
        assert_eq!(Membership::decode(longer.freeze()), None);
    }

    #[test]
    fn a_repeated_or_unordered_member_is_refused_so_the_bytes_have_one_reading() {
        // Member 2 as a voter, then again as a learner: it would come back as both.
        let entry = |member: u64, voter: u8| {
            let mut bytes = BytesMut::new();
            bytes.put_u64(member);
            bytes.put_u8(voter);
            bytes.put_u16(1);
            bytes.put_u8(b'a');
            bytes
        };
        for pair in [[(2, 1), (2, 0)], [(3, 1), (2, 1)]] {
            let mut bytes = BytesMut::new();
            bytes.put_u32(2);
            for (member, voter) in pair {
                bytes.extend_from_slice(&entry(member, voter));
            }
            assert_eq!(Membership::decode(bytes.freeze()), None, "{pair:?}");
        }
    }
}
