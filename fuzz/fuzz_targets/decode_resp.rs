//! Any bytes on a RESP port must decode into requests or a protocol error, never a
//! panic, whatever the chunks they arrive in; a request that decodes re-encodes to the
//! same arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    radiant_protocol::fuzzing::decode_resp_bytes(data);
});
