//! Fault injection for tests (feature `testing`): makes the next archive batch fail at a chosen
//! step, as a real failure there would, so tests can check that a crash anywhere neither loses
//! nor duplicates an LSN. Production builds compile none of it: the archiver's hooks are
//! `cfg`-ed out with the feature.
//!
//! An injected fault surfaces as an ordinary [`ArchiveError::ObjectStore`] failure (what a lost
//! connection to the lake would give at any step) whose source is an [`InjectedFault`];
//! [`injected_fault`] finds it in an error's source chain.

use std::sync::Mutex;

use crate::archiver::Archiver;
use crate::error::ArchiveError;

/// A step of an archive batch at which a test can inject a failure
/// ([`Archiver::inject_fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// After a part read its first chunk of changes from the WAL, before it opened a file (other
    /// parts of the batch go on, and their files become orphans).
    AfterRead,
    /// After a part wrote its first chunk into a Parquet file, before it closed its files.
    WhileWriting,
    /// After the Parquet files were written, before the catalog commit.
    AfterDataFilesWritten,
    /// After the catalog commit, before the retain-from horizon moved.
    AfterCommit,
}

/// An injected failure: where, and whether it behaves like a process crash (files written so far
/// are left behind, as a real crash would) or like an ordinary error (cleaned up in process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Where to fail.
    pub point: FaultPoint,
    /// Leave written files behind instead of cleaning them up.
    pub crash: bool,
}

impl Fault {
    /// The error the batch fails with.
    pub(crate) fn error(self) -> ArchiveError {
        ArchiveError::ObjectStore(object_store::Error::Generic {
            store: "fault injection",
            source: Box::new(InjectedFault { point: self.point }),
        })
    }
}

/// The source of the error an injected fault makes a batch fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("injected fault at {point:?}")]
pub struct InjectedFault {
    /// Where it was injected.
    pub point: FaultPoint,
}

/// The point of the [`InjectedFault`] in `error`'s source chain (`error` itself included), if
/// there is one.
pub fn injected_fault(error: &(dyn std::error::Error + 'static)) -> Option<FaultPoint> {
    std::iter::successors(Some(error), |e| e.source()).find_map(|e| e.downcast_ref::<InjectedFault>()).map(|f| f.point)
}

/// The fault armed on one archiver (at most one, consumed when it fires).
#[derive(Debug, Default)]
pub(crate) struct FaultSlot(Mutex<Option<Fault>>);

impl Archiver {
    /// Makes the next archive batch fail at `fault.point` (once). `None` clears it.
    pub fn inject_fault(&self, fault: Option<Fault>) {
        *self.faults.0.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// The injected fault for `point`, consumed.
    pub(crate) fn take_fault(&self, point: FaultPoint) -> Option<Fault> {
        let mut slot = self.faults.0.lock().unwrap_or_else(|e| e.into_inner());
        match *slot {
            Some(f) if f.point == point => slot.take(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_injected_fault_is_an_object_store_error_found_by_its_source() {
        let error = Fault { point: FaultPoint::WhileWriting, crash: false }.error();
        assert!(matches!(error, ArchiveError::ObjectStore(_)), "{error:?}");
        assert_eq!(injected_fault(&error), Some(FaultPoint::WhileWriting));
        assert_eq!(error.to_string(), "object store: Generic fault injection error: injected fault at WhileWriting");
        assert_eq!(injected_fault(&ArchiveError::Config("x".into())), None);
    }
}
