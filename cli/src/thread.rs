//! The threads commands start (`demo`'s writers and subscriber, `bench`'s appenders): spawned
//! through [`std::thread::Builder`], so an OS that refuses a thread is an error, not a panic.

use std::thread::{Builder, Scope, ScopedJoinHandle};

use crate::exit::{CliError, CliResult, Code};

/// Starts a named scoped thread running `body`.
pub fn spawn_scoped<'scope, T: Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    name: String,
    body: impl FnOnce() -> T + Send + 'scope,
) -> CliResult<ScopedJoinHandle<'scope, T>> {
    Builder::new()
        .name(name.clone())
        .spawn_scoped(scope, body)
        .map_err(|e| CliError::new(Code::Failure, format!("cannot start thread {name}: {e}")))
}

/// Starts `count` scoped threads named `<name>-<i>`, thread `i` running `body(i)`. When one cannot
/// be started, the threads already running come back with the error: the caller still has to
/// stop and join them before the scope ends.
pub fn spawn_workers<'scope, T: Send + 'scope, F>(
    scope: &'scope Scope<'scope, '_>,
    name: &str,
    count: u64,
    body: impl Fn(u64) -> F,
) -> (Vec<ScopedJoinHandle<'scope, T>>, Option<CliError>)
where
    F: FnOnce() -> T + Send + 'scope,
{
    let mut handles = Vec::new();
    for i in 0..count {
        match spawn_scoped(scope, format!("{name}-{i}"), body(i)) {
            Ok(handle) => handles.push(handle),
            Err(e) => return (handles, Some(e)),
        }
    }
    (handles, None)
}
