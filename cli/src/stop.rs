//! SIGINT / SIGTERM as a stop request: the long-running commands (`tail`, `archive --follow`,
//! `bench`) check [`requested`] between steps instead of dying mid-write, so they acknowledge
//! what they wrote, close the database or remove their work directory before exiting.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::exit::{CliError, CliResult, Code};

/// Set by the handler; never cleared (one command runs per process).
static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the SIGINT / SIGTERM handler that sets the stop request.
pub fn install() -> CliResult {
    ctrlc::set_handler(|| STOP.store(true, Ordering::SeqCst))
        .map_err(|e| CliError::new(Code::Failure, format!("cannot install the signal handler: {e}")))
}

/// Whether SIGINT or SIGTERM arrived since [`install`].
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
