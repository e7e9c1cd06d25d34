//! C2SP `tlog-tiles` addressing: the paths of hash tiles and entry bundles, which stored
//! complete subtrees a hash tile is, and the entry bundle encoding. The log already keeps every
//! complete subtree (see [`crate::audit::merkle`]), so a hash tile of tile level L is 256 (or,
//! partial, fewer) stored nodes at tree level 8·L, read as they are: no tile is ever written.

/// Hashes in a full tile.
pub(crate) const TILE_WIDTH: u64 = 256;
/// Tree levels one tile spans.
pub(crate) const TILE_HEIGHT: u8 = 8;

/// What a tile path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TileKind {
    /// A hash tile at this tile level (0..=7 for any log that fits a `u64`).
    Hash(u8),
    /// An entry bundle.
    Entries,
}

/// One tile or entry bundle: `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tile {
    /// Hash tile or entry bundle.
    pub kind: TileKind,
    /// The tile's index within its level.
    pub index: u64,
    /// Hashes (or entries) in it: 256 for a full tile, 1..=255 for a partial one.
    pub width: u64,
}

/// Why a path is not a tile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a tile path: {0}")]
pub(crate) struct BadTilePath(pub &'static str);

/// Parses a decimal with no leading zeroes (but `0` itself).
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl Tile {
    /// Parses the part of a path after `tile/`.
    pub(crate) fn parse(rest: &str) -> Result<Self, BadTilePath> {
        let (head, tail) = rest.split_once('/').ok_or(BadTilePath("no level"))?;
        let kind = match head {
            "entries" => TileKind::Entries,
            l => {
                let level = decimal(l).filter(|l| *l <= 63).ok_or(BadTilePath("bad level"))?;
                // Tile level 8 and above would start past 2^64 entries.
                TileKind::Hash(u8::try_from(level).ok().filter(|l| *l < 8).ok_or(BadTilePath("level too high"))?)
            }
        };
        let (index_part, width) = match tail.split_once(".p/") {
            Some((i, w)) => (i, decimal(w).filter(|w| (1..TILE_WIDTH).contains(w)).ok_or(BadTilePath("bad width"))?),
            None => (tail, TILE_WIDTH),
        };
        let parts: Vec<&str> = index_part.split('/').collect();
        let mut index: u64 = 0;
        for (k, p) in parts.iter().enumerate() {
            let digits = if k + 1 < parts.len() { p.strip_prefix('x') } else { Some(*p) };
            let Some(d) = digits.filter(|d| d.len() == 3 && d.bytes().all(|b| b.is_ascii_digit())) else {
                return Err(BadTilePath("bad index element"));
            };
            let d: u64 = d.parse().map_err(|_| BadTilePath("bad index element"))?;
            index = index.checked_mul(1000).and_then(|i| i.checked_add(d)).ok_or(BadTilePath("index too large"))?;
        }
        if parts.len() > 1 && parts[0] == "x000" {
            return Err(BadTilePath("index has a leading zero element"));
        }
        Ok(Self { kind, index, width })
    }

    /// The path after the log's prefix: `tile/0/x001/234` and so on.
    #[cfg(any(test, feature = "testkit"))]
    pub(crate) fn path(&self) -> String {
        let level = match self.kind {
            TileKind::Hash(l) => l.to_string(),
            TileKind::Entries => "entries".to_owned(),
        };
        let mut s = format!("tile/{level}/{}", encode_index(self.index));
        if self.width < TILE_WIDTH {
            s.push_str(&format!(".p/{}", self.width));
        }
        s
    }

    /// The tree level of the stored nodes this tile holds (leaves for an entry bundle).
    pub(crate) fn node_level(&self) -> u8 {
        match self.kind {
            TileKind::Hash(l) => l * TILE_HEIGHT,
            TileKind::Entries => 0,
        }
    }

    /// The index, at [`Self::node_level`], of the tile's first node (or entry).
    pub(crate) fn first_node(&self) -> Option<u64> {
        self.index.checked_mul(TILE_WIDTH)
    }

    /// The smallest tree size that holds the whole tile; `None` beyond any `u64` size.
    pub(crate) fn needs_size(&self) -> Option<u64> {
        let nodes = self.first_node()?.checked_add(self.width)?;
        nodes.checked_mul(1u64.checked_shl(u32::from(self.node_level()))?)
    }
}

/// `1234067` → `x001/x234/067`.
#[cfg(any(test, feature = "testkit"))]
pub(crate) fn encode_index(mut n: u64) -> String {
    let mut parts = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        parts.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    parts.reverse();
    parts.join("/")
}

/// An entry bundle: each entry as a big-endian u16 length, then its bytes. `None` when an
/// entry is longer than 65 535 bytes (the format cannot say it).
pub(crate) fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&u16::try_from(e.len()).ok()?.to_be_bytes());
        out.extend_from_slice(e);
    }
    Some(out)
}

/// The entries of a bundle; `None` when it is cut short.
#[cfg(any(test, feature = "testkit"))]
pub(crate) fn parse_bundle(mut b: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let len = usize::from(u16::from_be_bytes([*b.first()?, *b.get(1)?]));
        out.push(b.get(2..2 + len)?.to_vec());
        b = &b[2 + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_spec_examples() {
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(1000), "x001/000");
        let t = Tile::parse("0/x001/x234/067").unwrap();
        assert_eq!(t, Tile { kind: TileKind::Hash(0), index: 1234067, width: 256 });
        assert_eq!(t.path(), "tile/0/x001/x234/067");
        let p = Tile::parse("entries/012.p/7").unwrap();
        assert_eq!(p, Tile { kind: TileKind::Entries, index: 12, width: 7 });
        assert_eq!(p.path(), "tile/entries/012.p/7");
        for bad in
            ["0/12", "0/x012", "00/000", "0/000.p/0", "0/000.p/256", "0/000.p/07", "9/000", "0/x000/001", "x/000", "0"]
        {
            assert!(Tile::parse(bad).is_err(), "{bad}");
        }
    }

    /// The spec's example: a tree of 70 000 has 273 full level-0 tiles and a partial one of
    /// width 112, one full level-1 tile and a partial one of 17, a partial level-2 tile of 1.
    #[test]
    fn sizes_a_tile_needs_match_the_spec_example() {
        let size = 70_000u64;
        let fits = |t: Tile| t.needs_size().is_some_and(|n| n <= size);
        assert!(fits(Tile { kind: TileKind::Hash(0), index: 272, width: 256 }));
        assert!(!fits(Tile { kind: TileKind::Hash(0), index: 273, width: 256 }));
        assert!(fits(Tile { kind: TileKind::Hash(0), index: 273, width: 112 }));
        assert!(!fits(Tile { kind: TileKind::Hash(0), index: 273, width: 113 }));
        assert!(fits(Tile { kind: TileKind::Hash(1), index: 0, width: 256 }));
        assert!(fits(Tile { kind: TileKind::Hash(1), index: 1, width: 17 }));
        assert!(!fits(Tile { kind: TileKind::Hash(1), index: 1, width: 18 }));
        assert!(fits(Tile { kind: TileKind::Hash(2), index: 0, width: 1 }));
        assert!(!fits(Tile { kind: TileKind::Hash(2), index: 0, width: 2 }));
        assert_eq!(Tile { kind: TileKind::Hash(7), index: u64::MAX / 256, width: 256 }.needs_size(), None);
    }

    #[test]
    fn bundles_round_trip_and_refuse_what_they_cannot_say() {
        let entries: Vec<&[u8]> = vec![b"a", b"", b"{\"x\":1}"];
        let b = entry_bundle(entries.iter().copied()).unwrap();
        assert_eq!(&b[..3], &[0, 1, b'a']);
        assert_eq!(parse_bundle(&b).unwrap(), entries.iter().map(|e| e.to_vec()).collect::<Vec<_>>());
        assert!(parse_bundle(&b[..b.len() - 1]).is_none());
        assert!(entry_bundle([&vec![0u8; 70_000][..]]).is_none());
    }
}
