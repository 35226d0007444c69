//! Air-gap transport for Tessera ceremonies.
//!
//! Everything that crosses the gap travels as a [`Bundle`]: a typed, versioned, checksummed CBOR
//! container around opaque payload bytes (manifests, envelopes, attestation documents, shares).
//! A bundle moves either as a file on a USB stick ([`usb`]) or as an animated, fountain-coded QR
//! stream ([`parts`] for the UR text, [`qr`] for the codes, terminal frames and images).
//!
//! ```
//! use airgap_bundle::{Bundle, parts::{PartEncoder, Scanner}};
//!
//! let bundle = Bundle::file("pcrs.json", b"{}".to_vec()).unwrap();
//! let bytes = bundle.encode();
//! let mut encoder = PartEncoder::with_defaults(&bytes).unwrap();
//! let mut scanner = Scanner::new();
//! while !scanner.is_complete() {
//!     scanner.receive(&encoder.next_part()).unwrap();
//! }
//! assert_eq!(Bundle::decode(&scanner.finish().unwrap()).unwrap(), bundle);
//! ```

mod bundle;
mod cbor;
pub mod frames;
pub mod parts;
pub mod qr;
pub mod receive;
pub mod usb;

pub use bundle::{
    Bundle, BundleError, BundleKind, BundleSummary, FORMAT_VERSION, Fingerprint, MAGIC,
    MAX_BUNDLE_BYTES, MAX_FILE_NAME_BYTES, MAX_LABEL_BYTES, MAX_PAYLOAD_BYTES, Metadata,
};
