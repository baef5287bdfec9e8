//! Byte layout of segments, records and footers (documented in `docs/FORMAT.md`).
//!
//! Everything here is pure: encode into a buffer, decode from a slice. Decoders never panic and
//! never allocate based on a length read from the input; they return a [`FrameError`] instead.
//! All integers are little-endian.

use crate::Lsn;

/// Magic at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"WALDNSEG";
/// Magic at the start of a sealed segment's footer.
pub const FOOTER_MAGIC: [u8; 8] = *b"WALDNFTR";
/// Magic at the very end of a sealed segment (the last 8 bytes of the trailer).
pub const TRAILER_MAGIC: [u8; 8] = *b"WALDSEAL";
/// The segment format version this crate writes (new segments carry it in their header).
///
/// Version 2 added [`FLAG_SYNC_START`], which recovery uses to tell an interrupted write of
/// preallocated space from corruption; version 1 segments (written by older builds, whose
/// records never carry the flag) are still read and appended to. Older builds refuse version 2
/// segments with `UnsupportedVersion` rather than misreading the flag.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest segment format version this crate reads.
pub const MIN_FORMAT_VERSION: u16 = 1;
/// The first segment format version whose records carry [`FLAG_SYNC_START`]: the writer marks
/// writes and preallocates, and recovery recognises interrupted writes, only in such segments.
pub const SYNC_START_FORMAT_VERSION: u16 = 2;
/// The version of the footer layout (unchanged since format version 1).
pub const FOOTER_VERSION: u16 = 1;
/// Size of the segment header in bytes.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// Size of a record header in bytes.
pub const RECORD_HEADER_LEN: usize = 32;
/// Size of the fixed part of the footer in bytes (before the index and hole entries).
pub const FOOTER_FIXED_LEN: usize = 72;
/// Size of the trailer that ends a sealed segment: footer length, footer CRC, magic.
pub const TRAILER_LEN: usize = 16;
/// Size of one sparse-index entry in the footer: LSN and byte offset.
pub const INDEX_ENTRY_LEN: usize = 16;
/// Size of one hole entry in the footer: start and end byte offsets.
pub const HOLE_ENTRY_LEN: usize = 16;
/// Length of [`ZEROS`]: the chunk in which preallocated space is zero-filled and checked.
pub const ZERO_BLOCK_LEN: usize = 64 << 10;

/// A block of zeros: the source of the writer's zero-filled preallocation (no allocation per
/// fill) and what [`is_zeroed`] compares against.
pub static ZEROS: [u8; ZERO_BLOCK_LEN] = [0; ZERO_BLOCK_LEN];

/// Whether every byte of `bytes` is zero (true for an empty slice). Compares block-wise, so a
/// preallocated tail of megabytes is checked at memory speed; stops at the first non-zero block.
pub fn is_zeroed(bytes: &[u8]) -> bool {
    bytes.chunks(ZERO_BLOCK_LEN).all(|block| block == &ZEROS[..block.len()])
}

/// Whether `bytes[from..to]` holds what a lost sector of an interrupted overwrite of zero-filled
/// space leaves behind: for some multiple `a` of [`SECTOR_BYTES`] with `from < a <= to`, the bytes
/// from `max(from, a - SECTOR_BYTES)` up to `a` are all zero.
///
/// Recovery asks this of the damaged bytes between the first invalid record (`from`) and the
/// next valid one (`to`). A sector of such a write that did not reach the disk reads as it was
/// before: zeros from where the write began, so the first invalid record (which overlaps it)
/// and everything up to the sector's end hold zeros there. Damage without such zeros (a flipped
/// bit, garbage) is never taken for an interrupted write.
pub fn torn_write_evidence(bytes: &[u8], from: usize, to: usize) -> bool {
    let to = to.min(bytes.len());
    let sector = SECTOR_BYTES as usize;
    let mut boundary = (from / sector + 1) * sector;
    while boundary <= to {
        if is_zeroed(&bytes[from.max(boundary - sector)..boundary]) {
            return true;
        }
        boundary += sector;
    }
    false
}

/// Marker in every record header. Zeroed or foreign bytes almost never carry it, and the CRC and
/// LSN checks catch the rest.
pub const RECORD_MARKER: u16 = 0x57A1;
/// Record flag: the payload is a zstd frame preceded by the uncompressed length (u32 LE).
pub const FLAG_COMPRESSED: u8 = 0b0000_0001;
/// Record flag: this record is the last of an atomically appended batch.
pub const FLAG_BATCH_END: u8 = 0b0000_0010;
/// Record flag (format version 2): this record starts a new write. In the durable sync modes the
/// writer sets it on the first record written after the `fdatasync` that acknowledged every
/// record before it; a record without it was written by the same `io` holder as its
/// predecessor, in one write that is acknowledged only once all of it is synced. In the other
/// modes every batch's first record carries it.
/// Recovery uses it to tell an interrupted write (damage followed only by records of that same
/// write) from corruption (docs/FORMAT.md, "Recovery").
pub const FLAG_SYNC_START: u8 = 0b0000_0100;
/// All flags this version understands; any other bit set makes the record invalid.
pub const KNOWN_FLAGS: u8 = FLAG_COMPRESSED | FLAG_BATCH_END | FLAG_SYNC_START;
/// The sector size recovery assumes for [`torn_write_evidence`]: the smallest unit a disk writes
/// atomically, and what a lost sector of an interrupted overwrite reverts to as a whole.
pub const SECTOR_BYTES: u64 = 512;
/// Largest LSN a record, segment header or footer may carry (`i64::MAX`, so an LSN also fits a
/// signed 64-bit column). Decoders reject larger values, so `lsn + 1` on a decoded LSN cannot
/// overflow whatever the bytes on disk say.
pub const MAX_LSN: Lsn = i64::MAX as Lsn;
/// Largest stored payload the format allows (the ceiling of `max_record_size_bytes`).
pub const MAX_STORED_RECORD_BYTES: u32 = 1 << 30;
/// Upper bound on index entries a footer may declare (guards allocation when decoding).
pub const MAX_FOOTER_ENTRIES: u32 = 1 << 22;

/// Why a byte range is not a valid header, record or footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the structure needs.
    Truncated {
        /// Bytes needed.
        needed_bytes: u64,
        /// Bytes available.
        available_bytes: u64,
    },
    /// The bytes are all zero (end of written data, or preallocated space).
    Zeroed,
    /// A magic number or marker does not match.
    BadMagic,
    /// The format version is not one this build reads.
    UnsupportedVersion(u16),
    /// The checksum does not match the content.
    BadChecksum {
        /// Checksum stored in the bytes.
        stored: u32,
        /// Checksum computed over the bytes.
        computed: u32,
    },
    /// A field has a value that is impossible for this structure.
    Invalid(&'static str),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Truncated { needed_bytes, available_bytes } => {
                write!(f, "truncated: need {needed_bytes} bytes, have {available_bytes}")
            }
            FrameError::Zeroed => write!(f, "all-zero bytes"),
            FrameError::BadMagic => write!(f, "bad magic"),
            FrameError::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            FrameError::BadChecksum { stored, computed } => {
                write!(f, "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
            FrameError::Invalid(what) => write!(f, "invalid field: {what}"),
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn need(bytes: &[u8], n: usize) -> Result<(), FrameError> {
    if bytes.len() < n {
        return Err(FrameError::Truncated { needed_bytes: n as u64, available_bytes: bytes.len() as u64 });
    }
    Ok(())
}

/// CRC-32 (IEEE, via crc32fast) of `bytes`. Its value over all-zero input is never zero for
/// non-empty input, so zero-filled space cannot validate.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The fixed header at the start of every segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment format version ([`MIN_FORMAT_VERSION`]..=[`FORMAT_VERSION`]); new segments are
    /// written in [`FORMAT_VERSION`].
    pub version: u16,
    /// Random identifier of the log; every segment of one log carries the same value.
    pub log_id: u64,
    /// LSN of the first record this segment holds (also its file name).
    pub first_lsn: Lsn,
    /// LSN of the last record of the previous segment (`first_lsn - 1`, or 0 for the first).
    pub prev_last_lsn: Lsn,
    /// CRC of the last record before this segment: the chain seed for its first record.
    pub prev_crc: u32,
    /// Wall-clock creation time, microseconds since the Unix epoch.
    pub created_at_us: u64,
}

impl SegmentHeader {
    /// Encodes the header into exactly [`SEGMENT_HEADER_LEN`] bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10..12].copy_from_slice(&(SEGMENT_HEADER_LEN as u16).to_le_bytes());
        // 12..16 flags: none defined.
        b[16..24].copy_from_slice(&self.log_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_lsn.to_le_bytes());
        b[32..40].copy_from_slice(&self.prev_last_lsn.to_le_bytes());
        b[40..44].copy_from_slice(&self.prev_crc.to_le_bytes());
        // 44..48 reserved.
        b[48..56].copy_from_slice(&self.created_at_us.to_le_bytes());
        // 56..60 reserved.
        let crc = crc32(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and validates a header from the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, FrameError> {
        need(bytes, SEGMENT_HEADER_LEN)?;
        let b = &bytes[..SEGMENT_HEADER_LEN];
        if b.iter().all(|&x| x == 0) {
            return Err(FrameError::Zeroed);
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(FrameError::BadMagic);
        }
        let version = u16_at(b, 8);
        if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let stored = u32_at(b, 60);
        let computed = crc32(&b[0..60]);
        if stored != computed {
            return Err(FrameError::BadChecksum { stored, computed });
        }
        if u16_at(b, 10) as usize != SEGMENT_HEADER_LEN {
            return Err(FrameError::Invalid("segment header length"));
        }
        if u32_at(b, 12) != 0 || u32_at(b, 44) != 0 || u32_at(b, 56) != 0 {
            return Err(FrameError::Invalid("segment header reserved bits"));
        }
        let header = SegmentHeader {
            version,
            log_id: u64_at(b, 16),
            first_lsn: u64_at(b, 24),
            prev_last_lsn: u64_at(b, 32),
            prev_crc: u32_at(b, 40),
            created_at_us: u64_at(b, 48),
        };
        if header.first_lsn == 0 {
            return Err(FrameError::Invalid("segment first LSN is 0"));
        }
        if header.first_lsn > MAX_LSN {
            return Err(FrameError::Invalid("segment first LSN above the maximum"));
        }
        if header.prev_last_lsn >= header.first_lsn {
            return Err(FrameError::Invalid("segment previous LSN not below first LSN"));
        }
        Ok(header)
    }
}

/// The fixed part of a record, as stored before its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// CRC over header bytes 4..32 followed by the stored payload.
    pub crc: u32,
    /// Caller-defined record kind.
    pub kind: u8,
    /// [`FLAG_COMPRESSED`], [`FLAG_BATCH_END`].
    pub flags: u8,
    /// Length of the stored payload in bytes (after compression, if any).
    pub stored_len: u32,
    /// CRC of the previous record in the log (ties the record to its place).
    pub prev_crc: u32,
    /// The record's log sequence number.
    pub lsn: Lsn,
    /// Append time, microseconds since the Unix epoch.
    pub timestamp_us: u64,
}

impl RecordHeader {
    /// Whether this record ends its batch.
    pub fn is_batch_end(&self) -> bool {
        self.flags & FLAG_BATCH_END != 0
    }

    /// Whether this record starts a new write ([`FLAG_SYNC_START`]).
    pub fn is_sync_start(&self) -> bool {
        self.flags & FLAG_SYNC_START != 0
    }

    /// Whether the payload is zstd-compressed.
    pub fn is_compressed(&self) -> bool {
        self.flags & FLAG_COMPRESSED != 0
    }

    /// Total bytes of the record on disk (header plus stored payload).
    pub fn total_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + u64::from(self.stored_len)
    }

    /// Writes header bytes 4..32 (everything the CRC covers) into `out`.
    fn encode_tail(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&RECORD_MARKER.to_le_bytes());
        out[2] = self.kind;
        out[3] = self.flags;
        out[4..8].copy_from_slice(&self.stored_len.to_le_bytes());
        out[8..12].copy_from_slice(&self.prev_crc.to_le_bytes());
        out[12..20].copy_from_slice(&self.lsn.to_le_bytes());
        out[20..28].copy_from_slice(&self.timestamp_us.to_le_bytes());
    }

    /// Computes the record CRC for this header and a payload whose own CRC-32 is `payload_crc`.
    /// Uses CRC combination so the payload need not be re-read under a lock.
    pub fn compute_crc(&self, payload_crc: u32) -> u32 {
        let mut tail = [0u8; RECORD_HEADER_LEN - 4];
        self.encode_tail(&mut tail);
        let mut h = crc32fast::Hasher::new();
        h.update(&tail);
        let p = crc32fast::Hasher::new_with_initial_len(payload_crc, u64::from(self.stored_len));
        h.combine(&p);
        h.finalize()
    }

    /// Encodes the header (with `self.crc` as given) into [`RECORD_HEADER_LEN`] bytes.
    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut b = [0u8; RECORD_HEADER_LEN];
        b[0..4].copy_from_slice(&self.crc.to_le_bytes());
        self.encode_tail(&mut b[4..]);
        b
    }

    /// Decodes the header fields at the start of `bytes` and checks the structure (marker, flags,
    /// length bound). Does not check the CRC: see [`verify_record`].
    pub fn decode(bytes: &[u8], max_stored_len: u32) -> Result<RecordHeader, FrameError> {
        need(bytes, RECORD_HEADER_LEN)?;
        let b = &bytes[..RECORD_HEADER_LEN];
        if b.iter().all(|&x| x == 0) {
            return Err(FrameError::Zeroed);
        }
        if u16_at(b, 4) != RECORD_MARKER {
            return Err(FrameError::BadMagic);
        }
        let header = RecordHeader {
            crc: u32_at(b, 0),
            kind: b[6],
            flags: b[7],
            stored_len: u32_at(b, 8),
            prev_crc: u32_at(b, 12),
            lsn: u64_at(b, 16),
            timestamp_us: u64_at(b, 24),
        };
        if header.flags & !KNOWN_FLAGS != 0 {
            return Err(FrameError::Invalid("unknown record flags"));
        }
        if header.stored_len > max_stored_len {
            return Err(FrameError::Invalid("record length above the configured maximum"));
        }
        if header.lsn == 0 {
            return Err(FrameError::Invalid("record LSN is 0"));
        }
        if header.lsn > MAX_LSN {
            return Err(FrameError::Invalid("record LSN above the maximum"));
        }
        Ok(header)
    }
}

/// Decodes the record at the start of `bytes` and verifies its CRC; returns the header and the
/// stored payload range within `bytes`.
pub fn verify_record(bytes: &[u8], max_stored_len: u32) -> Result<(RecordHeader, std::ops::Range<usize>), FrameError> {
    let header = RecordHeader::decode(bytes, max_stored_len)?;
    let total = header.total_len();
    if (bytes.len() as u64) < total {
        return Err(FrameError::Truncated { needed_bytes: total, available_bytes: bytes.len() as u64 });
    }
    let payload = RECORD_HEADER_LEN..RECORD_HEADER_LEN + header.stored_len as usize;
    // Header tail and payload are contiguous: one pass (faster than two updates for small records).
    let computed = crc32(&bytes[4..payload.end]);
    if computed != header.crc {
        return Err(FrameError::BadChecksum { stored: header.crc, computed });
    }
    Ok((header, payload))
}

/// Largest stored payload whose record CRC [`encode_record`] computes in one pass over the
/// header tail and the payload. Above it, the payload's own CRC is computed beforehand (outside
/// the WAL's append lock) and combined with the header's ([`RecordHeader::compute_crc`]).
///
/// Combining costs ~0.3–0.4 µs whatever the payload size, while hashing runs at several GB/s
/// (~0.1 µs for 128 bytes), so hashing again is cheaper up to about 2 KiB; 1 KiB keeps the work
/// done under the lock small. Either way the CRC value is the same (the format does not depend
/// on this choice).
pub const DIRECT_CRC_MAX_PAYLOAD_BYTES: usize = 1024;

/// Whether [`encode_record`] needs the payload's own CRC for a stored payload of
/// `stored_len` bytes (true above [`DIRECT_CRC_MAX_PAYLOAD_BYTES`]).
pub fn payload_crc_needed(stored_len: usize) -> bool {
    stored_len > DIRECT_CRC_MAX_PAYLOAD_BYTES
}

/// Appends one encoded record (header + payload) to `out`; returns the record's CRC.
///
/// When [`payload_crc_needed`]`(payload.len())`, `payload_crc` must be `crc32(payload)` and is
/// combined with the header's CRC; otherwise it is ignored (pass 0) and the CRC is computed over
/// the encoded header tail and payload in one pass.
pub fn encode_record(out: &mut Vec<u8>, mut header: RecordHeader, payload: &[u8], payload_crc: u32) -> u32 {
    debug_assert_eq!(payload.len(), header.stored_len as usize);
    if payload_crc_needed(payload.len()) {
        debug_assert_eq!(payload_crc, crc32(payload));
        header.crc = header.compute_crc(payload_crc);
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(payload);
        return header.crc;
    }
    // Encode with a placeholder CRC, hash the contiguous bytes it covers (4..end), patch it in.
    let start = out.len();
    header.crc = 0;
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(payload);
    let crc = crc32(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    crc
}

/// Decompresses a compressed stored payload (`u32` raw length + zstd frame), refusing anything
/// that would exceed `max_raw_len` bytes.
pub fn decompress_payload(stored: &[u8], max_raw_len: u32) -> Result<Vec<u8>, FrameError> {
    need(stored, 4)?;
    let raw_len = u32_at(stored, 0);
    if raw_len > max_raw_len {
        return Err(FrameError::Invalid("uncompressed length above the configured maximum"));
    }
    let mut out = Vec::with_capacity(raw_len as usize);
    let mut decoder = zstd::bulk::Decompressor::new().map_err(|_| FrameError::Invalid("zstd init"))?;
    let n = decoder.decompress_to_buffer(&stored[4..], &mut out).map_err(|_| FrameError::Invalid("zstd frame"))?;
    if n != raw_len as usize {
        return Err(FrameError::Invalid("uncompressed length mismatch"));
    }
    Ok(out)
}

/// Compresses `raw` into the stored form (`u32` raw length + zstd frame).
pub fn compress_payload(raw: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    let frame = zstd::bulk::compress(raw, level)?;
    let mut out = Vec::with_capacity(4 + frame.len());
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&frame);
    Ok(out)
}

/// One sparse-index entry: the record with `lsn` starts at byte `offset` of the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// LSN of the record.
    pub lsn: Lsn,
    /// Byte offset of the record's header within the segment file.
    pub offset: u64,
}

/// A byte range of a sealed segment that salvage recovery found unreadable and skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hole {
    /// First byte of the damaged range.
    pub start_offset: u64,
    /// First byte after the damaged range (where the next valid record starts).
    pub end_offset: u64,
}

/// The footer written when a segment is sealed; lets `open` trust the segment without a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// First LSN stored in the segment.
    pub first_lsn: Lsn,
    /// Last LSN stored in the segment.
    pub last_lsn: Lsn,
    /// Number of records in the segment.
    pub record_count: u64,
    /// Offset where record data ends and the footer starts.
    pub data_end_offset: u64,
    /// CRC of the last record (the chain seed for the next segment).
    pub last_crc: u32,
    /// Seal time, microseconds since the Unix epoch.
    pub sealed_at_us: u64,
    /// Sparse index, ascending by LSN and offset; the first entry is the first record.
    pub index: Vec<IndexEntry>,
    /// Damaged ranges skipped by salvage recovery (normally empty), ascending.
    pub holes: Vec<Hole>,
}

impl Footer {
    /// Encoded size of the footer including the trailer.
    pub fn encoded_len(&self) -> usize {
        FOOTER_FIXED_LEN + self.index.len() * INDEX_ENTRY_LEN + self.holes.len() * HOLE_ENTRY_LEN + TRAILER_LEN
    }

    /// Appends the footer and trailer to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&FOOTER_MAGIC);
        out.extend_from_slice(&FOOTER_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(self.index.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.holes.len() as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.first_lsn.to_le_bytes());
        out.extend_from_slice(&self.last_lsn.to_le_bytes());
        out.extend_from_slice(&self.record_count.to_le_bytes());
        out.extend_from_slice(&self.data_end_offset.to_le_bytes());
        out.extend_from_slice(&self.last_crc.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.sealed_at_us.to_le_bytes());
        debug_assert_eq!(out.len() - start, FOOTER_FIXED_LEN);
        for e in &self.index {
            out.extend_from_slice(&e.lsn.to_le_bytes());
            out.extend_from_slice(&e.offset.to_le_bytes());
        }
        for h in &self.holes {
            out.extend_from_slice(&h.start_offset.to_le_bytes());
            out.extend_from_slice(&h.end_offset.to_le_bytes());
        }
        let body_len = out.len() - start;
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&((body_len + TRAILER_LEN) as u32).to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&TRAILER_MAGIC);
    }

    /// Reads the trailer at the end of a file of `file_len_bytes` bytes, given its last
    /// [`TRAILER_LEN`] bytes. Returns `(footer_offset, footer_len, crc)` if it looks like a trailer.
    pub fn decode_trailer(trailer: &[u8], file_len_bytes: u64) -> Result<(u64, usize, u32), FrameError> {
        need(trailer, TRAILER_LEN)?;
        if trailer[8..16] != TRAILER_MAGIC {
            return Err(FrameError::BadMagic);
        }
        let footer_len = u32_at(trailer, 0) as u64;
        let min = (FOOTER_FIXED_LEN + TRAILER_LEN) as u64;
        let max = min + u64::from(MAX_FOOTER_ENTRIES) * INDEX_ENTRY_LEN as u64 * 2;
        if footer_len < min || footer_len > max || footer_len + SEGMENT_HEADER_LEN as u64 > file_len_bytes {
            return Err(FrameError::Invalid("footer length"));
        }
        Ok((file_len_bytes - footer_len, footer_len as usize, u32_at(trailer, 4)))
    }

    /// Decodes a complete footer (body + trailer) and validates it against its own CRC and
    /// internal consistency. `footer_offset` is where it starts in the segment file.
    pub fn decode(bytes: &[u8], footer_offset: u64) -> Result<Footer, FrameError> {
        need(bytes, FOOTER_FIXED_LEN + TRAILER_LEN)?;
        let body_len = bytes.len() - TRAILER_LEN;
        let trailer = &bytes[body_len..];
        if trailer[8..16] != TRAILER_MAGIC || u32_at(trailer, 0) as usize != bytes.len() {
            return Err(FrameError::BadMagic);
        }
        let stored = u32_at(trailer, 4);
        let computed = crc32(&bytes[..body_len]);
        if stored != computed {
            return Err(FrameError::BadChecksum { stored, computed });
        }
        let b = &bytes[..body_len];
        if b[0..8] != FOOTER_MAGIC {
            return Err(FrameError::BadMagic);
        }
        let version = u16_at(b, 8);
        if version != FOOTER_VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        if u16_at(b, 10) != 0 || u32_at(b, 20) != 0 || u32_at(b, 60) != 0 {
            return Err(FrameError::Invalid("footer reserved bits"));
        }
        let index_count = u32_at(b, 12);
        let hole_count = u32_at(b, 16);
        if index_count > MAX_FOOTER_ENTRIES || hole_count > MAX_FOOTER_ENTRIES {
            return Err(FrameError::Invalid("footer entry count"));
        }
        let expected_len = FOOTER_FIXED_LEN as u64
            + u64::from(index_count) * INDEX_ENTRY_LEN as u64
            + u64::from(hole_count) * HOLE_ENTRY_LEN as u64;
        if expected_len != body_len as u64 {
            return Err(FrameError::Invalid("footer entry count does not match its length"));
        }
        let mut footer = Footer {
            first_lsn: u64_at(b, 24),
            last_lsn: u64_at(b, 32),
            record_count: u64_at(b, 40),
            data_end_offset: u64_at(b, 48),
            last_crc: u32_at(b, 56),
            sealed_at_us: u64_at(b, 64),
            index: Vec::with_capacity(index_count as usize),
            holes: Vec::with_capacity(hole_count as usize),
        };
        let mut at = FOOTER_FIXED_LEN;
        for _ in 0..index_count {
            footer.index.push(IndexEntry { lsn: u64_at(b, at), offset: u64_at(b, at + 8) });
            at += INDEX_ENTRY_LEN;
        }
        for _ in 0..hole_count {
            footer.holes.push(Hole { start_offset: u64_at(b, at), end_offset: u64_at(b, at + 8) });
            at += HOLE_ENTRY_LEN;
        }
        footer.validate(footer_offset)?;
        Ok(footer)
    }

    fn validate(&self, footer_offset: u64) -> Result<(), FrameError> {
        if self.first_lsn == 0 || self.last_lsn < self.first_lsn || self.last_lsn > MAX_LSN {
            return Err(FrameError::Invalid("footer LSN range"));
        }
        if self.record_count == 0 || self.record_count > self.last_lsn - self.first_lsn + 1 {
            return Err(FrameError::Invalid("footer record count"));
        }
        if self.holes.is_empty() && self.record_count != self.last_lsn - self.first_lsn + 1 {
            return Err(FrameError::Invalid("footer record count does not match its LSN range"));
        }
        if self.data_end_offset != footer_offset
            || self.data_end_offset < (SEGMENT_HEADER_LEN + RECORD_HEADER_LEN) as u64
        {
            return Err(FrameError::Invalid("footer data end offset"));
        }
        let first = self.index.first().ok_or(FrameError::Invalid("footer index is empty"))?;
        if first.lsn != self.first_lsn || first.offset != SEGMENT_HEADER_LEN as u64 {
            return Err(FrameError::Invalid("footer index does not start at the first record"));
        }
        for pair in self.index.windows(2) {
            if pair[1].lsn <= pair[0].lsn || pair[1].offset <= pair[0].offset {
                return Err(FrameError::Invalid("footer index not ascending"));
            }
        }
        for e in &self.index {
            if e.lsn > self.last_lsn || e.offset >= self.data_end_offset {
                return Err(FrameError::Invalid("footer index entry out of range"));
            }
        }
        let mut prev_end = SEGMENT_HEADER_LEN as u64;
        for h in &self.holes {
            if h.start_offset < prev_end || h.end_offset <= h.start_offset || h.end_offset > self.data_end_offset {
                return Err(FrameError::Invalid("footer hole out of range"));
            }
            prev_end = h.end_offset;
        }
        Ok(())
    }
}

/// Magic at the start of a clean-close record (the contents of `LOCK` after a clean close).
pub const CLEAN_CLOSE_MAGIC: [u8; 8] = *b"WALDCLOS";
/// Version of the clean-close record layout this crate writes and reads.
pub const CLEAN_CLOSE_VERSION: u16 = 1;
/// Size of the fixed part of a clean-close record in bytes (before its index entries).
pub const CLEAN_CLOSE_FIXED_LEN: usize = 80;
/// Size of the CRC that ends a clean-close record.
pub const CLEAN_CLOSE_CRC_LEN: usize = 4;
/// Largest clean-close record: the fixed part, [`MAX_FOOTER_ENTRIES`] index entries and the CRC.
/// Anything longer is rejected before it is read.
pub const MAX_CLEAN_CLOSE_LEN: usize =
    CLEAN_CLOSE_FIXED_LEN + MAX_FOOTER_ENTRIES as usize * INDEX_ENTRY_LEN + CLEAN_CLOSE_CRC_LEN;

/// What a clean `close` knew about the active segment, so that the next `open` can trust it
/// instead of scanning it (`docs/FORMAT.md`, "Clean-close record").
///
/// Decoding checks only the record itself; `open` also checks it against the segment file
/// (its length, and the last record at `last_record_offset`) before trusting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanClose {
    /// The log's identifier (as in every segment header).
    pub log_id: u64,
    /// First LSN of the active segment this record describes (its file name).
    pub segment_first_lsn: Lsn,
    /// Length of the segment file at close: where its last complete batch ends.
    pub data_end_offset: u64,
    /// Offset of the segment's last record (0 when it holds none).
    pub last_record_offset: u64,
    /// Records in the segment (`last_lsn - segment_first_lsn + 1`).
    pub record_count: u64,
    /// LSN of the segment's last record (`segment_first_lsn - 1` when it holds none).
    pub last_lsn: Lsn,
    /// CRC of the segment's last record (the header's `prev_crc` when it holds none).
    pub last_crc: u32,
    /// Close time, microseconds since the Unix epoch (informational).
    pub closed_at_us: u64,
    /// The segment's sparse index, as a footer would hold it (empty when it holds no record).
    pub index: Vec<IndexEntry>,
}

impl CleanClose {
    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        CLEAN_CLOSE_FIXED_LEN + self.index.len() * INDEX_ENTRY_LEN + CLEAN_CLOSE_CRC_LEN
    }

    /// Appends the encoded record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.reserve(self.encoded_len());
        out.extend_from_slice(&CLEAN_CLOSE_MAGIC);
        out.extend_from_slice(&CLEAN_CLOSE_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(self.index.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.log_id.to_le_bytes());
        out.extend_from_slice(&self.segment_first_lsn.to_le_bytes());
        out.extend_from_slice(&self.data_end_offset.to_le_bytes());
        out.extend_from_slice(&self.last_record_offset.to_le_bytes());
        out.extend_from_slice(&self.record_count.to_le_bytes());
        out.extend_from_slice(&self.last_lsn.to_le_bytes());
        out.extend_from_slice(&self.last_crc.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.closed_at_us.to_le_bytes());
        debug_assert_eq!(out.len() - start, CLEAN_CLOSE_FIXED_LEN);
        for e in &self.index {
            out.extend_from_slice(&e.lsn.to_le_bytes());
            out.extend_from_slice(&e.offset.to_le_bytes());
        }
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    /// Decodes a whole clean-close record (exactly these bytes, nothing after it) and checks its
    /// checksum and internal consistency.
    pub fn decode(bytes: &[u8]) -> Result<CleanClose, FrameError> {
        need(bytes, CLEAN_CLOSE_FIXED_LEN + CLEAN_CLOSE_CRC_LEN)?;
        if bytes.len() > MAX_CLEAN_CLOSE_LEN {
            return Err(FrameError::Invalid("clean-close record length"));
        }
        if bytes.iter().all(|&x| x == 0) {
            return Err(FrameError::Zeroed);
        }
        if bytes[0..8] != CLEAN_CLOSE_MAGIC {
            return Err(FrameError::BadMagic);
        }
        let version = u16_at(bytes, 8);
        if version != CLEAN_CLOSE_VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let body_len = bytes.len() - CLEAN_CLOSE_CRC_LEN;
        let stored = u32_at(bytes, body_len);
        let computed = crc32(&bytes[..body_len]);
        if stored != computed {
            return Err(FrameError::BadChecksum { stored, computed });
        }
        let b = &bytes[..body_len];
        if u16_at(b, 10) != 0 || u32_at(b, 68) != 0 {
            return Err(FrameError::Invalid("clean-close record reserved bits"));
        }
        let index_count = u32_at(b, 12);
        if index_count > MAX_FOOTER_ENTRIES {
            return Err(FrameError::Invalid("clean-close record entry count"));
        }
        if CLEAN_CLOSE_FIXED_LEN as u64 + u64::from(index_count) * INDEX_ENTRY_LEN as u64 != body_len as u64 {
            return Err(FrameError::Invalid("clean-close record entry count does not match its length"));
        }
        let mut record = CleanClose {
            log_id: u64_at(b, 16),
            segment_first_lsn: u64_at(b, 24),
            data_end_offset: u64_at(b, 32),
            last_record_offset: u64_at(b, 40),
            record_count: u64_at(b, 48),
            last_lsn: u64_at(b, 56),
            last_crc: u32_at(b, 64),
            closed_at_us: u64_at(b, 72),
            index: Vec::with_capacity(index_count as usize),
        };
        let mut at = CLEAN_CLOSE_FIXED_LEN;
        for _ in 0..index_count {
            record.index.push(IndexEntry { lsn: u64_at(b, at), offset: u64_at(b, at + 8) });
            at += INDEX_ENTRY_LEN;
        }
        record.validate()?;
        Ok(record)
    }

    fn validate(&self) -> Result<(), FrameError> {
        let first = self.segment_first_lsn;
        if first == 0 || first > MAX_LSN {
            return Err(FrameError::Invalid("clean-close segment first LSN"));
        }
        if self.last_lsn > MAX_LSN || self.last_lsn < first - 1 {
            return Err(FrameError::Invalid("clean-close last LSN"));
        }
        if self.record_count != self.last_lsn - (first - 1) {
            return Err(FrameError::Invalid("clean-close record count does not match its LSN range"));
        }
        let header_end = SEGMENT_HEADER_LEN as u64;
        if self.record_count == 0 {
            if self.data_end_offset != header_end || self.last_record_offset != 0 || !self.index.is_empty() {
                return Err(FrameError::Invalid("clean-close record of an empty segment"));
            }
            return Ok(());
        }
        if self.last_record_offset < header_end
            || self.data_end_offset < self.last_record_offset.saturating_add(RECORD_HEADER_LEN as u64)
            || self.data_end_offset - self.last_record_offset
                > RECORD_HEADER_LEN as u64 + u64::from(MAX_STORED_RECORD_BYTES)
        {
            return Err(FrameError::Invalid("clean-close last record offset"));
        }
        // Every record takes at least its 32-byte header.
        if self.record_count > (self.data_end_offset - header_end) / RECORD_HEADER_LEN as u64 {
            return Err(FrameError::Invalid("clean-close record count does not fit the data"));
        }
        let first_entry = self.index.first().ok_or(FrameError::Invalid("clean-close index is empty"))?;
        if first_entry.lsn != first || first_entry.offset != header_end {
            return Err(FrameError::Invalid("clean-close index does not start at the first record"));
        }
        for pair in self.index.windows(2) {
            if pair[1].lsn <= pair[0].lsn || pair[1].offset <= pair[0].offset {
                return Err(FrameError::Invalid("clean-close index not ascending"));
            }
        }
        for e in &self.index {
            let last = e.lsn == self.last_lsn;
            if e.lsn > self.last_lsn
                || e.offset > self.last_record_offset
                || last != (e.offset == self.last_record_offset)
            {
                return Err(FrameError::Invalid("clean-close index entry out of range"));
            }
        }
        Ok(())
    }
}

/// Name of the lock file inside the log directory (also where `close` leaves the clean-close
/// record).
pub const LOCK_FILE_NAME: &str = "LOCK";
/// Suffix of a segment being created (header written, not yet renamed into place).
pub const TEMP_SUFFIX: &str = ".tmp";

/// File name of the segment whose first LSN is `first_lsn`: 20 zero-padded digits + `.wal`.
pub fn segment_file_name(first_lsn: Lsn) -> String {
    format!("{first_lsn:020}.wal")
}

/// Parses a segment file name; `None` if `name` is not one.
pub fn parse_segment_file_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(lsn: Lsn, len: u32) -> RecordHeader {
        RecordHeader {
            crc: 0,
            kind: 7,
            flags: FLAG_BATCH_END,
            stored_len: len,
            prev_crc: 0xdead_beef,
            lsn,
            timestamp_us: 42,
        }
    }

    #[test]
    fn record_roundtrip_and_crc_combination() {
        let payload = b"hello world";
        let mut out = Vec::new();
        let crc = encode_record(&mut out, header(5, payload.len() as u32), payload, crc32(payload));
        let (h, range) = verify_record(&out, 1 << 20).expect("valid");
        assert_eq!(h.lsn, 5);
        assert_eq!(h.crc, crc);
        assert_eq!(h.kind, 7);
        assert!(h.is_batch_end());
        assert_eq!(&out[range], payload);
        // The combined CRC equals a CRC computed over the contiguous bytes.
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&out[4..]);
        assert_eq!(hasher.finalize(), crc);
    }

    #[test]
    fn direct_and_combined_crc_paths_agree_at_every_size_around_the_threshold() {
        let sizes = [0, 1, 27, 28, 63, 64, 100, 1023, 1024, 1025, 2048, 4096, 65_536];
        for len in sizes {
            let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(37).wrapping_add(11)).collect();
            let h = header(77, len as u32);
            // `encode_record` appends after whatever `out` already holds.
            let mut out = vec![0xAB; 5];
            let crc_arg = if payload_crc_needed(len) { crc32(&payload) } else { 0 };
            let crc = encode_record(&mut out, h, &payload, crc_arg);
            let record = &out[5..];
            assert_eq!(record.len(), RECORD_HEADER_LEN + len, "len {len}");
            assert_eq!(crc, crc32(&record[4..]), "len {len}: CRC over header tail ‖ payload");
            assert_eq!(crc, h.compute_crc(crc32(&payload)), "len {len}: combined CRC is the same value");
            let (decoded, range) = verify_record(record, 1 << 20).expect("valid");
            assert_eq!(decoded.crc, crc);
            assert_eq!(&record[range], &payload[..]);
        }
        assert!(!payload_crc_needed(DIRECT_CRC_MAX_PAYLOAD_BYTES));
        assert!(payload_crc_needed(DIRECT_CRC_MAX_PAYLOAD_BYTES + 1));
    }

    #[test]
    fn zeros_never_validate() {
        let zeros = [0u8; 256];
        assert_eq!(RecordHeader::decode(&zeros, 1 << 20), Err(FrameError::Zeroed));
        assert_eq!(SegmentHeader::decode(&zeros), Err(FrameError::Zeroed));
        assert!(Footer::decode(&zeros, 64).is_err());
        assert_ne!(crc32(&zeros), 0);
    }

    #[test]
    fn every_bit_flip_in_a_record_is_detected() {
        let payload = b"0123456789abcdef";
        let mut out = Vec::new();
        encode_record(&mut out, header(9, payload.len() as u32), payload, crc32(payload));
        for byte in 0..out.len() {
            for bit in 0..8 {
                let mut damaged = out.clone();
                damaged[byte] ^= 1 << bit;
                if let Ok((h, _)) = verify_record(&damaged, 1 << 20) {
                    panic!("flip at byte {byte} bit {bit} validated as lsn {}", h.lsn);
                }
            }
        }
    }

    #[test]
    fn segment_header_roundtrip_and_damage() {
        let h = SegmentHeader {
            version: FORMAT_VERSION,
            log_id: 77,
            first_lsn: 100,
            prev_last_lsn: 99,
            prev_crc: 5,
            created_at_us: 123,
        };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
        let mut bad = bytes;
        bad[30] ^= 1;
        assert!(matches!(SegmentHeader::decode(&bad), Err(FrameError::BadChecksum { .. })));
        let mut v3 = bytes;
        v3[8] = 3;
        assert_eq!(SegmentHeader::decode(&v3), Err(FrameError::UnsupportedVersion(3)));
        // Version 1 (older builds) still reads.
        let v1 = SegmentHeader { version: MIN_FORMAT_VERSION, ..h };
        assert_eq!(SegmentHeader::decode(&v1.encode()), Ok(v1));
        assert!(SegmentHeader::decode(&bytes[..10]).is_err());
    }

    #[test]
    fn torn_write_evidence_needs_a_lost_sectors_zeros() {
        let sector = SECTOR_BYTES as usize;
        let mut bytes = vec![0x5Au8; 8 * sector];
        // No zeros at all: a flipped bit or garbage.
        assert!(!torn_write_evidence(&bytes, 100, 4 * sector));
        // Zeros from the damage up to a sector boundary (the boundary sector lost).
        bytes[300..sector].fill(0);
        assert!(torn_write_evidence(&bytes, 300, 4 * sector));
        // ... but not if the boundary lies past the next valid record.
        assert!(!torn_write_evidence(&bytes, 300, sector - 1));
        // Zeros that stop short of the boundary are not a lost sector.
        bytes[sector - 1] = 1;
        assert!(!torn_write_evidence(&bytes, 300, 4 * sector));
        // A whole zero sector further on.
        bytes[2 * sector..3 * sector].fill(0);
        assert!(torn_write_evidence(&bytes, 300, 3 * sector));
        assert!(!torn_write_evidence(&bytes, 300, 3 * sector - 1));
        // Bounds beyond the slice are clamped, never a panic.
        assert!(!torn_write_evidence(&bytes, 7 * sector + 3, usize::MAX));
    }

    #[test]
    fn footer_roundtrip_and_damage() {
        let f = Footer {
            first_lsn: 10,
            last_lsn: 19,
            record_count: 10,
            data_end_offset: 1000,
            last_crc: 3,
            sealed_at_us: 4,
            index: vec![IndexEntry { lsn: 10, offset: 64 }, IndexEntry { lsn: 15, offset: 500 }],
            holes: vec![],
        };
        let mut out = vec![0u8; 1000];
        f.encode(&mut out);
        let file_len = out.len() as u64;
        let (off, len, _) = Footer::decode_trailer(&out[out.len() - TRAILER_LEN..], file_len).unwrap();
        assert_eq!(off, 1000);
        assert_eq!(Footer::decode(&out[off as usize..off as usize + len], off), Ok(f));
        for i in 1000..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            let decoded = Footer::decode_trailer(&bad[bad.len() - TRAILER_LEN..], file_len)
                .and_then(|(off, len, _)| Footer::decode(&bad[off as usize..off as usize + len], off));
            assert!(decoded.is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn compression_roundtrip_and_bounds() {
        let raw = vec![b'x'; 10_000];
        let stored = compress_payload(&raw, 3).unwrap();
        assert!(stored.len() < raw.len());
        assert_eq!(decompress_payload(&stored, 10_000).unwrap(), raw);
        assert!(decompress_payload(&stored, 9_999).is_err());
        assert!(decompress_payload(&stored[..stored.len() - 1], 10_000).is_err());
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_file_name(1), "00000000000000000001.wal");
        assert_eq!(parse_segment_file_name("00000000000000000001.wal"), Some(1));
        assert_eq!(parse_segment_file_name("1.wal"), None);
        assert_eq!(parse_segment_file_name("0000000000000000000x.wal"), None);
        assert_eq!(parse_segment_file_name("00000000000000000001.wal.tmp"), None);
    }
}
