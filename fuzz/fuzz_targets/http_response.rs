//! Untrusted HTTP/1.1 responses as the fetcher reads them after TLS: never a panic, never a
//! body above the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_fetcher::http::read_response;

fuzz_target!(|data: &[u8]| {
    let mut input = std::io::Cursor::new(data);
    if let Ok(response) = read_response(&mut input, 4096) {
        assert!(response.body.len() <= 4096);
    }
});
