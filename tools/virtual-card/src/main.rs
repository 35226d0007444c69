//! `tessera-virtual-card piv|openpgp [HOST:PORT]`: one virtual card in a vpcd reader.
//!
//! vpcd (vsmartcard's reader driver for pcscd) listens on localhost:35963 for the first reader
//! ("Virtual PCD 00 00") and :35964 for the second. The card connects there and serves APDUs
//! until pcscd goes away. Its state lives in memory only.

mod platform;
mod reader;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: tessera-virtual-card piv|openpgp [HOST:PORT]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(kind) = args.next() else {
        return usage();
    };
    let (default_addr, name) = match kind.as_str() {
        "piv" => ("localhost:35963", "piv"),
        "openpgp" => ("localhost:35964", "openpgp"),
        _ => return usage(),
    };
    let addr = args.next().unwrap_or_else(|| default_addr.to_owned());
    let connection = match vpicc::connect_socket(addr.as_str()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tessera-virtual-card: cannot reach vpcd at {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("tessera-virtual-card: {name} card attached to vpcd at {addr}");
    let result = platform::run(name, |client| match name {
        "piv" => {
            let applet = piv_authenticator::Authenticator::new(
                client,
                piv_authenticator::Options::default(),
            );
            connection.run(&mut reader::Card::new(applet))
        }
        _ => {
            let applet = opcard::Card::new(client, opcard::Options::default());
            connection.run(&mut reader::Card::new(applet))
        }
    });
    // `run` returns only when the reader goes away (pcscd stopped).
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera-virtual-card: {name} card detached: {e}");
            ExitCode::SUCCESS
        }
    }
}
