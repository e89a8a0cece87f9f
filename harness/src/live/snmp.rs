//! A namespace's SNMP counters (`/proc/net/snmp`, `/proc/net/snmp6`):
//! what the stack did with the packets a program delivered — checksum
//! errors, packets for no port, header errors. Names join the protocol and
//! the field as `nstat` does: `UdpInCsumErrors`, `TcpInCsumErrors`,
//! `Udp6InCsumErrors`, `IpInHdrErrors`.

use std::{collections::BTreeMap, fs, io};

/// Counters by name.
pub type Counters = BTreeMap<String, u64>;

/// The calling thread's namespace's counters. Through
/// `/proc/thread-self/net`: `/proc/net` is `/proc/self/net`, the namespace
/// of the process's main thread, not of a thread that entered another.
pub fn read() -> io::Result<Counters> {
    let read = |file: &str| {
        let path = format!("/proc/thread-self/net/{file}");
        fs::read_to_string(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
    };
    let mut counters = parse_snmp(&read("snmp")?);
    counters.extend(parse_snmp6(&read("snmp6")?));
    Ok(counters)
}

/// `/proc/net/snmp`: pairs of lines, `Proto: Name Name ...` then
/// `Proto: value value ...`.
fn parse_snmp(text: &str) -> Counters {
    let mut counters = Counters::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((proto, names)), Some((_, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = value.parse::<u64>() {
                counters.insert(format!("{proto}{name}"), v);
            }
        }
    }
    counters
}

/// `/proc/net/snmp6`: one `Name value` per line.
fn parse_snmp6(text: &str) -> Counters {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (name, value) = (parts.next()?, parts.next()?.parse().ok()?);
            Some((name.to_owned(), value))
        })
        .collect()
}

/// What moved between `before` and `after`, by name (counters that did not
/// move are left out).
pub fn delta(before: &Counters, after: &Counters) -> BTreeMap<String, i64> {
    after
        .iter()
        .filter_map(|(name, &a)| {
            let d = a as i64 - before.get(name).copied().unwrap_or(0) as i64;
            (d != 0).then(|| (name.clone(), d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_files_are_read_into_nstat_names() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors InCsumErrors\nUdp: 3 2 1 1\n";
        let c = parse_snmp(snmp);
        assert_eq!(c["UdpInCsumErrors"], 1);
        assert_eq!(c["IpDefaultTTL"], 64);
        let c6 = parse_snmp6("Ip6InReceives                   \t5\nUdp6InCsumErrors 2\n");
        assert_eq!(c6["Udp6InCsumErrors"], 2);
        let mut after = c.clone();
        after.insert("UdpNoPorts".into(), 5);
        assert_eq!(delta(&c, &after), [("UdpNoPorts".to_owned(), 3)].into());
    }
}
