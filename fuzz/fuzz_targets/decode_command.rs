//! Any bytes, read as one replicated log command, must decode or fail cleanly, and a
//! command that decodes must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    radiant_protocol::fuzzing::decode_command_bytes(data);
});
