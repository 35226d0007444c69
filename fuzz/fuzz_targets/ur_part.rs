//! Untrusted QR and scanner text: each line is a UR part fed to one scanner, which must never
//! panic whatever order, repetition or mix of streams it sees.
//!
//! Random text almost never passes the bytewords checksum, so the input is also read as a list
//! of part headers and data, wrapped with valid checksums: that reaches the stream checks and
//! the elimination solver behind them.
#![no_main]

use airgap_bundle::parts::{Scanner, parse_part};
use libfuzzer_sys::fuzz_target;

fn uint(out: &mut Vec<u8>, major: u8, v: u64) {
    let m = major << 5;
    match v {
        0..=23 => out.push(m | v as u8),
        24..=0xff => out.extend([m | 24, v as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((v as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend((v as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend(v.to_be_bytes());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut scanner = Scanner::new();
        for line in text.lines() {
            let _ = parse_part(line);
            let _ = scanner.receive(line);
        }
    }

    // Records: seq (1 byte), count (1 byte), length (2 bytes), checksum (1 byte), data (rest).
    let mut scanner = Scanner::new();
    for record in data.split(|&b| b == b'\n') {
        let [seq, count, l0, l1, crc, payload @ ..] = record else { continue };
        let (seq, count) = (u64::from(*seq), u64::from(*count));
        let mut cbor = vec![0x85];
        uint(&mut cbor, 0, seq);
        uint(&mut cbor, 0, count);
        uint(&mut cbor, 0, u64::from(u16::from_be_bytes([*l0, *l1])));
        uint(&mut cbor, 0, u64::from(*crc));
        uint(&mut cbor, 2, payload.len() as u64);
        cbor.extend_from_slice(payload);
        let words = ur::bytewords::encode(&cbor, ur::bytewords::Style::Minimal);
        let _ = scanner.receive(&format!("ur:tessera-bundle/{seq}-{count}/{words}"));
    }
    let _ = scanner.finish();
});
