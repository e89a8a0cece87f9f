//! Classic pcap files (LINKTYPE_ETHERNET): what fixtures are stored as and
//! what output snapshots are written as. Reading also takes pcapng files
//! ([`super::pcapng`]), told apart by their first bytes.
//!
//! Files are written little-endian with microsecond timestamps, packet `i`
//! (0-based) at `i` µs after the epoch, so that the same packets always give
//! the same bytes (snapshots and staleness checks compare whole files) and
//! Wireshark shows them in order.

use std::{
    borrow::Cow,
    fmt,
    path::{Path, PathBuf},
};

use pcap_file::{
    DataLink, Endianness, TsResolution,
    pcap::{PcapHeader, PcapParser, PcapWriter, RawPcapPacket},
};

/// Snaplen of written files (tcpdump's default), unless a packet is larger.
pub const SNAPLEN: u32 = 262_144;

const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// Why a pcap file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub struct PcapError {
    /// The file (or, for in-memory data, a name for it).
    pub path: PathBuf,
    /// The 1-based number of the packet at fault; `None` for the file header
    /// or the file as a whole.
    pub packet: Option<usize>,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(n) = self.packet {
            write!(f, ": packet {n}")?;
        }
        write!(f, ": {}", self.what)
    }
}

impl PcapError {
    fn file(path: &Path, what: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            packet: None,
            what: what.into(),
        }
    }
    fn packet(path: &Path, n: usize, what: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            packet: Some(n),
            what: what.into(),
        }
    }
}

/// The pcap file holding `packets`, in order, as bytes.
///
/// The snaplen is [`SNAPLEN`], or the largest packet if that is larger, so
/// that the file is valid whatever it holds.
pub fn to_bytes<P: AsRef<[u8]>>(packets: &[P]) -> Vec<u8> {
    let largest = packets.iter().map(|p| p.as_ref().len()).max().unwrap_or(0);
    let header = PcapHeader {
        snaplen: u32::try_from(largest).unwrap_or(u32::MAX).max(SNAPLEN),
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
        ..PcapHeader::default()
    };
    let mut out = Vec::with_capacity(
        FILE_HEADER_LEN
            + packets
                .iter()
                .map(|p| RECORD_HEADER_LEN + p.as_ref().len())
                .sum::<usize>(),
    );
    // Raw records are written without validation, so the only error left
    // is an I/O error, which a Vec never returns.
    let io_ok = "writing into a Vec does not fail";
    let mut writer = PcapWriter::with_header(&mut out, header).expect(io_ok);
    for (i, p) in packets.iter().enumerate() {
        let data = p.as_ref();
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let record = RawPcapPacket {
            ts_sec: u32::try_from(i / 1_000_000).unwrap_or(u32::MAX),
            ts_frac: (i % 1_000_000) as u32,
            incl_len: len,
            orig_len: len,
            data: Cow::Borrowed(data),
        };
        writer.write_raw_packet(&record).expect(io_ok);
    }
    out
}

/// Writes `packets` to the pcap file `path` (see [`to_bytes`]), or to a
/// pcapng file when `path` ends in `.pcapng`.
pub fn write_file<P: AsRef<[u8]>>(path: &Path, packets: &[P]) -> Result<(), PcapError> {
    let bytes = if path.extension().is_some_and(|e| e == "pcapng") {
        let uncommented: Vec<(&[u8], Option<String>)> =
            packets.iter().map(|p| (p.as_ref(), None)).collect();
        super::pcapng::to_bytes(&uncommented)
    } else {
        to_bytes(packets)
    };
    std::fs::write(path, bytes).map_err(|e| PcapError::file(path, format!("cannot write: {e}")))
}

/// The classic pcap file header at the start of `bytes`, checked: long
/// enough, a known magic, Ethernet frames. Returns the bytes after it.
fn parse_header<'a>(bytes: &'a [u8], path: &Path) -> Result<(&'a [u8], PcapParser), PcapError> {
    if bytes.len() < FILE_HEADER_LEN {
        return Err(PcapError::file(
            path,
            format!(
                "truncated file header ({} of {FILE_HEADER_LEN} bytes)",
                bytes.len()
            ),
        ));
    }
    let (rest, parser) = PcapParser::new(bytes).map_err(|_| {
        let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        PcapError::file(
            path,
            format!("bad magic 0x{magic:08x} (neither a classic pcap nor a pcapng file)"),
        )
    })?;
    let datalink = parser.header().datalink;
    if datalink != DataLink::ETHERNET {
        return Err(PcapError::file(
            path,
            format!(
                "unsupported link type {} (only 1, LINKTYPE_ETHERNET, is supported)",
                u32::from(datalink)
            ),
        ));
    }
    Ok((rest, parser))
}

/// Reads every packet of the pcap file `path`.
pub fn read_file(path: &Path) -> Result<Vec<Vec<u8>>, PcapError> {
    let bytes =
        std::fs::read(path).map_err(|e| PcapError::file(path, format!("cannot read: {e}")))?;
    from_bytes(&bytes, path)
}

/// Parses a classic little- or big-endian pcap, or a pcapng file, of
/// Ethernet frames; `path` only names the data in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Vec<Vec<u8>>, PcapError> {
    if bytes.starts_with(&super::pcapng::MAGIC) {
        return Ok(super::pcapng::from_bytes(bytes, path)?
            .into_iter()
            .map(|(packet, _)| packet)
            .collect());
    }
    let (mut rest, parser) = parse_header(bytes, path)?;
    let header = parser.header();
    let mut packets = Vec::new();
    while !rest.is_empty() {
        let n = packets.len() + 1;
        if rest.len() < RECORD_HEADER_LEN {
            return Err(PcapError::packet(
                path,
                n,
                format!(
                    "truncated record header ({} of {RECORD_HEADER_LEN} bytes)",
                    rest.len()
                ),
            ));
        }
        let (next, raw) = match parser.next_raw_packet(rest) {
            Ok(ok) => ok,
            Err(_) => {
                let incl = match header.endianness {
                    Endianness::Big => u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]),
                    Endianness::Little => {
                        u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]])
                    }
                };
                return Err(PcapError::packet(
                    path,
                    n,
                    format!(
                        "truncated packet data ({} of {incl} bytes)",
                        rest.len() - RECORD_HEADER_LEN
                    ),
                ));
            }
        };
        if raw.incl_len > raw.orig_len {
            return Err(PcapError::packet(
                path,
                n,
                format!(
                    "captured length {} exceeds original length {}",
                    raw.incl_len, raw.orig_len
                ),
            ));
        }
        packets.push(raw.data.into_owned());
        rest = next;
    }
    Ok(packets)
}

/// The packets of a classic pcap file read one at a time: replays too
/// large to hold in memory. The same checks and messages as
/// [`from_bytes`], reported when the packet at fault is reached.
pub struct PacketStream {
    path: PathBuf,
    reader: std::io::BufReader<std::fs::File>,
    endianness: Endianness,
    read: usize,
    failed: bool,
}

impl PacketStream {
    /// Opens the classic pcap file `path` (not pcapng: see [`is_pcapng`]).
    pub fn open(path: &Path) -> Result<Self, PcapError> {
        let file = std::fs::File::open(path)
            .map_err(|e| PcapError::file(path, format!("cannot read: {e}")))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let mut header = [0u8; FILE_HEADER_LEN];
        let got = read_up_to(&mut reader, &mut header)
            .map_err(|e| PcapError::file(path, format!("cannot read: {e}")))?;
        let (_, parser) = parse_header(&header[..got], path)?;
        let header = parser.header();
        Ok(Self {
            path: path.to_owned(),
            reader,
            endianness: header.endianness,
            read: 0,
            failed: false,
        })
    }

    fn record(&mut self) -> Result<Option<Vec<u8>>, PcapError> {
        let n = self.read + 1;
        let io = |e: std::io::Error| PcapError::packet(&self.path, n, format!("cannot read: {e}"));
        let mut head = [0u8; RECORD_HEADER_LEN];
        let got = read_up_to(&mut self.reader, &mut head).map_err(io)?;
        if got == 0 {
            return Ok(None);
        }
        if got < RECORD_HEADER_LEN {
            return Err(PcapError::packet(
                &self.path,
                n,
                format!("truncated record header ({got} of {RECORD_HEADER_LEN} bytes)"),
            ));
        }
        let word = |at: usize| {
            let b = [head[at], head[at + 1], head[at + 2], head[at + 3]];
            match self.endianness {
                Endianness::Big => u32::from_be_bytes(b),
                Endianness::Little => u32::from_le_bytes(b),
            }
        };
        let (incl, orig) = (word(8), word(12));
        if incl > orig {
            return Err(PcapError::packet(
                &self.path,
                n,
                format!("captured length {incl} exceeds original length {orig}"),
            ));
        }
        let mut data = vec![0u8; incl as usize];
        let got = read_up_to(&mut self.reader, &mut data).map_err(io)?;
        if got < data.len() {
            return Err(PcapError::packet(
                &self.path,
                n,
                format!("truncated packet data ({got} of {incl} bytes)"),
            ));
        }
        self.read = n;
        Ok(Some(data))
    }
}

/// Reads until `buf` is full or the input ends; how many bytes it read.
fn read_up_to(reader: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl Iterator for PacketStream {
    type Item = Result<Vec<u8>, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let record = self.record();
        self.failed = record.is_err();
        record.transpose()
    }
}

/// Whether the file `path` is a pcapng file (by its first bytes).
pub fn is_pcapng(path: &Path) -> Result<bool, PcapError> {
    use std::io::Read as _;
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path)
        .map_err(|e| PcapError::file(path, format!("cannot read: {e}")))?;
    let n = file
        .read(&mut head)
        .map_err(|e| PcapError::file(path, format!("cannot read: {e}")))?;
    Ok(head[..n] == super::pcapng::MAGIC[..n.min(4)] && n == 4)
}
