//! Emulated NICs: link ends that hand the stack skbs the way real NICs
//! do, which a veth never does.
//!
//! - [`tap`]: headers left unpulled ("Broadcom-like": `linear: N`) and
//!   checksums validated (`CHECKSUM_UNNECESSARY`, per receive queue);
//! - [`vxlan`]: `CHECKSUM_COMPLETE` as hardware gives it ("mlx5-like":
//!   `checksum: complete`, `csum_complete_sw = 0`);
//! - [`link`]: the TAP NIC as a link end of a topology.
//!
//! Every NIC proves itself when it comes up ([`self_check`]): probe frames
//! go through it and the `skb_state` instrument, at the head of its TC
//! ingress chain, must see exactly the skb promised. A NIC that does not
//! deliver what it promises fails the run; it never silently becomes a
//! weaker test.

pub mod link;
pub mod tap;
pub mod vxlan;

use std::{io, time::Duration};

use crate::instruments::skb_state::{IpSummed, SkbState, SkbStateProbe};

/// How long a probe frame may take to reach the instrument.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A NIC that did not deliver what it promised.
#[derive(Debug, thiserror::Error)]
pub enum NicError {
    /// An operation on the NIC or the instrument failed.
    #[error("emulated NIC {nic}: {source}")]
    Io {
        /// Which NIC.
        nic: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The probe arrived otherwise than promised.
    #[error("emulated NIC {nic} does not deliver what it promises: {what}")]
    Broken {
        /// Which NIC.
        nic: String,
        /// Promised and delivered.
        what: String,
    },
}

/// What an skb must look like as the NIC hands it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promise {
    /// Bytes in the linear part (`None`: not promised).
    pub linear: Option<u32>,
    /// Its length.
    pub len: u32,
    /// Its checksum state.
    pub ip_summed: IpSummed,
    /// Its `csum_level` (checked for `CHECKSUM_UNNECESSARY` only).
    pub csum_level: u8,
    /// Whether a `CHECKSUM_COMPLETE` sum was made by software (checked
    /// for `CHECKSUM_COMPLETE` only; hardware's is `false`).
    pub complete_sw: bool,
}

impl Promise {
    /// What `seen` breaks of the promise, if anything.
    pub fn broken_by(&self, seen: &SkbState) -> Option<String> {
        let mut broken = Vec::new();
        if seen.len != self.len {
            broken.push(format!("length {} instead of {}", seen.len, self.len));
        }
        if let Some(linear) = self.linear
            && seen.linear != linear
        {
            broken.push(format!("{} linear bytes instead of {linear}", seen.linear));
        }
        if seen.ip_summed == IpSummed::Complete
            && self.ip_summed == IpSummed::Complete
            && seen.csum_complete_sw != self.complete_sw
        {
            broken.push(format!(
                "csum_complete_sw {} instead of {}",
                u8::from(seen.csum_complete_sw),
                u8::from(self.complete_sw)
            ));
        }
        if seen.ip_summed == IpSummed::Unnecessary
            && self.ip_summed == IpSummed::Unnecessary
            && seen.csum_level != self.csum_level
        {
            broken.push(format!(
                "csum_level {} instead of {}",
                seen.csum_level, self.csum_level
            ));
        }
        if seen.ip_summed != self.ip_summed {
            broken.push(format!(
                "ip_summed {} instead of {}",
                seen.ip_summed.name(),
                self.ip_summed.name()
            ));
        }
        (!broken.is_empty()).then(|| broken.join(", "))
    }
}

/// A 300-byte UDP/IPv4 frame from `src` to `dst` (MACs), 198.18.9.1 to
/// 198.18.9.2, for a NIC's self-check.
pub fn probe_frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut frame = dst.to_vec();
    frame.extend(src);
    frame.extend(0x0800u16.to_be_bytes());
    let mut ip = vec![0x45, 0, 0x01, 0x1e, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip.extend([198, 18, 9, 1, 198, 18, 9, 2]);
    let sum = pnet_packet::util::checksum(&ip, 5);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    frame.extend(ip);
    frame.extend([0x03, 0xe8, 0x07, 0xd0, 0x01, 0x0a, 0, 0]);
    frame.resize(300, 0x5a);
    frame
}

/// Sends each probe with `deliver` and checks what the instrument saw
/// against its promise.
pub fn self_check(
    nic: &str,
    probe: &mut SkbStateProbe,
    probes: &[(Vec<u8>, Promise)],
    mut deliver: impl FnMut(&[u8], &Promise) -> io::Result<()>,
) -> Result<(), NicError> {
    let io_err = |source| NicError::Io {
        nic: nic.to_owned(),
        source,
    };
    probe.take().map_err(io_err)?;
    for (frame, promise) in probes {
        deliver(frame, promise).map_err(io_err)?;
        let seen = probe.wait_for(1, PROBE_TIMEOUT).map_err(io_err)?;
        let what = match seen.as_slice() {
            [] => Some("the probe never reached TC ingress".to_owned()),
            [one] => promise.broken_by(one),
            more => Some(format!("{} skbs for one probe", more.len())),
        };
        if let Some(what) = what {
            return Err(NicError::Broken {
                nic: nic.to_owned(),
                what: format!("probe of {} bytes: {what}", frame.len()),
            });
        }
    }
    Ok(())
}
