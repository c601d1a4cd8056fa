//! Codec throughput: encoding and decoding whole request frames (frame + message),
//! per message kind and value size, in bytes per second.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use radiant_protocol::{
    decode_frame, ClientRequest, ClientResponse, Limits, Message, ReadConsistency,
};

fn put(value_bytes: usize) -> Message {
    Message::Request(ClientRequest::Put {
        key: Bytes::from_static(b"user:1000:profile"),
        value: Bytes::from(vec![7u8; value_bytes]),
        session: None,
    })
}

fn messages() -> Vec<(&'static str, usize, Message)> {
    let get = Message::Request(ClientRequest::Get {
        key: Bytes::from_static(b"user:1000:profile"),
        consistency: ReadConsistency::Linearizable,
    });
    let result =
        Message::Response(ClientResponse::GetResult { value: Some(Bytes::from(vec![1u8; 100])) });
    vec![
        ("get", 0, get),
        ("get_result", 100, result),
        ("put", 100, put(100)),
        ("put", 4096, put(4096)),
        ("put", 65536, put(65536)),
    ]
}

fn encode(criterion: &mut Criterion) {
    let mut order_id = criterion.benchmark_group("encode");
    for (name, value_bytes, message) in messages() {
        let mut buffer = BytesMut::with_capacity(1 << 17);
        message.encode(1, &mut buffer);
        order_id.throughput(Throughput::Bytes(buffer.len() as u64));
        order_id.bench_function(BenchmarkId::new(name, value_bytes), |bencher| {
            bencher.iter(|| {
                buffer.clear();
                message.encode(1, &mut buffer);
                buffer.len()
            });
        });
    }
    order_id.finish();
}

/// Decodes a buffer holding 64 back-to-back frames, as a reactor read would.
fn decode(criterion: &mut Criterion) {
    let mut order_id = criterion.benchmark_group("decode");
    let limits = Limits::DEFAULT;
    for (name, value_bytes, message) in messages() {
        let mut encoded = BytesMut::new();
        for correlation_id in 0..64 {
            message.encode(correlation_id, &mut encoded);
        }
        let encoded = encoded.freeze();
        order_id.throughput(Throughput::Bytes(encoded.len() as u64));
        order_id.bench_function(BenchmarkId::new(name, value_bytes), |bencher| {
            bencher.iter(|| {
                let mut buffer = BytesMut::from(&encoded[..]);
                let mut count = 0;
                while let Ok(Some(frame)) = decode_frame(&mut buffer, limits.max_frame_bytes) {
                    if Message::decode(frame, &limits).is_ok() {
                        count += 1;
                    }
                }
                assert_eq!(count, 64);
            });
        });
    }
    order_id.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
