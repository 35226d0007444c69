//! Untrusted disaster-recovery input: recipient text from a genesis output or a manifest, an
//! identity file's text, and a genesis output's DR wrap opened with a fixed key (age's header
//! and payload parsers on attacker-chosen bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::dr::{self, DrRecipient, X25519Identity};
use tessera_core::objects::GenesisOutput;

// A fixed test identity (public in this file, protects nothing).
const IDENTITY: &str = "AGE-SECRET-KEY-1Q6MQS8RSUS30U7R4RRYE49U7W3H9J4ELUE2AK7SLZG8RCT7K2JLQN5GJ8Z";

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = text.parse::<DrRecipient>() {
            assert_eq!(r.to_string(), text);
        }
        let _ = X25519Identity::parse_file(text);
    }
    if let Ok(output) = GenesisOutput::decode(data) {
        let _ = dr::check_expected(&output, None);
        let identity = X25519Identity::parse_file(IDENTITY).expect("a valid identity");
        let _ = dr::recover(&output, identity.decryptor());
    }
});
