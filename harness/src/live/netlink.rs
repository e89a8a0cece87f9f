//! A synchronous rtnetlink client: one request, one acknowledgement.
//!
//! Messages are built with `netlink-packet-route`'s types and sent over a
//! `netlink-sys` socket. The socket belongs to the network namespace of the
//! thread that opened it (see [`super::netns::Namespace::enter`]), which is
//! how every request reaches the right namespace without a helper process.
//! Topology set-up is a short, ordered list of requests, so a blocking
//! request/ack exchange is all it needs; no async runtime is involved.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, BorrowedFd},
};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, IpProtocol, RouteNetlinkMessage,
    address::{AddressAttribute, AddressHeaderFlags, AddressMessage},
    link::{
        InfoData, InfoIpTunnel, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo,
        LinkMessage,
    },
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType},
    tc::{TcAttribute, TcHandle, TcMessage},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// `NLMSG_ERROR`.
const NLMSG_ERROR: u16 = 2;
/// `NLMSGERR_ATTR_MSG`: the extended ack's human-readable message.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// The local routing table (addresses of this host).
const RT_TABLE_LOCAL: u8 = 255;

/// The main routing table.
const RT_TABLE_MAIN: u8 = 254;

/// A refused or failed rtnetlink request.
#[derive(Debug, thiserror::Error)]
#[error("netlink {what}: {source}{}", extack.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
pub struct NetlinkError {
    /// What was asked, in `ip` terms (`link add veth dut0`).
    pub what: String,
    /// The kernel's errno, or the socket's failure.
    #[source]
    pub source: io::Error,
    /// The kernel's extended ack message, when it gave one.
    pub extack: Option<String>,
}

/// An rtnetlink socket in the namespace of the thread that opened it.
pub struct Rtnl {
    socket: Socket,
    sequence: u32,
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, 0))?;
        // Errors carry the kernel's reason ("MTU too large", ...) and only
        // the request's header, not the whole request, in the reply.
        socket.set_ext_ack(true)?;
        socket.set_cap_ack(true)?;
        Ok(Self {
            socket,
            sequence: 0,
        })
    }

    /// Creates a veth pair: `name` here, `peer` in the namespace `peer_ns`.
    pub fn add_veth(
        &mut self,
        name: &str,
        peer: &str,
        peer_ns: BorrowedFd<'_>,
    ) -> Result<(), NetlinkError> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_owned()));
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(peer_ns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("link add {name} type veth peer {peer}"),
        )
    }

    /// Moves link `index` into the namespace `ns` (it leaves the calling
    /// thread's).
    pub fn move_link(&mut self, index: u32, ns: BorrowedFd<'_>) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        self.request(RouteNetlinkMessage::SetLink(msg), 0, || {
            format!("link set ifindex {index} netns <fd>")
        })
    }

    /// Makes sure the calling thread's namespace has the fallback device
    /// `name` of tunnel driver `kind` (`tunl0` of ipip, `sit0` of sit,
    /// `ip6tnl0` of ip6_tunnel), which receives that driver's packets from
    /// any remote to any local address. Asking to create it makes the
    /// kernel load the driver, whose namespaces then all have the device:
    /// "exists" is the usual answer, and a success (namespaces without
    /// fallback devices) made an equivalent any-to-any device.
    pub fn ensure_fallback_tunnel(
        &mut self,
        kind: InfoKind,
        name: &str,
    ) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(kind.clone())]));
        match self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("link add {name} type {kind}"),
        ) {
            Err(e) if e.source.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    }

    /// Adds ip6_tunnel device `name` receiving, from any remote, the
    /// tunnel packets to `local` of any inner protocol (`mode any`: IPv6
    /// and IPv4 in IPv6; the fallback device takes only IPv6, and its mode
    /// cannot be changed without restating all its parameters).
    pub fn add_ip6_tunnel_any(&mut self, name: &str, local: Ipv6Addr) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Ip6Tnl),
            LinkInfo::Data(InfoData::IpTunnel(vec![
                InfoIpTunnel::Local(IpAddr::V6(local)),
                // Protocol number 0 is "any" here (it is also Hop-by-Hop's,
                // hence the name).
                InfoIpTunnel::Protocol(IpProtocol::Hopopts),
            ])),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("link add {name} type ip6tnl local {local} mode any"),
        )
    }

    /// Replaces the root qdisc of link `index` with `noqueue`: frames go to
    /// the driver the moment they are sent, in the order they were sent,
    /// whatever transmit queue each takes.
    pub fn set_noqueue(&mut self, index: u32) -> Result<(), NetlinkError> {
        let mut msg = TcMessage::default();
        msg.header.index = index as i32;
        msg.header.parent = TcHandle::ROOT;
        msg.header.handle = TcHandle::UNSPEC;
        msg.attributes.push(TcAttribute::Kind("noqueue".to_owned()));
        self.request(
            RouteNetlinkMessage::NewQueueDiscipline(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
            || format!("qdisc replace dev ifindex {index} root noqueue"),
        )
    }

    /// Adds VXLAN device `name` (VNI `vni`, UDP port `port`) from `local`
    /// to `remote` over the underlay link `underlay`, with UDP checksums
    /// and no learning: a point-to-point tunnel.
    pub fn add_vxlan(
        &mut self,
        name: &str,
        vni: u32,
        local: Ipv4Addr,
        remote: Ipv4Addr,
        port: u16,
        underlay: u32,
    ) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(vec![
                InfoVxlan::Id(vni),
                InfoVxlan::Local(local),
                // A unicast "group" is the remote end.
                InfoVxlan::Group(remote),
                InfoVxlan::Link(underlay),
                InfoVxlan::Port(port),
                InfoVxlan::UDPCsum(true),
                InfoVxlan::Learning(false),
            ])),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("link add {name} type vxlan id {vni} local {local} remote {remote} dstport {port} udpcsum"),
        )
    }

    /// Sets a link's MTU, MAC address and up/down state (each when given).
    pub fn set_link(
        &mut self,
        index: u32,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
        up: Option<bool>,
    ) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        if let Some(up) = up {
            msg.header.change_mask |= LinkFlags::Up;
            if up {
                msg.header.flags |= LinkFlags::Up;
            }
        }
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = mac {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        self.request(RouteNetlinkMessage::SetLink(msg), 0, || {
            let mut what = format!("link set ifindex {index}");
            if let Some(mtu) = mtu {
                what += &format!(" mtu {mtu}");
            }
            if let Some(mac) = mac {
                what += &format!(" address {}", mac_text(mac));
            }
            if let Some(up) = up {
                what += if up { " up" } else { " down" };
            }
            what
        })
    }

    /// Adds `addr/prefix` to a link. IPv6 addresses skip duplicate address
    /// detection, so they are usable at once.
    pub fn add_address(
        &mut self,
        index: u32,
        addr: IpAddr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = prefix;
        msg.header.family = family(addr);
        msg.attributes.push(AddressAttribute::Address(addr));
        match addr {
            IpAddr::V4(_) => msg.attributes.push(AddressAttribute::Local(addr)),
            IpAddr::V6(_) => msg.header.flags |= AddressHeaderFlags::Nodad,
        }
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("address add {addr}/{prefix} dev ifindex {index}"),
        )
    }

    /// Adds a route to `dst/prefix` in the main table, through `via` or
    /// directly on the link `index`.
    pub fn add_route(
        &mut self,
        dst: IpAddr,
        prefix: u8,
        via: Option<IpAddr>,
        index: u32,
    ) -> Result<(), NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(dst);
        msg.header.destination_prefix_length = prefix;
        msg.header.table = RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Static;
        msg.header.kind = RouteType::Unicast;
        msg.header.scope = if via.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        msg.attributes
            .push(RouteAttribute::Destination(route_address(dst)));
        if let Some(gw) = via {
            msg.attributes
                .push(RouteAttribute::Gateway(route_address(gw)));
        }
        msg.attributes.push(RouteAttribute::Oif(index));
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || {
                let via = via.map(|g| format!(" via {g}")).unwrap_or_default();
                format!("route add {dst}/{prefix}{via} dev ifindex {index}")
            },
        )
    }

    /// Makes every address of `dst/prefix` local to this namespace, on
    /// `lo` (index `lo`): a route of type `local` in the local table, as
    /// `ip route add local … dev lo` ("AnyIP"), so that sockets bind any
    /// of them and packets to any of them are delivered.
    pub fn add_local_route(
        &mut self,
        dst: IpAddr,
        prefix: u8,
        lo: u32,
    ) -> Result<(), NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(dst);
        msg.header.destination_prefix_length = prefix;
        msg.header.table = RT_TABLE_LOCAL;
        msg.header.protocol = RouteProtocol::Static;
        msg.header.kind = RouteType::Local;
        msg.header.scope = RouteScope::Host;
        msg.attributes
            .push(RouteAttribute::Destination(route_address(dst)));
        msg.attributes.push(RouteAttribute::Oif(lo));
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || format!("route add local {dst}/{prefix} dev lo"),
        )
    }

    /// Adds a permanent neighbour entry, so that no ARP or neighbour
    /// discovery crosses the links during a run.
    pub fn add_neighbour(
        &mut self,
        index: u32,
        addr: IpAddr,
        mac: [u8; 6],
    ) -> Result<(), NetlinkError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family(addr);
        msg.header.ifindex = index;
        msg.header.state = NeighbourState::Permanent;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(NeighbourAttribute::Destination(match addr {
                IpAddr::V4(a) => NeighbourAddress::Inet(a),
                IpAddr::V6(a) => NeighbourAddress::Inet6(a),
            }));
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        self.request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            || {
                format!(
                    "neighbour add {addr} lladdr {} dev ifindex {index}",
                    mac_text(mac)
                )
            },
        )
    }

    /// Sends `message` and waits for its acknowledgement.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        what: impl Fn() -> String,
    ) -> Result<(), NetlinkError> {
        let fail = |source: io::Error, extack: Option<String>| NetlinkError {
            what: what(),
            source,
            extack,
        };
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(|e| fail(e, None))?;
        loop {
            let (reply, _) = self.socket.recv_from_full().map_err(|e| fail(e, None))?;
            let mut rest = reply.as_slice();
            while let Some(parsed) = next_message(&mut rest) {
                let (kind, sequence, body) = parsed.map_err(|e| fail(e, None))?;
                if kind != NLMSG_ERROR || sequence != self.sequence {
                    continue;
                }
                return match parse_ack(body) {
                    Ok(()) => Ok(()),
                    Err((errno, extack)) => Err(fail(io::Error::from_raw_os_error(errno), extack)),
                };
            }
        }
    }
}

/// Splits the next netlink message off `rest`: (type, sequence, payload).
pub(super) fn next_message<'a>(rest: &mut &'a [u8]) -> Option<io::Result<(u16, u32, &'a [u8])>> {
    if rest.len() < 16 {
        return None;
    }
    let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
    if len < 16 || len > rest.len() {
        *rest = &[];
        return Some(Err(io::Error::other("malformed netlink reply")));
    }
    let kind = u16::from_ne_bytes([rest[4], rest[5]]);
    let sequence = u32::from_ne_bytes(rest[8..12].try_into().ok()?);
    let body = &rest[16..len];
    *rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    Some(Ok((kind, sequence, body)))
}

/// An `NLMSG_ERROR` payload: `Ok` for an ack, else the errno and the
/// extended ack's message. With `NETLINK_CAP_ACK` the echoed request is
/// just its 16-byte header, followed by the extended ack's attributes.
pub(super) fn parse_ack(body: &[u8]) -> Result<(), (i32, Option<String>)> {
    let Some(code) = body.get(0..4) else {
        return Err((libc::EPROTO, None));
    };
    let code = i32::from_ne_bytes(code.try_into().unwrap_or_default());
    if code == 0 {
        return Ok(());
    }
    let mut attrs = body.get(20..).unwrap_or_default();
    let mut extack = None;
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            break;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &attrs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            extack = Some(String::from_utf8_lossy(text).into_owned());
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    Err((-code, extack))
}

fn mac_text(mac: [u8; 6]) -> String {
    let bytes: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    bytes.join(":")
}

fn family(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn route_address(addr: IpAddr) -> RouteAddress {
    match addr {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_is_ok_and_a_nack_carries_errno_and_message() {
        assert_eq!(parse_ack(&[0; 20]), Ok(()));
        let mut nack = (-libc::ERANGE).to_ne_bytes().to_vec();
        nack.extend([0; 16]); // the capped request header
        let text = b"MTU too large\0";
        let len = (4 + text.len()) as u16;
        nack.extend(len.to_ne_bytes());
        nack.extend(NLMSGERR_ATTR_MSG.to_ne_bytes());
        nack.extend(text);
        assert_eq!(
            parse_ack(&nack),
            Err((libc::ERANGE, Some("MTU too large".to_owned())))
        );
    }

    #[test]
    fn a_truncated_reply_is_an_error_not_a_panic() {
        let mut rest: &[u8] = &[0xff, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(next_message(&mut rest), Some(Err(_))));
        assert!(next_message(&mut rest).is_none());
    }
}
