//! Link messages (beacon family, 0x04–0x07): the handshake that opens every peer link
//! before anything else on it is believed.
//!
//! ```text
//!  dialler                                   acceptor
//!     │── LinkHello { nonce_d, addr_d, cluster_d } ──►│
//!     │◄─ LinkChallenge { nonce_a, addr_a, cluster_a, │
//!     │        proof_a = MAC(acceptor, transcript) } ─│
//!     │── LinkProof { proof_d = MAC(dialler, transcript) } ──►│
//! ```
//!
//! The transcript ([`link_transcript`]) holds both nonces, both peer addresses and both
//! cluster ids, so a proof is good for one link only and cannot be replayed on another;
//! the role label differs per side, so an acceptor's proof cannot be reflected back as a
//! dialler's. Which MAC (HMAC-SHA256 keyed by the cluster secret) and what each side
//! checks belong to the radiant (`server/link_auth.rs`); this module owns the layouts.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::{put_address, put_bool, put_string, Reader};
use crate::error::DecodeError;
use crate::ids::ClusterId;
use crate::kind::Kind;
use crate::limits::MAX_REASON_BYTES;

/// Bytes of a link nonce (fresh from the operating system's random source).
pub const LINK_NONCE_BYTES: usize = 32;
/// Bytes of a link proof (an HMAC-SHA256 tag).
pub const LINK_PROOF_BYTES: usize = 32;

/// What one side of a link says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkIntroduction {
    /// A fresh random nonce, never used for another link.
    pub nonce: [u8; LINK_NONCE_BYTES],
    /// The sender's peer address (`host:port`), as the other radiants know it.
    pub address: String,
    /// The sender's cluster id; `ClusterId::UNSET` while it is forming or joining.
    pub cluster: ClusterId,
    /// The sender runs without a cluster secret (`insecure = true`); its proofs are
    /// zeros and prove nothing.
    pub insecure: bool,
}

/// A link handshake message; the variant fixes the frame kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkMessage {
    /// The dialler introduces itself. Kind 0x04.
    Hello(LinkIntroduction),
    /// The acceptor introduces itself and proves it holds the secret. Kind 0x05.
    Challenge {
        /// The acceptor's introduction.
        introduction: LinkIntroduction,
        /// The acceptor's proof over the transcript.
        proof: [u8; LINK_PROOF_BYTES],
    },
    /// The dialler proves it holds the secret. Kind 0x06.
    Proof {
        /// The dialler's proof over the transcript.
        proof: [u8; LINK_PROOF_BYTES],
    },
    /// The handshake is refused; the link closes after it. Kind 0x07.
    Refused {
        /// Why, for the operator of the other radiant.
        reason: String,
    },
}

/// Which side of a link a proof is made by: part of the transcript, so a proof made
/// by one side is never valid as the other's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRole {
    /// The radiant that dialled.
    Dialler,
    /// The radiant that accepted.
    Acceptor,
}

impl LinkRole {
    fn label(self) -> &'static [u8] {
        match self {
            LinkRole::Dialler => b"radiant link proof v1: dialler",
            LinkRole::Acceptor => b"radiant link proof v1: acceptor",
        }
    }
}

/// The bytes a proof is made over: the role label (with its `u8` length), then the
/// dialler's and the acceptor's nonce, address (with its `u16` length), cluster id and
/// insecure flag. Unambiguous: every field has a fixed size or a length.
pub fn link_transcript(
    role: LinkRole,
    dialler: &LinkIntroduction,
    acceptor: &LinkIntroduction,
) -> Vec<u8> {
    let mut transcript = BytesMut::new();
    let label = role.label();
    transcript.put_u8(label.len() as u8);
    transcript.put_slice(label);
    for side in [dialler, acceptor] {
        transcript.put_slice(&side.nonce);
        put_address(&mut transcript, &side.address);
        transcript.put_u128(side.cluster.0);
        put_bool(&mut transcript, side.insecure);
    }
    transcript.to_vec()
}

impl LinkMessage {
    /// The frame kind of this message.
    pub fn kind(&self) -> Kind {
        match self {
            LinkMessage::Hello(_) => Kind::LinkHello,
            LinkMessage::Challenge { .. } => Kind::LinkChallenge,
            LinkMessage::Proof { .. } => Kind::LinkProof,
            LinkMessage::Refused { .. } => Kind::LinkRefused,
        }
    }

    /// Whether `kind` is a link message kind.
    pub fn is_link_kind(kind: Kind) -> bool {
        matches!(kind, Kind::LinkHello | Kind::LinkChallenge | Kind::LinkProof | Kind::LinkRefused)
    }

    /// Decodes the payload of a frame of a link `kind`, consuming it exactly.
    pub fn decode(kind: Kind, payload: Bytes) -> Result<LinkMessage, DecodeError> {
        let mut reader = Reader::new(payload, Some(kind));
        let message = match kind {
            Kind::LinkHello => LinkMessage::Hello(read_introduction(&mut reader)?),
            Kind::LinkChallenge => LinkMessage::Challenge {
                introduction: read_introduction(&mut reader)?,
                proof: reader.read_array("proof")?,
            },
            Kind::LinkProof => LinkMessage::Proof { proof: reader.read_array("proof")? },
            Kind::LinkRefused => LinkMessage::Refused {
                reason: reader.read_string("reason", MAX_REASON_BYTES, "reason too long")?,
            },
            _ => return Err(reader.invalid("kind", "not a link message kind")),
        };
        reader.finish()?;
        Ok(message)
    }

    /// Appends the payload (not the frame header) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            LinkMessage::Hello(introduction) => put_introduction(dst, introduction),
            LinkMessage::Challenge { introduction, proof } => {
                put_introduction(dst, introduction);
                dst.put_slice(proof);
            }
            LinkMessage::Proof { proof } => dst.put_slice(proof),
            LinkMessage::Refused { reason } => put_string(dst, reason, MAX_REASON_BYTES),
        }
    }
}

fn read_introduction(reader: &mut Reader) -> Result<LinkIntroduction, DecodeError> {
    Ok(LinkIntroduction {
        nonce: reader.read_array("nonce")?,
        address: reader.read_address("address")?,
        cluster: ClusterId(reader.read_u128("cluster")?),
        insecure: reader.read_bool("insecure")?,
    })
}

fn put_introduction(dst: &mut BytesMut, introduction: &LinkIntroduction) {
    dst.put_slice(&introduction.nonce);
    put_address(dst, &introduction.address);
    dst.put_u128(introduction.cluster.0);
    put_bool(dst, introduction.insecure);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn introduction(seed: u8, address: &str) -> LinkIntroduction {
        LinkIntroduction {
            nonce: [seed; LINK_NONCE_BYTES],
            address: address.into(),
            cluster: ClusterId(u128::from(seed) << 64),
            insecure: false,
        }
    }

    #[test]
    fn every_link_message_round_trips() {
        let messages = [
            LinkMessage::Hello(introduction(1, "10.0.0.1:7400")),
            LinkMessage::Challenge {
                introduction: introduction(2, "10.0.0.2:7400"),
                proof: [9; LINK_PROOF_BYTES],
            },
            LinkMessage::Proof { proof: [7; LINK_PROOF_BYTES] },
            LinkMessage::Refused { reason: "another secret".into() },
        ];
        for message in messages {
            let mut payload = BytesMut::new();
            message.encode(&mut payload);
            let decoded = LinkMessage::decode(message.kind(), payload.freeze()).unwrap();
            assert_eq!(decoded, message);
        }
    }

    #[test]
    fn a_short_proof_is_truncated_not_padded() {
        let error = LinkMessage::decode(Kind::LinkProof, Bytes::from_static(&[1; 31]));
        assert!(matches!(error, Err(DecodeError::Truncated { field: "proof", .. })), "{error:?}");
    }

    #[test]
    fn transcripts_differ_by_role_and_by_every_field() {
        let dialler = introduction(1, "a:1");
        let acceptor = introduction(2, "b:2");
        let base = link_transcript(LinkRole::Dialler, &dialler, &acceptor);
        assert_ne!(base, link_transcript(LinkRole::Acceptor, &dialler, &acceptor));
        assert_ne!(base, link_transcript(LinkRole::Dialler, &acceptor, &dialler));
        let mut other = dialler.clone();
        other.address = "a:11".into();
        assert_ne!(base, link_transcript(LinkRole::Dialler, &other, &acceptor));
        let mut other = acceptor.clone();
        other.cluster = ClusterId(5);
        assert_ne!(base, link_transcript(LinkRole::Dialler, &dialler, &other));
        let mut other = acceptor.clone();
        other.insecure = true;
        assert_ne!(base, link_transcript(LinkRole::Dialler, &dialler, &other));
    }
}
