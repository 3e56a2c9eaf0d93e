//! `payrules parse`: the payments of an ISO 20022 message as JSON (the contract of the
//! conformance kit).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::read_limited;

/// `payrules parse FILE`: the contract of the ISO 20022 conformance kit.
pub(super) fn parse(path: &Path) -> ExitCode {
    let refuse = |error: payrules::iso20022::IsoError| {
        let report = serde_json::json!({ "error": error });
        eprintln!("{report}");
        ExitCode::from(2)
    };
    let bytes = match read_limited(path, payrules::iso20022::limits::INPUT_BYTES_MAX as u64) {
        Ok(bytes) => bytes,
        Err(message) => return refuse(payrules::iso20022::IsoError::new("FF01", message)),
    };
    match payrules::iso20022::parse(&bytes) {
        Ok(message) => {
            let mut out = std::io::stdout().lock();
            match serde_json::to_writer(&mut out, &message)
                .and_then(|()| writeln!(out).map_err(serde_json::Error::io))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: cannot write the result: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(error) => refuse(error),
    }
}
