//! Any bytes, read as frames from the other side of a peer link, driven through the
//! link handshake the daemon runs (`radiant::server::link_auth`), as the dialler or the
//! acceptor: no panic, and without the secret the link is never trusted (the fuzzer
//! cannot compute an HMAC, so a trusted link would be a way around the proof).
#![no_main]

use std::sync::Arc;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use radiant::server::link_auth::{LinkHandshake, LinkStep, LinkTrust};
use radiant_protocol::{decode_frame, ClusterId, Limits, Message};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let trust = Arc::new(LinkTrust::Secret {
        present: b"the fuzzer does not know this".to_vec(),
        also_accepted: (selector & 2 != 0).then(|| b"nor this second secret".to_vec()),
    });
    let me = "127.0.0.1:7400".to_string();
    let mut handshake = if selector & 1 == 0 {
        LinkHandshake::accept(trust, [1; 32], me, ClusterId(7))
    } else {
        LinkHandshake::dial(trust, [2; 32], me, ClusterId::UNSET).0
    };
    let mut buffer = BytesMut::from(stream);
    while let Ok(Some(frame)) = decode_frame(&mut buffer, Limits::DEFAULT.max_frame_bytes) {
        let Ok(Message::Link(message)) = Message::decode(frame, &Limits::DEFAULT) else {
            continue;
        };
        match handshake.on_message(message) {
            Ok(LinkStep::Send(_)) => {}
            Ok(LinkStep::Trusted { .. }) => panic!("a link was trusted without the secret"),
            Err(_) => return,
        }
    }
});
