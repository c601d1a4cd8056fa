//! Any bytes, read as a stream of frames, must decode to messages (or clean errors)
//! without a panic, and every message that decodes must re-encode to its exact frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    radiant_protocol::fuzzing::decode_message_bytes(data);
});
