//! Untrusted bytes from the enclave side, as the egress proxy reads them: frames and requests
//! never panic, a request that decodes is its own canonical encoding, and an open request names
//! a destination that prints and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::egress::{Destination, EgressRequest, MAX_EGRESS_FRAME};
use tessera_core::protocol::read_frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = EgressRequest::decode(data) {
        assert_eq!(tessera_core::cbor::encode(&request), data);
        if let EgressRequest::Open { host, port } = &request {
            let dest = Destination::new(host, *port).expect("decode checked it");
            assert_eq!(dest.to_string().parse::<Destination>().unwrap(), dest);
        }
    }
    let mut stream = data;
    while let Ok(body) = read_frame(&mut stream, MAX_EGRESS_FRAME) {
        let _ = EgressRequest::decode(&body);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<Destination>();
        let _ = tessera_fetcher::url::HttpsUrl::parse(text);
    }
});
