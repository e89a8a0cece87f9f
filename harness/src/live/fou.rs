//! The kernel's `fou` driver over generic netlink: a UDP port that
//! receives GUE, whose inner packet the kernel then hands to its IP-in-IP
//! drivers (the reference decapsulator's GUE, [`super::kernel_decap`]).
//!
//! Only the one request dsrlab needs: `FOU_CMD_ADD` of a GUE port for one
//! address family. The family's id is resolved through the generic netlink
//! controller, which also makes the kernel load the driver.

use std::io;

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, ParseableParametrized,
};
use netlink_packet_generic::{
    GenlFamily, GenlHeader, GenlMessage,
    ctrl::{GenlCtrl, GenlCtrlCmd, nlas::GenlCtrlAttrs},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

use super::netlink::{next_message, parse_ack};

/// `FOU_CMD_ADD` (linux/fou.h).
const FOU_CMD_ADD: u8 = 1;
/// `FOU_ATTR_PORT` (network order), `FOU_ATTR_AF`, `FOU_ATTR_TYPE`.
const FOU_ATTR_PORT: u16 = 1;
const FOU_ATTR_AF: u16 = 2;
const FOU_ATTR_TYPE: u16 = 4;
/// `FOU_ENCAP_GUE`.
const FOU_ENCAP_GUE: u8 = 2;
/// `NLMSG_ERROR`.
const NLMSG_ERROR: u16 = 2;

/// A `FOU_CMD_ADD` request: a GUE port for one address family.
#[derive(Clone, Debug)]
struct AddGuePort {
    port: u16,
    family: u8,
}

impl AddGuePort {
    fn nlas(&self) -> [DefaultNla; 3] {
        [
            DefaultNla::new(FOU_ATTR_PORT, self.port.to_be_bytes().to_vec()),
            DefaultNla::new(FOU_ATTR_AF, vec![self.family]),
            DefaultNla::new(FOU_ATTR_TYPE, vec![FOU_ENCAP_GUE]),
        ]
    }
}

impl GenlFamily for AddGuePort {
    fn family_name() -> &'static str {
        "fou"
    }

    fn command(&self) -> u8 {
        FOU_CMD_ADD
    }

    fn version(&self) -> u8 {
        1
    }
}

impl Emitable for AddGuePort {
    fn buffer_len(&self) -> usize {
        self.nlas().as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.nlas().as_slice().emit(buffer);
    }
}

impl ParseableParametrized<[u8], GenlHeader> for AddGuePort {
    fn parse_with_param(_: &[u8], _: GenlHeader) -> Result<Self, DecodeError> {
        // The kernel answers an add with an ack only.
        Err(DecodeError::from("fou replies are not parsed"))
    }
}

/// Makes the kernel receive GUE on UDP `port` for `family` (`AF_INET`,
/// `AF_INET6`) in the calling thread's namespace; a port already set up
/// is fine.
pub fn add_gue_port(port: u16, family: u8) -> io::Result<()> {
    let mut socket = Socket::new(NETLINK_GENERIC)?;
    socket.bind(&SocketAddr::new(0, 0))?;
    socket.set_ext_ack(true)?;
    socket.set_cap_ack(true)?;
    let id = family_id(&socket)?;
    let mut message = GenlMessage::from_payload(AddGuePort { port, family });
    message.set_resolved_family_id(id);
    let what = format!("fou add port {port} gue (family {family})");
    match request(&socket, message, 2, |_, _| None::<()>) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other.map(drop),
    }
    .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// The id of the `fou` family (loading the driver if need be).
fn family_id(socket: &Socket) -> io::Result<u16> {
    let message = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(
            AddGuePort::family_name().to_owned(),
        )],
    });
    let id = request(socket, message, 1, |kind, bytes| {
        (kind != NLMSG_ERROR)
            .then(|| NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(bytes).ok())
            .flatten()
            .and_then(|reply| match reply.payload {
                NetlinkPayload::InnerMessage(genl) => {
                    genl.payload.nlas.iter().find_map(|nla| match nla {
                        GenlCtrlAttrs::FamilyId(id) => Some(*id),
                        _ => None,
                    })
                }
                _ => None,
            })
    })
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("generic netlink family fou (the fou driver): {e}"),
        )
    })?;
    id.ok_or_else(|| io::Error::other("generic netlink family fou: no id in the reply"))
}

/// Sends `message` (sequence `sequence`) and reads replies until its ack;
/// `answer` picks the answer out of a reply message (type, whole bytes).
fn request<F, T>(
    socket: &Socket,
    message: GenlMessage<F>,
    sequence: u32,
    mut answer: impl FnMut(u16, &[u8]) -> Option<T>,
) -> io::Result<Option<T>>
where
    F: GenlFamily + Emitable + ParseableParametrized<[u8], GenlHeader> + std::fmt::Debug,
{
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    header.sequence_number = sequence;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut found = None;
    loop {
        let (reply, _) = socket.recv_from_full()?;
        let mut rest = reply.as_slice();
        loop {
            let whole = rest;
            let Some(parsed) = next_message(&mut rest) else {
                break;
            };
            let (kind, seq, body) = parsed?;
            if seq != sequence {
                continue;
            }
            if kind == NLMSG_ERROR {
                return match parse_ack(body) {
                    Ok(()) => Ok(found),
                    Err((errno, extack)) => {
                        let e = io::Error::from_raw_os_error(errno);
                        Err(match extack {
                            Some(text) => io::Error::new(e.kind(), format!("{e} ({text})")),
                            None => e,
                        })
                    }
                };
            }
            let len = whole.len() - rest.len();
            if found.is_none() {
                found = answer(kind, &whole[..len]);
            }
        }
    }
}
