//! The Nitro Secure Module: the real one through /dev/nsm, or a dev NSM that signs genuine
//! `COSE_Sign1` attestation documents with a P-384 chain generated at start.
//!
//! Both go through the same verifier on the member's side; the dev root must be pinned
//! explicitly there, and everything that shows it says DEV.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_bytes::ByteBuf;
use tessera_core::attestation::TrustAnchor;
use tessera_core::bytes::{ByteArray, Pcr};
use tessera_core::dev_pki::{DevCa, DevPki};
use tessera_core::pcr;

/// What the enclave needs from an NSM.
pub trait Nsm: Send {
    /// An attestation document binding the given fields.
    fn attest(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, String>;

    /// PCR0, PCR1, PCR2 of the running image, so a manifest for another image is refused early.
    fn image_pcrs(&self) -> Result<[Pcr; 3], String>;

    fn is_dev(&self) -> bool;

    /// The root this node trusts for other enclaves' documents (key forwarding): the AWS Nitro
    /// root for the hardware NSM, the dev root for a dev NSM.
    fn trust_anchor(&self) -> Result<TrustAnchor, String>;
}

/// The hardware NSM in a real Nitro enclave.
pub struct HardwareNsm {
    fd: i32,
}

impl HardwareNsm {
    pub fn open() -> Result<Self, String> {
        let fd = aws_nitro_enclaves_nsm_api::driver::nsm_init();
        if fd < 0 {
            return Err(
                "cannot open /dev/nsm: not running in a Nitro enclave? (use --dev locally)"
                    .to_owned(),
            );
        }
        Ok(Self { fd })
    }
}

impl Drop for HardwareNsm {
    fn drop(&mut self) {
        aws_nitro_enclaves_nsm_api::driver::nsm_exit(self.fd);
    }
}

impl Nsm for HardwareNsm {
    fn attest(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, String> {
        use aws_nitro_enclaves_nsm_api::api::{Request, Response};
        let req = Request::Attestation {
            user_data: user_data.map(|b| ByteBuf::from(b.to_vec())),
            nonce: nonce.map(|b| ByteBuf::from(b.to_vec())),
            public_key: public_key.map(|b| ByteBuf::from(b.to_vec())),
        };
        match aws_nitro_enclaves_nsm_api::driver::nsm_process_request(self.fd, req) {
            Response::Attestation { document } => Ok(document),
            Response::Error(e) => Err(format!("NSM refused the attestation request: {e:?}")),
            _ => Err("NSM gave an unexpected answer".to_owned()),
        }
    }

    fn image_pcrs(&self) -> Result<[Pcr; 3], String> {
        use aws_nitro_enclaves_nsm_api::api::{Request, Response};
        let mut out = [Pcr::default(); 3];
        for (i, slot) in out.iter_mut().enumerate() {
            match aws_nitro_enclaves_nsm_api::driver::nsm_process_request(
                self.fd,
                Request::DescribePCR { index: i as u16 },
            ) {
                Response::DescribePCR { data, .. } => {
                    *slot = Pcr::try_from(data.as_slice())?;
                }
                _ => return Err(format!("NSM could not describe PCR{i}")),
            }
        }
        Ok(out)
    }

    fn is_dev(&self) -> bool {
        false
    }

    fn trust_anchor(&self) -> Result<TrustAnchor, String> {
        Ok(tessera_core::attestation::aws_nitro_root_g1().clone())
    }
}

/// A local stand-in for the NSM: documents signed by a [`DevPki`] chain generated at start,
/// in the NSM's exact layout, verified by the same code as real ones.
pub struct DevNsm {
    pki: Mutex<DevPki>,
    root_pem: String,
    root_der: Vec<u8>,
    pcrs: Vec<(u8, Pcr)>,
}

/// The IAM role and instance id the dev NSM measures into PCR3 and PCR4.
pub const DEV_ROLE_ARN: &str = "arn:aws:iam::000000000000:role/tessera-dev";
pub const DEV_INSTANCE_ID: &str = "i-0000000000000dev0";

impl DevNsm {
    /// Generates the chain, under `ca` if given (dev nodes of one namespace share a root so
    /// they can verify each other), else under a fresh root. PCR0/1/2 are `image_pcrs` (from an
    /// EIF, or the dev binary's own measurement); PCR3 and PCR4 measure the dev role ARN and
    /// instance id.
    pub fn generate(image_pcrs: [Pcr; 3], ca: Option<&DevCa>) -> Result<Self, String> {
        let now = time::OffsetDateTime::now_utc();
        let pki = match ca {
            Some(ca) => DevPki::generate_under(ca, now)?,
            None => DevPki::generate(now)?,
        };
        let pcr3 = pcr::pcr3_from_role_arn(DEV_ROLE_ARN).map_err(|e| e.to_string())?;
        let pcr4 = pcr::pcr4_from_instance_id(DEV_INSTANCE_ID).map_err(|e| e.to_string())?;
        let mut pcrs = vec![
            (0, image_pcrs[0]),
            (1, image_pcrs[1]),
            (2, image_pcrs[2]),
            (3, ByteArray(pcr3.0)),
            (4, ByteArray(pcr4.0)),
        ];
        // The NSM reports 16 PCRs; unused ones are zero.
        pcrs.extend((5..16).map(|i| (i, Pcr::default())));
        Ok(Self {
            root_pem: pki.root_pem().to_owned(),
            root_der: pki.root_der().to_vec(),
            pki: Mutex::new(pki),
            pcrs,
        })
    }

    /// The dev root certificate, which an operator must pin explicitly (`--root`).
    #[must_use]
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    #[must_use]
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    #[must_use]
    pub fn pcr(&self, index: u8) -> Pcr {
        self.pcrs
            .iter()
            .find(|(i, _)| *i == index)
            .map_or_else(Pcr::default, |(_, p)| *p)
    }
}

impl Nsm for DevNsm {
    fn attest(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, String> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_millis() as u64;
        let pcrs: Vec<(u8, Vec<u8>)> = self.pcrs.iter().map(|(i, p)| (*i, p.0.to_vec())).collect();
        let pki = self.pki.lock().map_err(|_| "dev NSM lock poisoned")?;
        pki.document(now_ms, &pcrs, user_data, nonce, public_key)
    }

    fn image_pcrs(&self) -> Result<[Pcr; 3], String> {
        Ok([self.pcr(0), self.pcr(1), self.pcr(2)])
    }

    fn is_dev(&self) -> bool {
        true
    }

    fn trust_anchor(&self) -> Result<TrustAnchor, String> {
        TrustAnchor::from_der(&self.root_der).map_err(|e| e.to_string())
    }
}
