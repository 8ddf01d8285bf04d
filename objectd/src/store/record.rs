//! Per-object records and their on-disk encoding.
//!
//! Every value in the objects tree is `postcard(DiskRecord { format, record })`. A reader
//! refuses a format it does not know instead of guessing. Format 2 added the revocation
//! epoch; format 1 records still read (at epoch 0).

use clouds::NodeId;
use serde::{Deserialize, Serialize};

/// The on-disk format this build writes and reads.
pub const FORMAT_VERSION: u16 = 2;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The object lives here.
    Live {
        class: String,
        version: u64,
        /// The revocation epoch: capabilities granted at another epoch are void.
        epoch: u64,
        state: Vec<u8>,
    },
    /// The object moved to another node; kept so callers with stale locations are told
    /// where it went.
    Forward { to: NodeId, epoch: u64 },
}

#[derive(Serialize, Deserialize)]
struct DiskRecord {
    format: u16,
    record: Record,
}

/// Format 1: no revocation epoch.
#[derive(Deserialize)]
enum RecordV1 {
    Live { class: String, version: u64, state: Vec<u8> },
    Forward { to: NodeId, epoch: u64 },
}

#[derive(Deserialize)]
struct DiskRecordV1 {
    #[allow(dead_code)] // read to get past it
    format: u16,
    record: RecordV1,
}

pub fn encode(record: &Record) -> Vec<u8> {
    postcard::to_stdvec(&DiskRecord { format: FORMAT_VERSION, record: record.clone() }).expect("records always encode")
}

pub fn decode(bytes: &[u8]) -> Result<Record, String> {
    let (format, _) = postcard::take_from_bytes::<u16>(bytes).map_err(|e| format!("no format header: {e}"))?;
    if format == 1 {
        let disk: DiskRecordV1 = postcard::from_bytes(bytes).map_err(|e| format!("record does not decode: {e}"))?;
        return Ok(match disk.record {
            RecordV1::Live { class, version, state } => Record::Live { class, version, epoch: 0, state },
            RecordV1::Forward { to, epoch } => Record::Forward { to, epoch },
        });
    }
    if format != FORMAT_VERSION {
        return Err(format!(
            "record format {format} is not supported by this build (it reads formats 1 and {FORMAT_VERSION})"
        ));
    }
    let disk: DiskRecord = postcard::from_bytes(bytes).map_err(|e| format!("record does not decode: {e}"))?;
    Ok(disk.record)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that format 1 wrote for `Live { class: "Counter", version: 3, state: [6] }`:
    /// a later build must still read them.
    const FORMAT_1_LIVE: &[u8] = &[1, 0, 7, b'C', b'o', b'u', b'n', b't', b'e', b'r', 3, 1, 6];

    #[test]
    fn reads_what_format_1_wrote() {
        let r = decode(FORMAT_1_LIVE).unwrap();
        assert_eq!(r, Record::Live { class: "Counter".into(), version: 3, epoch: 0, state: vec![6] });
        assert_eq!(decode(&encode(&r)).unwrap(), r, "written again in format {FORMAT_VERSION}");
        assert_eq!(encode(&r)[0], FORMAT_VERSION as u8);
    }

    #[test]
    fn refuses_an_unknown_format() {
        let mut bytes = FORMAT_1_LIVE.to_vec();
        bytes[0] = 9;
        assert!(decode(&bytes).unwrap_err().contains("format 9 is not supported"));
    }

    #[test]
    fn forwarding_entries_round_trip() {
        let r = Record::Forward { to: NodeId(4), epoch: 2 };
        assert_eq!(decode(&encode(&r)).unwrap(), r);
    }
}
