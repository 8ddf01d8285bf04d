//! `Blob`: bytes in fixed-size storage pages, so one object holds hundreds of MB while each
//! invocation moves only the pages it touches. Pages never written read as zeros.

use crate::index_key;
use clouds::{methods, Ctx, InvokeError, Object};
use serde::{Deserialize, Serialize};

/// Bytes per storage page.
pub const PAGE_SIZE: u64 = 64 * 1024;
/// The most bytes one `write_at` or `read_at` moves: under the RPC frame limit.
pub const MAX_IO: u64 = 4 * 1024 * 1024;

#[derive(Object, Default, Serialize, Deserialize)]
pub struct Blob {
    len: u64,
}

#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
pub enum BlobError {
    #[error("{requested} bytes in one call is more than the limit of {limit}; move the data in chunks")]
    TooLarge { requested: u64, limit: u64 },
    #[error(
        "{len} bytes at offset {offset} end past the largest offset a blob has ({}); nothing was written",
        u64::MAX
    )]
    PastTheEnd { offset: u64, len: u64 },
}

#[methods]
impl Blob {
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Writes `data` at `offset` (past the end: the gap reads as zeros); returns the new length.
    /// Data that would end past offset 2^64 - 1 is refused whole.
    pub async fn write_at(&mut self, ctx: &Ctx, offset: u64, data: Vec<u8>) -> Result<u64, InvokeError> {
        check_size(data.len() as u64)?;
        let len = data.len() as u64;
        let end = offset.checked_add(len).ok_or_else(|| InvokeError::app(BlobError::PastTheEnd { offset, len }))?;
        let mut pos = offset;
        let mut rest = &data[..];
        while !rest.is_empty() {
            let (page, within) = (pos / PAGE_SIZE, (pos % PAGE_SIZE) as usize);
            let n = rest.len().min(PAGE_SIZE as usize - within);
            let mut bytes = ctx.storage().get(&index_key(page)).await?.unwrap_or_default();
            if bytes.len() < within + n {
                bytes.resize(within + n, 0);
            }
            bytes[within..within + n].copy_from_slice(&rest[..n]);
            ctx.storage().put(&index_key(page), &bytes)?;
            pos += n as u64;
            rest = &rest[n..];
        }
        // An empty write changes nothing (as a zero-byte `pwrite`), not even the length.
        if len > 0 {
            self.len = self.len.max(end);
        }
        Ok(self.len)
    }

    /// Up to `len` bytes from `offset` (fewer at the end of the blob).
    pub async fn read_at(&self, ctx: &Ctx, offset: u64, len: u64) -> Result<Vec<u8>, InvokeError> {
        check_size(len)?;
        let end = offset.saturating_add(len).min(self.len);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut pos = offset;
        while pos < end {
            let (page, within) = (pos / PAGE_SIZE, (pos % PAGE_SIZE) as usize);
            let n = ((end - pos) as usize).min(PAGE_SIZE as usize - within);
            let bytes = ctx.storage().get(&index_key(page)).await?.unwrap_or_default();
            let stored = bytes.get(within..).unwrap_or(&[]);
            let m = stored.len().min(n);
            out.extend_from_slice(&stored[..m]);
            out.resize(out.len() + (n - m), 0); // unwritten bytes read as zeros
            pos += n as u64;
        }
        Ok(out)
    }
}

fn check_size(n: u64) -> Result<(), InvokeError> {
    if n > MAX_IO {
        return Err(InvokeError::app(BlobError::TooLarge { requested: n, limit: MAX_IO }));
    }
    Ok(())
}
