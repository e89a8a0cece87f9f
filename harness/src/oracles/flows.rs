//! Live flows judged against their client group's `expect:`: how the flow
//! ended, which node's service answered, and the reply's bytes.

use super::Finding;
use crate::{formats::scenario::model::FlowExpect, live::client::FlowOutcome};

/// What one flow saw, as the oracle needs it.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// How it ended.
    pub outcome: &'a FlowOutcome,
    /// The node whose service reported serving it, if one did.
    pub served_by: Option<&'a str>,
    /// The node owning the real the load balancer chose, if there is a
    /// load balancer and it chose one.
    pub lb_choice: Option<&'a str>,
}

/// Everything in `expect` that the flow violates.
pub fn judge(expect: &FlowExpect, seen: Observed<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let detail = match seen.outcome {
        FlowOutcome::Refused(why) | FlowOutcome::Unreachable(why) | FlowOutcome::Failed(why) => {
            format!(" ({why})")
        }
        _ => String::new(),
    };
    if let Some(want) = expect.outcome
        && want.name() != seen.outcome.kind()
    {
        findings.push(Finding::Flow(format!(
            "outcome: expected {}, actual {}{detail}",
            want.name(),
            seen.outcome.kind()
        )));
    }
    if let Some(want) = &expect.served_by {
        let (want, what) = if want == crate::formats::scenario::load::LB_CHOICE {
            (seen.lb_choice, "the load balancer's choice")
        } else {
            (Some(want.as_str()), "")
        };
        if want != seen.served_by || want.is_none() {
            let name = |n: Option<&str>| n.unwrap_or("(none)").to_owned();
            let why = if what.is_empty() {
                String::new()
            } else {
                format!(", {what}")
            };
            findings.push(Finding::Flow(format!(
                "served by: expected {}{why}, actual {} (outcome {}{detail})",
                name(want),
                name(seen.served_by),
                seen.outcome.kind()
            )));
        }
    }
    if let Some(want) = &expect.reply {
        match seen.outcome {
            FlowOutcome::Reply { bytes, .. } if bytes == want.as_bytes() => {}
            FlowOutcome::Reply { bytes, .. } => findings.push(Finding::Flow(format!(
                "reply: expected {want:?}, actual {:?}",
                String::from_utf8_lossy(bytes)
            ))),
            other => findings.push(Finding::Flow(format!(
                "reply: expected {want:?}, but the flow ended {}{detail}",
                other.kind()
            ))),
        }
    }
    findings
}

/// An echo service's reply must be the request, byte for byte: what the
/// client's socket received against what it sent, through every program
/// on the way there and back.
pub fn echo(request: &[u8], reply: &[u8]) -> Option<Finding> {
    if request == reply {
        return None;
    }
    let first = request
        .iter()
        .zip(reply)
        .position(|(a, b)| a != b)
        .unwrap_or(request.len().min(reply.len()));
    Some(Finding::Flow(format!(
        "payload: the echo is not the request (sent {} bytes, got {}; first difference at byte {first})",
        request.len(),
        reply.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::scenario::model::FlowOutcomeKind;

    #[test]
    fn an_echo_must_be_the_request() {
        assert_eq!(echo(b"abc", b"abc"), None);
        let f = echo(b"abcd", b"abXd").unwrap().to_string();
        assert!(
            f.contains("sent 4 bytes, got 4; first difference at byte 2"),
            "{f}"
        );
        let f = echo(b"abcd", b"ab").unwrap().to_string();
        assert!(f.contains("got 2; first difference at byte 2"), "{f}");
    }

    #[test]
    fn each_expectation_fails_on_its_own() {
        let reply = FlowOutcome::Reply {
            bytes: b"a".to_vec(),
            from: "198.18.100.1:80".parse().unwrap(),
        };
        let seen = Observed {
            outcome: &reply,
            served_by: Some("a"),
            lb_choice: Some("b"),
        };
        let ok = FlowExpect {
            outcome: Some(FlowOutcomeKind::Reply),
            served_by: Some("a".into()),
            reply: Some("a".into()),
        };
        assert!(judge(&ok, seen).is_empty());
        let lb = FlowExpect {
            served_by: Some("lb_choice".into()),
            ..FlowExpect::default()
        };
        let f = judge(&lb, seen);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].to_string()
                .contains("expected b, the load balancer's choice, actual a"),
            "{}",
            f[0]
        );
        let refused = FlowOutcome::Refused("Connection refused".into());
        let f = judge(
            &ok,
            Observed {
                outcome: &refused,
                served_by: None,
                lb_choice: None,
            },
        );
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(
            f[0].to_string()
                .contains("expected reply, actual refused (Connection refused)")
        );
    }
}
