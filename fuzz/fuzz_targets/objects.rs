//! Untrusted ceremony objects a member or the enclave receives: member descriptors, provision
//! requests, genesis outputs and share submissions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::objects::{GenesisOutput, MemberDescriptor, ProvisionRequest, ShareSubmission};

fuzz_target!(|data: &[u8]| {
    let _ = MemberDescriptor::decode(data);
    let _ = ProvisionRequest::decode(data);
    let _ = GenesisOutput::decode(data);
    let _ = ShareSubmission::decode(data);
});
