//! Untrusted bytes from the host's egress proxy, as the fetcher in the enclave reads them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::egress::{EgressResponse, MAX_CHUNK, MAX_EGRESS_FRAME};
use tessera_core::protocol::read_frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = EgressResponse::decode(data) {
        assert_eq!(tessera_core::cbor::encode(&response), data);
        if let EgressResponse::Data { data } = &response {
            assert!(data.len() <= MAX_CHUNK);
        }
    }
    let mut stream = data;
    while let Ok(body) = read_frame(&mut stream, MAX_EGRESS_FRAME) {
        let _ = EgressResponse::decode(&body);
    }
});
