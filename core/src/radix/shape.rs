//! The shape of a radix comparison: chunks, the fan-in-4 tree above them, and for each tree
//! node which masked wires it opens and which mask products the dealer supplies.

/// Bits per leaf chunk (one-hot vectors of 2^4 = 16 words).
pub const CHUNK_BITS: u32 = 4;
/// Largest fan-in of a tree node.
pub const FAN: usize = 4;
/// Wires of a node: G and P of each child (wire 2j = G_j, wire 2j + 1 = P_j).
const MAX_WIRES: usize = 2 * FAN;
/// Largest family of mask products (k = 4 with P: 22).
pub const MAX_FAMILY: usize = 24;
/// Most nodes in one level (l = 64: 16 chunks -> 4 nodes).
pub const MAX_NODES: usize = 4;

/// A tree node: its children `first..first + k` of the level below (child 0 least
/// significant), and whether its P is needed (every node but the lowest of its level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    /// First child.
    pub first: usize,
    /// Fan-in.
    pub k: usize,
    /// P (all children equal) is needed above.
    pub need_p: bool,
}

/// The wire set of term j of G = xor_j G_j prod_{i > j} P_i (j < k - 1).
const fn term_wires(k: usize, j: usize) -> u16 {
    let mut w = 1u16 << (2 * j);
    let mut i = j + 1;
    while i < k {
        w |= 1 << (2 * i + 1);
        i += 1;
    }
    w
}

/// The wire set of P = prod_j P_j.
const fn p_wires(k: usize) -> u16 {
    let mut w = 0u16;
    let mut i = 0;
    while i < k {
        w |= 1 << (2 * i + 1);
        i += 1;
    }
    w
}

/// The mask products one node needs: every wire set S with |S| >= 2 inside some product
/// term, in increasing order of S as a bit set; `index[S]` is its position.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// The node's fan-in.
    pub k: usize,
    /// Whether the node computes P.
    pub need_p: bool,
    /// The wires the node opens (a bit set).
    pub used: u16,
    list: [u16; MAX_FAMILY],
    len: usize,
    index: [u8; 1 << MAX_WIRES],
}

impl Family {
    /// The family of a node of fan-in `k` (1..=4).
    pub fn new(k: usize, need_p: bool) -> Self {
        let mut terms = [0u16; FAN + 1];
        let mut nt = 0;
        if k >= 2 {
            for j in 0..k - 1 {
                terms[nt] = term_wires(k, j);
                nt += 1;
            }
            if need_p {
                terms[nt] = p_wires(k);
                nt += 1;
            }
        }
        let mut f = Family { k, need_p, used: 0, list: [0; MAX_FAMILY], len: 0, index: [u8::MAX; 256] };
        for t in &terms[..nt] {
            f.used |= t;
        }
        for s in 0u16..(1 << (2 * k)) {
            if s.count_ones() >= 2 && terms[..nt].iter().any(|t| s & !t == 0) {
                f.index[usize::from(s)] = u8::try_from(f.len).unwrap_or(u8::MAX);
                f.list[f.len] = s;
                f.len += 1;
            }
        }
        f
    }

    /// The product sets, in order.
    pub fn sets(&self) -> &[u16] {
        &self.list[..self.len]
    }

    /// Position of product set `s` (|s| >= 2, in the family).
    pub fn pos(&self, s: u16) -> usize {
        usize::from(self.index[usize::from(s)])
    }

    /// Words the node opens.
    pub fn opened(&self) -> usize {
        self.used.count_ones() as usize
    }

    /// The product terms of G (below the linear top term) and, if needed, of P.
    pub fn g_terms(&self) -> impl Iterator<Item = u16> + '_ {
        (0..self.k.saturating_sub(1)).map(|j| term_wires(self.k, j))
    }

    /// The wire set of P.
    pub fn p_term(&self) -> u16 {
        p_wires(self.k)
    }
}

/// The nodes of one level and their families.
#[derive(Clone, Debug)]
pub struct Level {
    nodes: [Node; MAX_NODES],
    fams: [Family; MAX_NODES],
    n: usize,
}

impl Level {
    /// The nodes in order, each with its family.
    pub fn iter(&self) -> impl Iterator<Item = (&Node, &Family)> {
        self.nodes[..self.n].iter().zip(&self.fams[..self.n])
    }
}

/// Sizes of one radix comparison over `len` values of a `bits`-bit ring: the low `bits - 1`
/// bits in chunks of 4 (the top chunk may be narrower), then levels of fan-in 4 until one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RadixShape {
    /// Elements compared.
    pub len: usize,
    /// Ring width l of the circuit.
    pub bits: u32,
}

impl RadixShape {
    /// The shape for `len` values of a `bits`-bit ring.
    pub const fn new(bits: u32, len: usize) -> Self {
        RadixShape { len, bits }
    }

    /// Groups of 64 lanes.
    pub const fn groups(&self) -> usize {
        self.len.div_ceil(64)
    }

    /// Leaf chunks: ceil((l - 1) / 4).
    pub const fn chunks(&self) -> usize {
        (self.bits - 1).div_ceil(CHUNK_BITS) as usize
    }

    /// Bits of chunk `c` (4, or fewer for the top chunk).
    #[allow(clippy::cast_possible_truncation)] // c < 16
    pub const fn chunk_bits(&self, c: usize) -> u32 {
        let lo = c as u32 * CHUNK_BITS;
        let left = self.bits - 1 - lo;
        if left < CHUNK_BITS { left } else { CHUNK_BITS }
    }

    /// The value of chunk `c` of `v`.
    #[allow(clippy::cast_possible_truncation)] // c < 16, the value < 16
    pub const fn chunk_of(&self, v: u64, c: usize) -> usize {
        ((v >> (c as u32 * CHUNK_BITS)) & ((1 << self.chunk_bits(c)) - 1)) as usize
    }

    /// One-hot words per group: sum over the chunks of 2^(chunk bits).
    pub const fn onehot_words(&self) -> usize {
        let mut s = 0;
        let mut c = 0;
        while c < self.chunks() {
            s += 1 << self.chunk_bits(c);
            c += 1;
        }
        s
    }

    /// Offset of chunk `c`'s one-hot words within a group.
    pub const fn onehot_offset(&self, c: usize) -> usize {
        let mut s = 0;
        let mut i = 0;
        while i < c {
            s += 1 << self.chunk_bits(i);
            i += 1;
        }
        s
    }

    /// Nodes entering `level` (level 0: the chunks).
    pub const fn width(&self, level: u32) -> usize {
        let mut n = self.chunks();
        let mut i = 0;
        while i < level {
            n = n.div_ceil(FAN);
            i += 1;
        }
        n
    }

    /// Tree levels (AND rounds): 2 for l = 32 (8 chunks -> 2 -> 1), 2 for l = 64 (16 -> 4 -> 1).
    pub const fn levels(&self) -> u32 {
        let mut l = 0;
        while self.width(l) > 1 {
            l += 1;
        }
        l
    }

    /// Node `i` of the level above `level` (its children are nodes of `level`).
    pub const fn node(&self, level: u32, i: usize) -> Node {
        let n = self.width(level);
        let first = i * FAN;
        let k = if n - first < FAN { n - first } else { FAN };
        Node { first, k, need_p: i != 0 }
    }

    /// The nodes above `level` with their families.
    pub fn level(&self, level: u32) -> Level {
        let n = self.width(level + 1).min(MAX_NODES);
        let mut lv = Level {
            nodes: [Node { first: 0, k: 1, need_p: false }; MAX_NODES],
            fams: [Family::new(1, false); MAX_NODES],
            n,
        };
        for i in 0..n {
            let nd = self.node(level, i);
            lv.nodes[i] = nd;
            lv.fams[i] = Family::new(nd.k, nd.need_p);
        }
        lv
    }

    /// Per-group (mask words, product words, message words) of `level`.
    fn level_sizes(&self, level: u32) -> [usize; 3] {
        let lv = self.level(level);
        let mut s = [0; 3];
        for (nd, f) in lv.iter() {
            s[0] += 2 * nd.k;
            s[1] += f.sets().len();
            s[2] += f.opened();
        }
        s
    }

    fn before(&self, level: u32) -> [usize; 3] {
        let mut s = [0; 3];
        for l in 0..level {
            let t = self.level_sizes(l);
            for j in 0..3 {
                s[j] += t[j];
            }
        }
        s
    }

    /// Mask words per group (2k per node, every level).
    pub fn mask_words(&self) -> usize {
        self.before(self.levels())[0]
    }

    /// Mask-product words per group (the families of every node).
    pub fn prod_words(&self) -> usize {
        self.before(self.levels())[1]
    }

    /// Words each party sends per group at `level`.
    pub fn level_msg_words(&self, level: u32) -> usize {
        self.level_sizes(level)[2]
    }

    /// (mask, product) word offsets of `level` within a group.
    pub fn level_offsets(&self, level: u32) -> (usize, usize) {
        let b = self.before(level);
        (b[0], b[1])
    }

    /// Words of the circuit state per group: G and P of each chunk.
    pub const fn state_words(&self) -> usize {
        2 * self.chunks()
    }
}
