//! Verifiable HTTPS fetches from inside the enclave.
