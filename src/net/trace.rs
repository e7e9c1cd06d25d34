//! W3C Trace Context (`traceparent`): one federated score can be followed from the calling
//! application through every peer. A node takes the caller's `traceparent` when it is valid and
//! starts a trace otherwise; each peer query carries a child of it; both ends log the trace id
//! beside the query id.

use rand::RngCore;

/// The gRPC metadata key (HTTP header) that carries the context.
pub(crate) const HEADER: &str = "traceparent";

/// A trace context: trace id, this hop's span id, flags, and the span it is a child of (known
/// for the hops this node makes; a received header's parent is the sender's business).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    parent: Option<[u8; 8]>,
}

impl TraceContext {
    /// Parses a version-00 `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`); `None` when it is
    /// malformed or an all-zero id (invalid by the spec).
    pub(crate) fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (Some(version), Some(trace), Some(span), Some(flags), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let lower_hex = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if version != "00" || ![trace, span, flags].iter().all(|p| lower_hex(p)) {
            return None;
        }
        let trace_id: [u8; 16] = hex::decode(trace).ok()?.try_into().ok()?;
        let span_id: [u8; 8] = hex::decode(span).ok()?.try_into().ok()?;
        let flags = *hex::decode(flags).ok()?.first()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self { trace_id, span_id, flags, parent: None })
    }

    /// A new trace (sampled), for a call that came without one.
    pub(crate) fn new_root() -> Self {
        let mut rng = rand::thread_rng();
        let mut trace_id = [0u8; 16];
        rng.fill_bytes(&mut trace_id);
        Self { trace_id, span_id: random_span(&mut rng), flags: 1, parent: None }
    }

    /// The context of a call this hop makes (or, for a received header, of the hop that
    /// answers it): same trace, new span, this one its parent.
    pub(crate) fn child(&self) -> Self {
        Self { span_id: random_span(&mut rand::thread_rng()), parent: Some(self.span_id), ..*self }
    }

    /// The trace id's bytes.
    pub(crate) fn trace_id_bytes(&self) -> [u8; 16] {
        self.trace_id
    }

    /// This hop's span id.
    pub(crate) fn span_id_bytes(&self) -> [u8; 8] {
        self.span_id
    }

    /// The span this hop is a child of, when known.
    pub(crate) fn parent_span_id(&self) -> Option<[u8; 8]> {
        self.parent
    }

    /// Whether the caller asked for the trace to be recorded (flag `01`).
    pub(crate) fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The trace id as 32 lowercase hex digits (what the logs show).
    pub(crate) fn trace_id(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The `traceparent` header value.
    pub(crate) fn header(&self) -> String {
        format!("00-{}-{}-{:02x}", hex::encode(self.trace_id), hex::encode(self.span_id), self.flags)
    }
}

fn random_span(rng: &mut impl RngCore) -> [u8; 8] {
    loop {
        let mut s = [0u8; 8];
        rng.fill_bytes(&mut s);
        if s != [0; 8] {
            return s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_round_trips_and_children_keep_the_trace() {
        let h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let t = TraceContext::parse(h).unwrap();
        assert_eq!(t.header(), h);
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let c = t.child();
        assert_eq!(c.trace_id(), t.trace_id());
        assert_ne!(c.header(), h);
        assert_eq!(c.parent_span_id(), Some(t.span_id_bytes()), "a child names its parent");
    }

    #[test]
    fn malformed_or_zero_contexts_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }
}
