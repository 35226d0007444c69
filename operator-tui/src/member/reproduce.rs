//! PCR0-2 measured on the member's side: from an EIF they built, or from a builders' statement
//! verified against their keyring. Both the CLI and the app build their [`Reproduced`] here.

use std::path::{Path, PathBuf};

use tessera_core::bytes::Pcr;

use super::review::{Reproduced, ReproducedFrom};

fn read(p: &Path) -> Result<Vec<u8>, String> {
    airgap_bundle::usb::read_limited(p, 1 << 30).map_err(|e| format!("{}: {e}", p.display()))
}

/// Measures an EIF.
pub fn from_eif(path: &Path) -> Result<Reproduced, String> {
    let m =
        tessera_core::eif::measure(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Reproduced {
        pcrs: [
            Pcr::from_array(m.pcr0.0),
            Pcr::from_array(m.pcr1.0),
            Pcr::from_array(m.pcr2.0),
        ],
        source: ReproducedFrom::Eif(name),
    })
}

/// A builders' statement with its detached signatures, checked against a keyring folder.
#[derive(Debug, Clone, Default)]
pub struct StatementInput {
    pub statement: Option<PathBuf>,
    pub signatures: Vec<PathBuf>,
    pub keyring: Option<PathBuf>,
    pub threshold: usize,
}

/// Verifies the statement, if one was given.
pub fn from_statement(input: &StatementInput) -> Result<Option<Reproduced>, String> {
    let (Some(statement), Some(keyring)) = (&input.statement, &input.keyring) else {
        return Ok(None);
    };
    let sigs = input
        .signatures
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let ring = crate::openpgp::Keyring::from_dir(keyring).map_err(|e| e.to_string())?;
    let v = crate::openpgp::verify_statement(&read(statement)?, &sigs, &ring, input.threshold)
        .map_err(|e| format!("{}: {e}", statement.display()))?;
    Ok(Some(Reproduced {
        pcrs: v.pcrs.map(Pcr::from_array),
        source: ReproducedFrom::Builders {
            fingerprints: v.signer_fingerprints,
            names: v.signers,
        },
    }))
}

/// From an EIF, a statement, or both (which must then agree).
pub fn reproduce(
    eif: Option<&Path>,
    statement: &StatementInput,
) -> Result<Option<Reproduced>, String> {
    let from_eif = eif.map(from_eif).transpose()?;
    match (from_eif, from_statement(statement)?) {
        (Some(e), Some(s)) => {
            if e.pcrs != s.pcrs {
                return Err(format!(
                    "PCRs reproduced from the {} differ from the {}",
                    e.source.describe(),
                    s.source.describe()
                ));
            }
            // The EIF the member built is the stronger source; the statement agrees with it.
            Ok(Some(e))
        }
        (one, other) => Ok(one.or(other)),
    }
}
