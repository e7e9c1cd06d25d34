//! C2SP `tlog-proof@v1`: an offline receipt that an entry is in a log — the entry itself as
//! the `extra` line (bureau's leaves are the entries' JSON bytes, so a verifier hashes it), its
//! index, its inclusion proof and the log's checkpoint with whatever cosignatures it carries.

use base64::{engine::general_purpose::STANDARD, Engine as _};

use crate::audit::merkle::Hash;

const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A parsed proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlogProof {
    /// The `extra` data: here the logged entry's bytes.
    pub extra: Option<Vec<u8>>,
    /// The entry's index.
    pub index: u64,
    /// RFC 6962 inclusion proof, leaf's sibling first.
    pub proof: Vec<Hash>,
    /// The checkpoint, verbatim (signature lines included).
    pub checkpoint: String,
}

impl TlogProof {
    /// The proof's text.
    pub(crate) fn encode(&self) -> String {
        let mut s = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            s.push_str(&format!("extra {}\n", STANDARD.encode(extra)));
        }
        s.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            s.push_str(&STANDARD.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Parses a proof's text; why not, when it is not one.
    pub(crate) fn parse(text: &str) -> Result<Self, &'static str> {
        let (head, checkpoint) = text.split_once("\n\n").ok_or("no blank line before the checkpoint")?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err("not a c2sp.org/tlog-proof@v1");
        }
        let mut line = lines.next().ok_or("no index line")?;
        let mut extra = None;
        if let Some(e) = line.strip_prefix("extra ") {
            extra = Some(STANDARD.decode(e).map_err(|_| "extra is not base64")?);
            line = lines.next().ok_or("no index line")?;
        }
        let index = line
            .strip_prefix("index ")
            .filter(|i| !(i.len() > 1 && i.starts_with('0')))
            .and_then(|i| i.parse().ok())
            .ok_or("bad index line")?;
        let proof = lines
            .map(|l| STANDARD.decode(l).ok().and_then(|h| Hash::try_from(h).ok()))
            .collect::<Option<Vec<Hash>>>()
            .ok_or("bad proof line")?;
        Ok(Self { extra, index, proof, checkpoint: checkpoint.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_a_proof() {
        let p = TlogProof {
            extra: Some(b"{\"action\":\"query_inbound\"}".to_vec()),
            index: 73894,
            proof: vec![[1; 32], [2; 32]],
            checkpoint: "example.com/fancylog\n109482\nsFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n\n\u{2014} x y\n"
                .into(),
        };
        let text = p.encode();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "));
        assert_eq!(TlogProof::parse(&text).unwrap(), p);
        let bare = TlogProof { extra: None, proof: vec![], ..p.clone() };
        assert_eq!(TlogProof::parse(&bare.encode()).unwrap(), bare);
        for bad in [
            "",
            "c2sp.org/tlog-proof@v2\nindex 1\n\nx",
            "c2sp.org/tlog-proof@v1\nindex 01\n\nx",
            "c2sp.org/tlog-proof@v1\nindex 1\nnope\n\nx",
        ] {
            assert!(TlogProof::parse(bad).is_err(), "{bad:?}");
        }
    }
}
