//! Micro-benchmark of the broker's hottest path: decoding and encoding a PUBLISH with a 64-byte
//! payload, for MQTT 3.1.1 and 5.0. Criterion reports per-packet time and byte throughput.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringmq_codec::{
    decode, decode_body, encode_publish, frame, Packet, Properties, Protocol, Publish, QoS,
};

fn sample() -> Publish {
    let properties = Properties {
        message_expiry_interval_s: Some(60),
        subscription_identifiers: [7].into_iter().collect(),
        ..Properties::default()
    };
    Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: ByteString::from_static("sensors/building-1/floor-2/temperature"),
        packet_id: 4242,
        properties,
        payload: Bytes::from(vec![0xA5u8; 64]),
    }
}

fn bench(c: &mut Criterion) {
    let p = sample();
    for (name, protocol) in [("v311", Protocol::V311), ("v5", Protocol::V5)] {
        let mut wire = BytesMut::new();
        encode_publish(&p, protocol, &mut wire).expect("encode");
        let wire = wire.freeze();
        let f = frame(&wire, usize::MAX).expect("frame").expect("complete");
        let body = wire.slice(f.header_len..);

        let mut g = c.benchmark_group(format!("publish64_{name}"));
        g.throughput(Throughput::Bytes(wire.len() as u64));

        g.bench_function("decode", |b| {
            b.iter_batched_ref(
                || BytesMut::from(&wire[..]),
                |buf| {
                    let got = decode(buf, protocol, usize::MAX);
                    debug_assert!(matches!(got, Ok(Some(Packet::Publish(_)))));
                    black_box(got)
                },
                BatchSize::SmallInput,
            )
        });
        // The body alone, as a frozen slice: what decode costs once framing is done.
        g.bench_function("decode_body", |b| {
            b.iter(|| black_box(decode_body(f.header, black_box(body.clone()), protocol)))
        });
        let mut out = BytesMut::with_capacity(4096);
        g.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                encode_publish(black_box(&p), protocol, &mut out).expect("encode");
                black_box(out.len())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
