//! Any bytes, read as a radiant's system file (its identity, cluster id and
//! configurations, read from disk at every start), must decode or be refused with a
//! reason, never a panic, and a record that decodes must re-encode to the same bytes. An
//! input whose first byte is odd gets its correct checksum appended, so the decoder
//! behind the checksum is fuzzed too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radiant::core::system::SystemRecord;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, rest)) = input.split_first() else { return };
    let mut data = rest.to_vec();
    if selector % 2 == 1 {
        data.extend_from_slice(&crc32c::crc32c(rest).to_be_bytes());
    }
    if let Ok(record) = SystemRecord::decode(&data) {
        assert_eq!(record.encode().as_ref(), &data[..], "a system record re-encodes exactly");
    }
});
