//! Untrusted bytes from the host, as the enclave's listener reads them: frames and requests must
//! never panic, and a request that decodes is exactly its own canonical encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::protocol::{MAX_FRAME, Request, read_frame};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Request::decode(data) {
        assert_eq!(tessera_core::cbor::encode(&request), data);
    }
    let mut stream = data;
    while let Ok(body) = read_frame(&mut stream, MAX_FRAME) {
        let _ = Request::decode(&body);
    }
});
