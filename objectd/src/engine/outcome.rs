//! How a method's run becomes a reply: deadline and panic handling, and replies recorded
//! under a call id.

use clouds::{BoxFuture, Codec, InvokeError, MethodInfo};
use futures::FutureExt;
use protocol::Invocation;
use std::panic::AssertUnwindSafe;
use tokio::time::{timeout_at, Instant};

/// Runs a method future under the thread's deadline, turning a panic into `Panicked`.
pub(super) async fn guarded(
    run: BoxFuture<'_, Result<Vec<u8>, InvokeError>>,
    inv: &Invocation,
    method: &MethodInfo,
    deadline: Instant,
) -> Result<Vec<u8>, InvokeError> {
    match timeout_at(deadline, AssertUnwindSafe(run).catch_unwind()).await {
        Err(_) => Err(deadline_error(inv)),
        Ok(Err(panic)) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            Err(InvokeError::Panicked { method: method.name.clone(), message })
        }
        Ok(Ok(result)) => result,
    }
}

/// The thread ran out of time in this invocation (waiting for a lock, or running).
pub(super) fn deadline_error(inv: &Invocation) -> InvokeError {
    InvokeError::DeadlineExceeded {
        object: inv.target,
        method: inv.method.clone(),
        elapsed_ms: inv.thread.remaining_ms,
    }
}

/// A reply as recorded under a call id: the codec it was encoded in, and the bytes.
pub(super) fn record_reply(codec: Codec, reply: &[u8]) -> Vec<u8> {
    postcard::to_stdvec(&(codec, reply)).expect("replies always encode")
}

pub(super) fn replay(recorded: Vec<u8>, codec: Codec, call: &str) -> Result<Vec<u8>, InvokeError> {
    let (recorded_codec, reply): (Codec, Vec<u8>) = postcard::from_bytes(&recorded)
        .map_err(|e| InvokeError::storage(format!("recorded reply of call `{call}` does not decode: {e}")))?;
    if recorded_codec != codec {
        return Err(InvokeError::invalid(format!(
            "call id `{call}` was first used with {recorded_codec:?} arguments; a retry must use the same codec"
        )));
    }
    Ok(reply)
}
