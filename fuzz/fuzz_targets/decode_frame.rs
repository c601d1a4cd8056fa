//! Any bytes, fed to the frame decoder whole and in fuzzer-chosen chunks, must decode to
//! the same frames and errors without a panic. The oracle lives in
//! `radiant_protocol::fuzzing` so the proptests run it on stable too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    radiant_protocol::fuzzing::decode_frame_bytes(data);
});
