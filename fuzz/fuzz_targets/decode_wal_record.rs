//! Any bytes, read as the write-ahead log's records (they come from disk: untrusted),
//! must decode or be judged torn or at an end without a panic, and every record that
//! decodes must re-encode to exactly the bytes it was read from. An input whose first
//! byte is odd is a record payload instead, framed with its correct length and checksum,
//! so the payload decoder behind the checksum is fuzzed too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radiant::storage::wal::{decode_record, RecordRead};

/// Small, so the fuzzer reaches the length check often.
const MAX_RECORD_BYTES: u32 = 1 << 16;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, rest)) = input.split_first() else { return };
    let framed;
    let data = if selector % 2 == 1 {
        let length = (rest.len() as u32).to_le_bytes();
        let checksum = crc32c::crc32c_append(crc32c::crc32c(&length), rest);
        framed = [&length[..], &checksum.to_le_bytes(), rest].concat();
        &framed[..]
    } else {
        rest
    };
    let mut offset = 0;
    // Bounded: every complete record consumes at least its header.
    while let RecordRead::Complete { record, consumed } =
        decode_record(&data[offset..], MAX_RECORD_BYTES)
    {
        let mut encoded = Vec::new();
        record.encode_into(&mut encoded);
        assert_eq!(encoded, &data[offset..offset + consumed], "a record re-encodes exactly");
        offset += consumed;
    }
});
