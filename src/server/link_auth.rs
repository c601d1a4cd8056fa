//! Peer link authentication: the handshake every peer link goes through before anything
//! on it reaches the core, and the tokens of the client port.
//!
//! A link is trusted when each side has proved it holds the cluster secret: an
//! HMAC-SHA256 over a transcript of both fresh nonces, both peer addresses and both
//! cluster ids (`radiant_protocol::message::link`), compared in constant time. Until
//! then the reactor passes nothing from the link on, and a failure closes the link with
//! a `LinkRefused` that tells the other side's operator why.
//!
//! This module is sans-IO: the nonce comes in, messages go out, and the reactor does the
//! sockets, so the fuzz target and the tests drive the same code the daemon runs.

use hmac::{Hmac, Mac};
use radiant_protocol::message::link::{link_transcript, LINK_NONCE_BYTES, LINK_PROOF_BYTES};
use radiant_protocol::{ClusterId, LinkIntroduction, LinkMessage, LinkRole};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How this radiant treats peer links.
#[derive(Clone)]
pub enum LinkTrust {
    /// No `cluster_secret` and not `insecure`: every peer link is refused (a single node
    /// on the embedded default). Radiants that should form a system need a secret.
    Closed,
    /// `insecure = true`: links open without proof, only with other insecure radiants.
    Insecure,
    /// Links open when both sides prove a shared secret.
    Secret {
        /// The secret this radiant proves with (`cluster_secret`).
        present: Vec<u8>,
        /// A second secret whose proofs are accepted too (`cluster_secret_accepted`),
        /// for rotating the secret one radiant at a time.
        also_accepted: Option<Vec<u8>>,
    },
}

impl std::fmt::Debug for LinkTrust {
    // Why: a secret must never reach a log line through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkTrust::Closed => "Closed",
            LinkTrust::Insecure => "Insecure",
            LinkTrust::Secret { .. } => "Secret(..)",
        })
    }
}

impl LinkTrust {
    fn insecure(&self) -> bool {
        matches!(self, LinkTrust::Insecure)
    }

    fn prove(&self, transcript: &[u8]) -> [u8; LINK_PROOF_BYTES] {
        match self {
            LinkTrust::Secret { present, .. } => mac(present, transcript),
            LinkTrust::Closed | LinkTrust::Insecure => [0; LINK_PROOF_BYTES],
        }
    }

    /// Whether `proof` is a proof over `transcript` by a holder of a secret this radiant
    /// accepts. Every accepted secret is tried, each in constant time.
    fn verify(&self, transcript: &[u8], proof: &[u8; LINK_PROOF_BYTES]) -> bool {
        match self {
            LinkTrust::Secret { present, also_accepted } => {
                let mut good = mac(present, transcript).ct_eq(proof);
                if let Some(other) = also_accepted {
                    good |= mac(other, transcript).ct_eq(proof);
                }
                good.into()
            }
            LinkTrust::Insecure => true,
            LinkTrust::Closed => false,
        }
    }
}

fn mac(secret: &[u8], transcript: &[u8]) -> [u8; LINK_PROOF_BYTES] {
    // Why: HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(transcript);
    mac.finalize().into_bytes().into()
}

/// Whether `presented` equals `token`, compared in constant time (for the client
/// port's tokens: a timing difference must not reveal a prefix).
pub fn token_matches(presented: &[u8], token: &[u8]) -> bool {
    presented.ct_eq(token).into()
}

/// A fresh nonce from the operating system's random source.
pub fn fresh_nonce() -> std::io::Result<[u8; LINK_NONCE_BYTES]> {
    let mut nonce = [0; LINK_NONCE_BYTES];
    getrandom::fill(&mut nonce)
        .map_err(|error| std::io::Error::other(format!("no random nonce: {error}")))?;
    Ok(nonce)
}

/// The other side of a trusted link, as it introduced itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedPeer {
    /// Its peer address.
    pub address: String,
    /// Its cluster id (unset while it forms or joins).
    pub cluster: ClusterId,
}

/// What the reactor does after a handshake step.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkStep {
    /// Send this and wait for the next message.
    Send(LinkMessage),
    /// The link is trusted; send this first, if anything.
    Trusted {
        /// The last handshake message, if this side owes one.
        send: Option<LinkMessage>,
        /// Who is on the other side.
        peer: TrustedPeer,
    },
}

/// A handshake that failed: log `reason`, send `tell_peer` (if any) as `LinkRefused`,
/// then close the link.
#[derive(Debug, PartialEq, Eq)]
pub struct LinkRefusal {
    /// Why, for this radiant's log.
    pub reason: String,
    /// Why, for the other radiant's log (none when the other side refused first).
    pub tell_peer: Option<String>,
}

impl LinkRefusal {
    fn both(reason: String) -> LinkRefusal {
        LinkRefusal { tell_peer: Some(reason.clone()), reason }
    }
}

enum Stage {
    /// Acceptor: waiting for the dialler's `LinkHello`.
    AwaitingHello,
    /// Dialler: waiting for the acceptor's `LinkChallenge`.
    AwaitingChallenge,
    /// Acceptor: challenge sent, waiting for the dialler's proof.
    AwaitingProof { dialler: LinkIntroduction },
    /// Trusted or refused: nothing more is a handshake message.
    Over,
}

/// One side of one link's handshake.
pub struct LinkHandshake {
    trust: std::sync::Arc<LinkTrust>,
    mine: LinkIntroduction,
    stage: Stage,
}

impl LinkHandshake {
    /// The dialling side: returns the handshake and the `LinkHello` to send first.
    pub fn dial(
        trust: std::sync::Arc<LinkTrust>,
        nonce: [u8; LINK_NONCE_BYTES],
        my_address: String,
        my_cluster: ClusterId,
    ) -> (LinkHandshake, LinkMessage) {
        let mine = introduction(&trust, nonce, my_address, my_cluster);
        let hello = LinkMessage::Hello(mine.clone());
        (LinkHandshake { trust, mine, stage: Stage::AwaitingChallenge }, hello)
    }

    /// The accepting side: it waits for the dialler's `LinkHello`.
    pub fn accept(
        trust: std::sync::Arc<LinkTrust>,
        nonce: [u8; LINK_NONCE_BYTES],
        my_address: String,
        my_cluster: ClusterId,
    ) -> LinkHandshake {
        let mine = introduction(&trust, nonce, my_address, my_cluster);
        LinkHandshake { trust, mine, stage: Stage::AwaitingHello }
    }

    /// Takes the next handshake message from the other side.
    pub fn on_message(&mut self, message: LinkMessage) -> Result<LinkStep, LinkRefusal> {
        let stage = std::mem::replace(&mut self.stage, Stage::Over);
        match (stage, message) {
            (_, LinkMessage::Refused { reason }) => Err(LinkRefusal {
                reason: format!("the other radiant refused the link: {reason}"),
                tell_peer: None,
            }),
            (Stage::AwaitingHello, LinkMessage::Hello(dialler)) => self.on_hello(dialler),
            (Stage::AwaitingChallenge, LinkMessage::Challenge { introduction, proof }) => {
                self.on_challenge(introduction, &proof)
            }
            (Stage::AwaitingProof { dialler }, LinkMessage::Proof { proof }) => {
                let transcript = link_transcript(LinkRole::Dialler, &dialler, &self.mine);
                if !self.trust.verify(&transcript, &proof) {
                    return Err(unproved(&dialler.address, &self.mine.address));
                }
                Ok(LinkStep::Trusted { send: None, peer: trusted(&dialler) })
            }
            (_, message) => Err(LinkRefusal::both(format!(
                "a {:?} message came out of turn in the link handshake with radiant {}",
                message.kind(),
                self.mine.address
            ))),
        }
    }

    fn on_hello(&mut self, dialler: LinkIntroduction) -> Result<LinkStep, LinkRefusal> {
        self.check_compatible(&dialler)?;
        let transcript = link_transcript(LinkRole::Acceptor, &dialler, &self.mine);
        let proof = self.trust.prove(&transcript);
        let challenge = LinkMessage::Challenge { introduction: self.mine.clone(), proof };
        self.stage = Stage::AwaitingProof { dialler };
        Ok(LinkStep::Send(challenge))
    }

    fn on_challenge(
        &mut self,
        acceptor: LinkIntroduction,
        proof: &[u8; LINK_PROOF_BYTES],
    ) -> Result<LinkStep, LinkRefusal> {
        self.check_compatible(&acceptor)?;
        let transcript = link_transcript(LinkRole::Acceptor, &self.mine, &acceptor);
        if !self.trust.verify(&transcript, proof) {
            return Err(unproved(&acceptor.address, &self.mine.address));
        }
        let transcript = link_transcript(LinkRole::Dialler, &self.mine, &acceptor);
        let proof = self.trust.prove(&transcript);
        Ok(LinkStep::Trusted { send: Some(LinkMessage::Proof { proof }), peer: trusted(&acceptor) })
    }

    /// Both sides must agree on running with a secret; a radiant with no secret that is
    /// not insecure takes no links at all. A radiant of another system (another cluster
    /// id) may link: the core refuses its beacons with `BeaconRefused`, so the refused
    /// radiant's status says what to do, instead of a link that only closes.
    fn check_compatible(&self, theirs: &LinkIntroduction) -> Result<(), LinkRefusal> {
        let (me, them) = (&self.mine.address, &theirs.address);
        if matches!(*self.trust, LinkTrust::Closed) {
            return Err(LinkRefusal::both(format!(
                "radiant {me} has no cluster_secret, so it takes no peer links (radiant {them} \
                 tried): give every radiant of the system the same cluster_secret"
            )));
        }
        if theirs.insecure != self.mine.insecure {
            let (insecure, secured) = if theirs.insecure { (them, me) } else { (me, them) };
            return Err(LinkRefusal::both(format!(
                "radiant {insecure} runs with insecure = true (no cluster_secret) and radiant \
                 {secured} has a cluster_secret: every radiant of a system must use the same \
                 setting"
            )));
        }
        Ok(())
    }
}

fn introduction(
    trust: &LinkTrust,
    nonce: [u8; LINK_NONCE_BYTES],
    address: String,
    cluster: ClusterId,
) -> LinkIntroduction {
    LinkIntroduction { nonce, address, cluster, insecure: trust.insecure() }
}

/// The refusal of a proof that did not verify.
fn unproved(prover: &str, verifier: &str) -> LinkRefusal {
    LinkRefusal::both(format!(
        "radiant {prover} could not prove the cluster secret to radiant {verifier}: the two \
         have different cluster_secret values (or the handshake was altered on the way); give \
         every radiant of the system the same one"
    ))
}

fn trusted(introduction: &LinkIntroduction) -> TrustedPeer {
    TrustedPeer { address: introduction.address.clone(), cluster: introduction.cluster }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn secret(text: &str) -> Arc<LinkTrust> {
        Arc::new(LinkTrust::Secret { present: text.as_bytes().to_vec(), also_accepted: None })
    }

    /// Runs a whole handshake; the dialler's and the acceptor's outcomes.
    fn handshake(
        dialler_trust: Arc<LinkTrust>,
        acceptor_trust: Arc<LinkTrust>,
    ) -> (Result<TrustedPeer, LinkRefusal>, Result<TrustedPeer, LinkRefusal>) {
        let cluster = ClusterId::UNSET;
        let (mut dialler, hello) =
            LinkHandshake::dial(dialler_trust, [1; 32], "d:1".into(), cluster);
        let mut acceptor = LinkHandshake::accept(acceptor_trust, [2; 32], "a:2".into(), cluster);
        let challenge = match acceptor.on_message(hello) {
            Ok(LinkStep::Send(challenge)) => challenge,
            Ok(other) => panic!("acceptor answered a hello with {other:?}"),
            Err(refusal) => {
                let told = LinkMessage::Refused { reason: refusal.tell_peer.clone().unwrap() };
                let dialler_side = dialler.on_message(told).map(|_| unreachable!());
                return (dialler_side, Err(refusal));
            }
        };
        match dialler.on_message(challenge) {
            Ok(LinkStep::Trusted { send: Some(proof), peer }) => {
                let acceptor_side = match acceptor.on_message(proof) {
                    Ok(LinkStep::Trusted { send: None, peer }) => Ok(peer),
                    Ok(other) => panic!("acceptor answered a proof with {other:?}"),
                    Err(refusal) => Err(refusal),
                };
                (Ok(peer), acceptor_side)
            }
            Ok(other) => panic!("dialler answered a challenge with {other:?}"),
            Err(refusal) => {
                let told = LinkMessage::Refused { reason: refusal.tell_peer.clone().unwrap() };
                let acceptor_side = acceptor.on_message(told).map(|_| unreachable!());
                (Err(refusal), acceptor_side)
            }
        }
    }

    #[test]
    fn the_same_secret_trusts_both_sides_with_the_addresses_they_gave() {
        let (dialler, acceptor) =
            handshake(secret("sixteen bytes at least"), secret("sixteen bytes at least"));
        assert_eq!(dialler.unwrap().address, "a:2");
        assert_eq!(acceptor.unwrap().address, "d:1");
    }

    #[test]
    fn another_secret_is_refused_on_both_sides_with_the_cause() {
        let (dialler, acceptor) =
            handshake(secret("one secret of ours"), secret("another secret!!"));
        let dialler = dialler.unwrap_err();
        assert!(dialler.reason.contains("different cluster_secret"), "{}", dialler.reason);
        let acceptor = acceptor.unwrap_err();
        assert!(acceptor.reason.contains("refused the link"), "{}", acceptor.reason);
        assert!(acceptor.reason.contains("different cluster_secret"), "{}", acceptor.reason);
    }

    #[test]
    fn a_secret_rotates_one_radiant_at_a_time() {
        let both = |present: &str, also: &str| {
            Arc::new(LinkTrust::Secret {
                present: present.as_bytes().to_vec(),
                also_accepted: Some(also.as_bytes().to_vec()),
            })
        };
        let (old, new) = ("the old secret value", "the new secret value");
        // Step 1: radiants accept the new secret too while still proving with the old.
        // Step 2: they prove with the new one and still accept the old. Step 3: new only.
        let steps = [secret(old), both(old, new), both(new, old), secret(new)];
        for pair in steps.windows(2) {
            for (dialler, acceptor) in [(&pair[0], &pair[1]), (&pair[1], &pair[0])] {
                let (dialled, accepted) = handshake(dialler.clone(), acceptor.clone());
                assert!(dialled.is_ok() && accepted.is_ok(), "{dialled:?} {accepted:?}");
            }
        }
        let (dialled, _) = handshake(secret(old), secret(new));
        assert!(dialled.is_err(), "skipping a step must not link");
    }

    #[test]
    fn insecure_and_secured_radiants_do_not_link_and_closed_ones_link_with_nobody() {
        let (_, acceptor) =
            handshake(Arc::new(LinkTrust::Insecure), secret("sixteen bytes at least"));
        assert!(acceptor.unwrap_err().reason.contains("insecure = true"));
        let (dialler, acceptor) =
            handshake(Arc::new(LinkTrust::Insecure), Arc::new(LinkTrust::Insecure));
        assert!(dialler.is_ok() && acceptor.is_ok());
        let (dialler, _) = handshake(Arc::new(LinkTrust::Closed), Arc::new(LinkTrust::Closed));
        assert!(dialler.unwrap_err().reason.contains("has no cluster_secret"));
    }

    #[test]
    fn a_replayed_or_reflected_proof_is_refused() {
        let trust = secret("sixteen bytes at least");
        let cluster = ClusterId::UNSET;
        let mut acceptor = LinkHandshake::accept(trust.clone(), [2; 32], "a:2".into(), cluster);
        let hello = LinkMessage::Hello(LinkIntroduction {
            nonce: [9; 32],
            address: "attacker:1".into(),
            cluster,
            insecure: false,
        });
        let Ok(LinkStep::Send(LinkMessage::Challenge { proof, .. })) = acceptor.on_message(hello)
        else {
            panic!("no challenge");
        };
        // The acceptor's own proof sent back as the dialler's: the role label differs.
        let refused = acceptor.on_message(LinkMessage::Proof { proof });
        assert!(refused.unwrap_err().reason.contains("could not prove"));
        // Nothing is accepted after a refusal, not even a message that would have fit.
        let again = acceptor.on_message(LinkMessage::Proof { proof: [0; 32] });
        assert!(again.unwrap_err().reason.contains("out of turn"));
    }

    #[test]
    fn the_transcript_binds_the_cluster_ids_so_a_changed_one_breaks_the_proof() {
        let trust = secret("sixteen bytes at least");
        let (mut dialler, hello) =
            LinkHandshake::dial(trust.clone(), [1; 32], "d:1".into(), ClusterId(7));
        let mut acceptor = LinkHandshake::accept(trust, [2; 32], "a:2".into(), ClusterId(8));
        let Ok(LinkStep::Send(LinkMessage::Challenge { mut introduction, proof })) =
            acceptor.on_message(hello)
        else {
            panic!("no challenge");
        };
        // An on-path rewrite of the acceptor's cluster id invalidates its proof.
        introduction.cluster = ClusterId(7);
        let refusal = dialler.on_message(LinkMessage::Challenge { introduction, proof });
        assert!(refusal.unwrap_err().reason.contains("could not prove"));
    }
}
