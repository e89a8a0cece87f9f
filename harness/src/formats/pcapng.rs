//! pcapng files of Ethernet frames: read wherever dsrlab reads pcaps
//! (streams, `expect.equals`, `dsrlab pcap`), and written with a comment
//! per packet (`dsrlab run --out DIR --pcapng`: what the packet was and what
//! became of it, shown by Wireshark in its packet comments).
//!
//! As with classic pcap files, packet `i` (0-based) is stamped `i` µs after
//! the epoch (the default resolution of an interface without
//! `if_tsresol`), so the same packets always give the same bytes.

use std::{borrow::Cow, path::Path, time::Duration};

use pcap_file::{
    DataLink,
    pcapng::{
        Block, PcapNgParser, PcapNgWriter,
        blocks::{
            enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption},
            interface_description::InterfaceDescriptionBlock,
        },
    },
};

use super::pcap::{PcapError, SNAPLEN};

/// The first four bytes of a pcapng file (a Section Header Block's type).
pub const MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// The pcapng file holding `packets` and their comments, in order.
pub fn to_bytes<P: AsRef<[u8]>>(packets: &[(P, Option<String>)]) -> Vec<u8> {
    let largest = packets
        .iter()
        .map(|(p, _)| p.as_ref().len())
        .max()
        .unwrap_or(0);
    let snaplen = u32::try_from(largest).unwrap_or(u32::MAX).max(SNAPLEN);
    let io_ok = "writing into a Vec does not fail";
    let mut writer = PcapNgWriter::new(Vec::new()).expect(io_ok);
    writer
        .write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::ETHERNET, snaplen))
        .expect(io_ok);
    for (i, (data, comment)) in packets.iter().enumerate() {
        let data = data.as_ref();
        let block = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_nanos(i as u64),
            original_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            data: Cow::Borrowed(data),
            options: comment
                .iter()
                .map(|c| EnhancedPacketOption::Comment(Cow::Borrowed(c.as_str())))
                .collect(),
        };
        writer.write_pcapng_block(block).expect(io_ok);
    }
    writer.into_inner()
}

/// A packet and its comments.
pub type Commented = (Vec<u8>, Vec<String>);

/// The packets of a pcapng file and their comments; `path` only names the
/// data in errors. Every interface must be Ethernet.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Vec<Commented>, PcapError> {
    let error = |packet: Option<usize>, what: String| PcapError {
        path: path.to_owned(),
        packet,
        what,
    };
    let (mut rest, mut parser) =
        PcapNgParser::new(bytes).map_err(|e| error(None, format!("not a pcapng file: {e}")))?;
    let mut packets = Vec::new();
    while !rest.is_empty() {
        let n = packets.len() + 1;
        let (next, block) = parser
            .next_block(rest)
            .map_err(|e| error(Some(n), format!("broken block before it: {e}")))?;
        rest = next;
        let (data, comments) = match block {
            Block::EnhancedPacket(p) => {
                let linktype = parser.packet_interface(&p).map(|i| i.linktype);
                if linktype != Some(DataLink::ETHERNET) {
                    return Err(error(
                        Some(n),
                        format!(
                            "interface {} has link type {}, only Ethernet (1) is supported",
                            p.interface_id,
                            linktype
                                .map_or("(undeclared)".to_owned(), |l| u32::from(l).to_string())
                        ),
                    ));
                }
                let comments = p
                    .options
                    .iter()
                    .filter_map(|o| match o {
                        EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                        _ => None,
                    })
                    .collect();
                (p.data.into_owned(), comments)
            }
            Block::SimplePacket(p) => (p.data.into_owned(), Vec::new()),
            Block::Packet(p) => (p.data.into_owned(), Vec::new()),
            _ => continue,
        };
        packets.push((data, comments));
    }
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_and_comments_round_trip() {
        let packets = [
            (vec![1u8; 60], Some("input #1".to_owned())),
            (vec![2u8; 70], None),
        ];
        let bytes = to_bytes(&packets);
        assert_eq!(bytes[..4], MAGIC);
        let read = from_bytes(&bytes, Path::new("x.pcapng")).unwrap();
        assert_eq!(
            read,
            [
                (vec![1u8; 60], vec!["input #1".to_owned()]),
                (vec![2u8; 70], vec![])
            ]
        );
        assert_eq!(
            to_bytes(&packets),
            bytes,
            "the same packets, the same bytes"
        );
        let err = from_bytes(&bytes[..bytes.len() - 3], Path::new("x.pcapng")).unwrap_err();
        assert_eq!(err.packet, Some(2), "{err}");
    }
}
