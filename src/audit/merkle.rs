//! RFC 6962 / RFC 9162 Merkle tree math for the audit log: leaf and node hashing with their
//! domain-separation prefixes, roots, inclusion and consistency proofs and their verifiers.
//!
//! The tree is stored as the hashes of its *complete* subtrees, addressed by (level, index):
//! the node at (level, i) covers leaves `[i·2^level, (i+1)·2^level)`. Appending a leaf stores it
//! and each subtree it completes (amortised two writes); roots and proofs of any tree size need
//! only O(log n) stored nodes, since the incomplete right edge is recomputed from complete ones.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Stored nodes as ((level, index), hash).
pub type Nodes = Vec<((u8, u64), Hash)>;

/// The nodes that appending leaf `index` with hash `leaf` completes, leaf included. `get` reads
/// stored complete nodes (the left siblings).
pub fn append_nodes<E>(index: u64, leaf: Hash, mut get: impl FnMut(u8, u64) -> Result<Hash, E>) -> Result<Nodes, E> {
    let mut out = vec![((0, index), leaf)];
    let (mut level, mut i, mut h) = (0u8, index, leaf);
    while i & 1 == 1 {
        let left = get(level, i - 1)?;
        h = node_hash(&left, &h);
        level += 1;
        i >>= 1;
        out.push(((level, i), h));
    }
    Ok(out)
}

/// Reads stored complete-subtree hashes.
pub struct Tree<F> {
    get: F,
}

impl<F, E> Tree<F>
where
    F: FnMut(u8, u64) -> Result<Hash, E>,
{
    /// A tree over the node reader `get(level, index)`.
    pub fn new(get: F) -> Self {
        Self { get }
    }

    /// MTH of leaves `[start, start + n)`, with `start` aligned as the RFC's recursion makes it.
    fn subtree(&mut self, start: u64, n: u64) -> Result<Hash, E> {
        if n.is_power_of_two() {
            let level = n.trailing_zeros() as u8;
            return (self.get)(level, start >> level);
        }
        let k = split(n);
        let left = self.subtree(start, k)?;
        let right = self.subtree(start + k, n - k)?;
        Ok(node_hash(&left, &right))
    }

    /// The root of the first `size` leaves.
    pub fn root(&mut self, size: u64) -> Result<Hash, E> {
        if size == 0 {
            return Ok(empty_root());
        }
        self.subtree(0, size)
    }

    /// RFC 9162 §2.1.3.1 PATH(index, D[size]), bottom up. Requires index < size.
    pub fn inclusion_proof(&mut self, index: u64, size: u64) -> Result<Vec<Hash>, E> {
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof)?;
        Ok(proof)
    }

    fn path(&mut self, m: u64, start: u64, n: u64, out: &mut Vec<Hash>) -> Result<(), E> {
        if n <= 1 {
            return Ok(());
        }
        let k = split(n);
        if m < k {
            self.path(m, start, k, out)?;
            out.push(self.subtree(start + k, n - k)?);
        } else {
            self.path(m - k, start + k, n - k, out)?;
            out.push(self.subtree(start, k)?);
        }
        Ok(())
    }

    /// RFC 9162 §2.1.4.1 PROOF(m, D[n]). Requires 0 < m ≤ n.
    pub fn consistency_proof(&mut self, m: u64, n: u64) -> Result<Vec<Hash>, E> {
        let mut proof = Vec::new();
        self.subproof(m, 0, n, true, &mut proof)?;
        Ok(proof)
    }

    fn subproof(&mut self, m: u64, start: u64, n: u64, complete: bool, out: &mut Vec<Hash>) -> Result<(), E> {
        if m == n {
            if !complete {
                out.push(self.subtree(start, n)?);
            }
            return Ok(());
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, k, complete, out)?;
            out.push(self.subtree(start + k, n - k)?);
        } else {
            self.subproof(m - k, start + k, n - k, false, out)?;
            out.push(self.subtree(start, k)?);
        }
        Ok(())
    }
}

/// RFC 9162 §2.1.3.2: does `proof` show leaf `leaf` at `index` in the tree of `size` with `root`?
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && &r == root
}

/// RFC 9162 §2.1.4.2: does `proof` show the tree of size `m` with `root_m` is a prefix of the
/// tree of size `n` with `root_n`?
pub fn verify_consistency(m: u64, n: u64, root_m: &Hash, root_n: &Hash, proof: &[Hash]) -> bool {
    if m == 0 || m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && root_m == root_n;
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if m.is_power_of_two() {
        path.insert(0, *root_m);
    }
    let Some((first, rest)) = path.split_first() else { return false };
    let (mut fnode, mut snode) = (m - 1, n - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    &fr == root_m && &sr == root_n && snode == 0
}

/// Computes the root of a whole log from its entries in one pass, keeping only O(log n)
/// hashes: what a regulator uses to check that the entries it fetched are the tree it was shown.
#[derive(Debug, Default, Clone)]
pub struct StreamingRoot {
    /// Complete subtrees on the right edge: (level, hash), strictly decreasing levels.
    stack: Vec<(u8, Hash)>,
    size: u64,
}

impl StreamingRoot {
    /// Adds the next entry.
    pub fn push(&mut self, entry: &[u8]) {
        self.push_leaf(leaf_hash(entry));
    }

    /// Adds the next leaf hash.
    pub fn push_leaf(&mut self, leaf: Hash) {
        let mut node = (0u8, leaf);
        while let Some(&(level, left)) = self.stack.last() {
            if level != node.0 {
                break;
            }
            self.stack.pop();
            node = (level + 1, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.size += 1;
    }

    /// Entries added.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of everything added so far.
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some(&(_, mut acc)) = it.next() else { return empty_root() };
        for (_, left) in it {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// The RFC's recursive definitions over in-memory leaves, written independently of the
    /// stored-node prover above, to check it against.
    mod reference {
        use super::super::{leaf_hash, node_hash, split, Hash};

        pub(super) fn mth(d: &[Vec<u8>]) -> Hash {
            match d.len() {
                0 => sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new()).into(),
                1 => leaf_hash(&d[0]),
                n => {
                    let k = split(n as u64) as usize;
                    node_hash(&mth(&d[..k]), &mth(&d[k..]))
                }
            }
        }

        pub(super) fn path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
            let n = d.len();
            if n <= 1 {
                return vec![];
            }
            let k = split(n as u64) as usize;
            if m < k {
                let mut p = path(m, &d[..k]);
                p.push(mth(&d[k..]));
                p
            } else {
                let mut p = path(m - k, &d[k..]);
                p.push(mth(&d[..k]));
                p
            }
        }

        pub(super) fn subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
            let n = d.len();
            if m == n {
                return if b { vec![] } else { vec![mth(d)] };
            }
            let k = split(n as u64) as usize;
            if m <= k {
                let mut p = subproof(m, &d[..k], b);
                p.push(mth(&d[k..]));
                p
            } else {
                let mut p = subproof(m - k, &d[k..], false);
                p.push(mth(&d[..k]));
                p
            }
        }
    }

    /// A tree of `n` leaves in a HashMap node store, built by appends.
    type Store = HashMap<(u8, u64), Hash>;

    fn build(n: usize) -> (Vec<Vec<u8>>, Store) {
        let leaves: Vec<Vec<u8>> = (0..n).map(|i| format!("entry {i}").into_bytes()).collect();
        let mut nodes = HashMap::new();
        for (i, l) in leaves.iter().enumerate() {
            let new = append_nodes(i as u64, leaf_hash(l), |lv, ix| Ok::<_, ()>(nodes[&(lv, ix)])).unwrap();
            nodes.extend(new);
        }
        (leaves, nodes)
    }

    fn tree(nodes: &HashMap<(u8, u64), Hash>) -> Tree<impl FnMut(u8, u64) -> Result<Hash, ()> + '_> {
        Tree::new(move |l, i| nodes.get(&(l, i)).copied().ok_or(()))
    }

    /// Roots of the RFC 6962 test data used by Certificate Transparency implementations.
    #[test]
    fn roots_match_published_ct_test_vectors() {
        let inputs: Vec<Vec<u8>> =
            ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
                .iter()
                .map(|h| hex::decode(h).unwrap())
                .collect();
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let mut nodes = HashMap::new();
        let mut stream = StreamingRoot::default();
        for (i, input) in inputs.iter().enumerate() {
            nodes.extend(append_nodes(i as u64, leaf_hash(input), |l, ix| Ok::<_, ()>(nodes[&(l, ix)])).unwrap());
            stream.push(input);
            let root = tree(&nodes).root(i as u64 + 1).unwrap();
            assert_eq!(hex::encode(root), roots[i], "size {}", i + 1);
            assert_eq!(stream.root(), root);
        }
        assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    // Proof vectors published by transparency-dev/merkle (testonly/constants.go and
    // reference_test.go), over the same eight leaves as the roots above.
    const TD_INCLUSION: &[(u64, u64, &[&str])] = &[
        (1, 0, &[]),
        (2, 0, &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
        (2, 1, &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
        (3, 2, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        (
            5,
            1,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            8,
            0,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            8,
            5,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    const TD_CONSISTENCY: &[(u64, u64, &[&str])] = &[
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    #[test]
    fn proofs_match_published_transparency_dev_vectors() {
        let inputs: Vec<Vec<u8>> =
            ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
                .iter()
                .map(|h| hex::decode(h).unwrap())
                .collect();
        let mut nodes = HashMap::new();
        for (i, input) in inputs.iter().enumerate() {
            nodes.extend(append_nodes(i as u64, leaf_hash(input), |l, ix| Ok::<_, ()>(nodes[&(l, ix)])).unwrap());
        }
        let unhex = |h: &&str| -> Hash { hex::decode(h).unwrap().try_into().unwrap() };
        let mut t = tree(&nodes);
        for &(size, index, want) in TD_INCLUSION {
            let want: Vec<Hash> = want.iter().map(unhex).collect();
            assert_eq!(t.inclusion_proof(index, size).unwrap(), want, "inclusion size {size} index {index}");
            let root = t.root(size).unwrap();
            assert!(verify_inclusion(&leaf_hash(&inputs[index as usize]), index, size, &want, &root));
        }
        for &(m, n, want) in TD_CONSISTENCY {
            let want: Vec<Hash> = want.iter().map(unhex).collect();
            assert_eq!(t.consistency_proof(m, n).unwrap(), want, "consistency {m} {n}");
            assert!(verify_consistency(m, n, &t.root(m).unwrap(), &t.root(n).unwrap(), &want));
        }
    }

    #[test]
    fn inclusion_proofs_for_every_leaf_of_every_size_up_to_257() {
        let (leaves, nodes) = build(257);
        let mut t = tree(&nodes);
        for n in 1..=257usize {
            let root = t.root(n as u64).unwrap();
            assert_eq!(root, reference::mth(&leaves[..n]));
            for m in 0..n {
                let proof = t.inclusion_proof(m as u64, n as u64).unwrap();
                // The reference is cubic: compare every leaf up to 64, the edges and middle above.
                if n <= 64 || m == 0 || m == n / 2 || m == n - 1 {
                    assert_eq!(proof, reference::path(m, &leaves[..n]), "path({m}, {n})");
                }
                let leaf = leaf_hash(&leaves[m]);
                assert!(verify_inclusion(&leaf, m as u64, n as u64, &proof, &root));
                if n > 1 {
                    let other = ((m + 1) % n) as u64;
                    assert!(!verify_inclusion(&leaf, other, n as u64, &proof, &root), "wrong index {other} accepted");
                }
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_inclusion(&leaf, m as u64, n as u64, &bad, &root), "{first:?}");
                }
            }
        }
    }

    #[test]
    fn consistency_proofs_for_every_pair_up_to_130() {
        let (leaves, nodes) = build(130);
        let mut t = tree(&nodes);
        for n in 1..=130usize {
            let root_n = t.root(n as u64).unwrap();
            for m in 1..=n {
                let root_m = t.root(m as u64).unwrap();
                let proof = t.consistency_proof(m as u64, n as u64).unwrap();
                assert_eq!(proof, reference::subproof(m, &leaves[..n], true), "proof({m}, {n})");
                assert!(verify_consistency(m as u64, n as u64, &root_m, &root_n, &proof), "{m} {n}");
                if m < n {
                    assert!(!verify_consistency(m as u64, n as u64, &root_n, &root_n, &proof) || root_m == root_n);
                    let mut bad = proof.clone();
                    bad[0][31] ^= 0x80;
                    assert!(!verify_consistency(m as u64, n as u64, &root_m, &root_n, &bad), "{m} {n}");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn random_pairs_in_larger_trees(n in 258u64..2100, a in any::<u64>(), b in any::<u64>()) {
            let (leaves, nodes) = build(n as usize);
            let mut t = tree(&nodes);
            let m = 1 + a % n;
            let k = b % n;
            let (root_m, root_n) = (t.root(m).unwrap(), t.root(n).unwrap());
            prop_assert_eq!(root_n, reference::mth(&leaves));
            let proof = t.consistency_proof(m, n).unwrap();
            prop_assert!(verify_consistency(m, n, &root_m, &root_n, &proof));
            prop_assert!(!verify_consistency(m, n, &root_m, &leaf_hash(b"other"), &proof));
            let p = t.inclusion_proof(k, n).unwrap();
            prop_assert!(verify_inclusion(&leaf_hash(&leaves[k as usize]), k, n, &p, &root_n));
            prop_assert!(!verify_inclusion(&leaf_hash(b"forged"), k, n, &p, &root_n));
        }
    }
}
