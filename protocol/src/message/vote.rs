//! The vote family (kinds 0x20–0x2F): how an order elects its herald. `RequestVote`
//! asks for a vote (or a pre-vote), `Vote` answers it, and `TimeoutNow` starts a herald
//! transfer.
//!
//! This module owns the bodies' layouts, decode beside encode. The peer header that
//! precedes every body belongs to `peer.rs`. It must not decide who gets a vote; the
//! daemon's core does (Raft §5.2, §5.4.1, and pre-vote from Ongaro's thesis §9.6).

use bytes::{BufMut, BytesMut};

use crate::codec::{put_bool, Reader};
use crate::error::DecodeError;
use crate::ids::{LogIndex, Term};

/// A candidate asks for a member's vote in the header's term. With `pre_vote`, it only
/// asks whether it *would* get the vote, without anyone changing term, so a member
/// returning from a partition cannot depose a healthy herald.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestVote {
    /// The index of the candidate's last log entry (0 for an empty log).
    pub last_log_index: LogIndex,
    /// The term of the candidate's last log entry (0 for an empty log). A voter grants
    /// only if this log is at least as up to date as its own.
    pub last_log_term: Term,
    /// Whether this is a pre-vote: nobody persists a vote or adopts the term.
    pub pre_vote: bool,
    /// Whether the herald asked the candidate to take over (`TimeoutNow`), so voters
    /// ignore their lease check (they have heard from a herald recently, but that herald
    /// is the one stepping aside).
    pub transfer: bool,
}

/// A member's answer to `RequestVote`, in the header's term (the voter's current term,
/// or the requested term for a granted pre-vote).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Vote {
    /// Whether the vote (or pre-vote) was granted.
    pub granted: bool,
    /// Whether this answers a pre-vote, so a candidate never counts a pre-vote as a vote.
    pub pre_vote: bool,
}

// ===== impl RequestVote =====

impl RequestVote {
    /// Reads the body: `u64` last log index, `u64` last log term, boolean pre-vote,
    /// boolean transfer.
    pub(crate) fn decode(reader: &mut Reader) -> Result<RequestVote, DecodeError> {
        Ok(RequestVote {
            last_log_index: reader.read_u64("last_log_index")?,
            last_log_term: reader.read_u64("last_log_term")?,
            pre_vote: reader.read_bool("pre_vote")?,
            transfer: reader.read_bool("transfer")?,
        })
    }

    /// Appends the body to `dst`.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        dst.put_u64(self.last_log_index);
        dst.put_u64(self.last_log_term);
        put_bool(dst, self.pre_vote);
        put_bool(dst, self.transfer);
    }
}

// ===== impl Vote =====

impl Vote {
    /// Reads the body: boolean granted, boolean pre-vote.
    pub(crate) fn decode(reader: &mut Reader) -> Result<Vote, DecodeError> {
        Ok(Vote { granted: reader.read_bool("granted")?, pre_vote: reader.read_bool("pre_vote")? })
    }

    /// Appends the body to `dst`.
    pub(crate) fn encode(&self, dst: &mut BytesMut) {
        put_bool(dst, self.granted);
        put_bool(dst, self.pre_vote);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::kind::Kind;

    #[test]
    fn request_vote_layout_is_index_term_pre_vote_transfer() {
        let request =
            RequestVote { last_log_index: 5, last_log_term: 2, pre_vote: true, transfer: false };
        let mut dst = BytesMut::new();
        request.encode(&mut dst);
        assert_eq!(dst.as_ref(), [0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0].as_slice());
        let mut reader = Reader::new(dst.freeze(), Some(Kind::RequestVote));
        assert_eq!(RequestVote::decode(&mut reader), Ok(request));
        reader.finish().unwrap();
    }

    #[test]
    fn vote_round_trips_in_two_bytes() {
        for (granted, pre_vote) in [(false, false), (true, false), (false, true), (true, true)] {
            let vote = Vote { granted, pre_vote };
            let mut dst = BytesMut::new();
            vote.encode(&mut dst);
            assert_eq!(dst.len(), 2);
            let mut reader = Reader::new(dst.freeze(), Some(Kind::Vote));
            assert_eq!(Vote::decode(&mut reader), Ok(vote));
            reader.finish().unwrap();
        }
    }

    #[test]
    fn request_vote_with_a_transfer_flag_of_two_is_rejected() {
        let mut bytes = vec![0; 16];
        bytes.extend_from_slice(&[0, 2]);
        let mut reader = Reader::new(Bytes::from(bytes), Some(Kind::RequestVote));
        assert_eq!(
            RequestVote::decode(&mut reader),
            Err(DecodeError::InvalidField {
                kind: Some(Kind::RequestVote),
                field: "transfer",
                reason: "a boolean must be 0 or 1"
            })
        );
    }

    #[test]
    fn truncated_vote_names_the_missing_field() {
        let mut reader = Reader::new(Bytes::from_static(&[1]), Some(Kind::Vote));
        assert_eq!(
            Vote::decode(&mut reader),
            Err(DecodeError::Truncated {
                kind: Some(Kind::Vote),
                field: "pre_vote",
                needed: 1,
                remaining: 0
            })
        );
    }
}
