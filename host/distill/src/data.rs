//! Training and evaluation data (fetched by `scripts/fetch-data` into the cache): sentence
//! polarity with a fixed seeded split, Jane Austen's novels as paragraphs, and a byte-level BPE
//! tokenizer trained on them.

use std::path::Path;

use crate::DistillError;

/// A small deterministic generator (SplitMix64) for shuffles and batch sampling: the splits
/// and the order of training examples are fixed by their seeds (reproducible runs).
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0; the modulo bias is below 2^-40 for the sizes used here).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % (n as u64)).unwrap_or(0)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

fn read(path: &Path) -> Result<String, DistillError> {
    std::fs::read_to_string(path).map_err(|e| DistillError::Io { path: path.to_path_buf(), source: e })
}

/// Labelled sentences (label 1 = positive).
pub type Labelled = Vec<(u32, String)>;

/// The polarity data split into train / validation / test.
#[derive(Clone, Debug)]
pub struct Splits {
    /// 80%.
    pub train: Labelled,
    /// 10%.
    pub valid: Labelled,
    /// 10%.
    pub test: Labelled,
}

/// Seed of the polarity split.
pub const SPLIT_SEED: u64 = 0x0D17_7050;

/// Reads `polarity.tsv` ("1"/"0", tab, sentence) and splits it 80/10/10 after a shuffle seeded
/// with [`SPLIT_SEED`].
pub fn polarity(path: &Path) -> Result<Splits, DistillError> {
    let mut rows = Vec::new();
    for (i, line) in read(path)?.lines().enumerate() {
        let bad = || DistillError::Data(format!("{}:{}: expected LABEL<tab>TEXT", path.display(), i + 1));
        let (label, text) = line.split_once('\t').ok_or_else(bad)?;
        let label = match label {
            "0" => 0,
            "1" => 1,
            _ => return Err(bad()),
        };
        rows.push((label, text.to_string()));
    }
    if rows.len() < 10 {
        return Err(DistillError::Data(format!("{}: only {} sentences", path.display(), rows.len())));
    }
    SplitMix::new(SPLIT_SEED).shuffle(&mut rows);
    let n = rows.len();
    let test = rows.split_off(n - n / 10);
    let valid = rows.split_off(rows.len() - n / 10);
    Ok(Splits { train: rows, valid, test })
}

/// The six novels in `scripts/fetch-data`'s order; the last one listed by
/// [`AUSTEN_HELD_OUT`] is kept out of training.
pub const AUSTEN: [&str; 6] =
    ["emma", "mansfieldpark", "northangerabbey", "prideprejudice", "sensesensibility", "persuasion"];

/// The novel held out for perplexity.
pub const AUSTEN_HELD_OUT: &str = "persuasion";

/// A novel's text with Project Gutenberg's hard line wraps undone: the lines of a paragraph
/// joined by spaces, paragraphs separated by one newline.
pub fn paragraphs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for para in text.split("\n\n") {
        let joined = para.split_whitespace().collect::<Vec<_>>().join(" ");
        if !joined.is_empty() {
            out.push_str(&joined);
            out.push('\n');
        }
    }
    out
}

/// Austen's novels from `dir` (`<book>.txt`): (training text, held-out text).
pub fn austen(dir: &Path) -> Result<(String, String), DistillError> {
    let (mut train, mut test) = (String::new(), String::new());
    for b in AUSTEN {
        let t = paragraphs(&read(&dir.join(format!("{b}.txt")))?);
        if b == AUSTEN_HELD_OUT { test.push_str(&t) } else { train.push_str(&t) }
    }
    Ok((train, test))
}

/// Trains a byte-level BPE (GPT-2's scheme: byte alphabet, ByteLevel pre-tokenizer and decoder,
/// no prefix space) of `vocab` entries on `text`; returns the `tokenizer.json` text.
pub fn train_bpe(text: &str, vocab: usize) -> Result<String, DistillError> {
    use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::{Model, Tokenizer};
    let err = |e: tokenizers::Error| DistillError::Data(format!("tokenizer training: {e}"));
    let mut trainer: tokenizers::models::TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab)
        .min_frequency(2)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let bl = ByteLevel::new(false, true, true);
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(bl));
    tok.with_decoder(Some(bl));
    tok.with_post_processor(Some(bl));
    let lines: Vec<&str> = text.lines().collect();
    tok.train(&mut trainer, lines.iter().map(|l| format!("{l}\n"))).map_err(err)?;
    if tok.get_model().get_vocab_size() > vocab {
        return Err(DistillError::Data("tokenizer training overshot its vocabulary".into()));
    }
    tok.to_string(false).map_err(err)
}

/// A perturbed copy of a tokenized sentence for distillation (the teacher labels it, so it
/// needs no label of its own): the first and last tokens ([CLS], [SEP]) stay, every token
/// between them is deleted with probability 1/10 or replaced with probability 2/10 by a token
/// drawn from `pool` (e.g. every token of the training split: its unigram distribution). At
/// least one inner token survives if there was one.
pub fn perturb(ids: &[u32], pool: &[u32], rng: &mut SplitMix) -> Vec<u32> {
    if ids.len() <= 2 || pool.is_empty() {
        return ids.to_vec();
    }
    let inner = &ids[1..ids.len() - 1];
    let mut out = Vec::with_capacity(ids.len());
    out.push(ids[0]);
    for &t in inner {
        match rng.below(10) {
            0 => {}
            1 | 2 => out.push(pool[rng.below(pool.len())]),
            _ => out.push(t),
        }
    }
    if out.len() == 1 {
        out.push(inner[rng.below(inner.len())]);
    }
    out.push(ids[ids.len() - 1]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perturb_keeps_the_ends_and_draws_from_the_pool() {
        let pool = [900, 901, 902];
        let mut rng = SplitMix::new(7);
        let (mut kept, mut replaced, mut total) = (0, 0, 0);
        for n in [1u32, 2, 3, 10, 40] {
            let ids: Vec<u32> = std::iter::once(101).chain(1..=n).chain(std::iter::once(102)).collect();
            for _ in 0..200 {
                let p = perturb(&ids, &pool, &mut rng);
                assert_eq!((p[0], p[p.len() - 1]), (101, 102));
                assert!(p.len() >= 3 && p.len() <= ids.len(), "{p:?}");
                let inner = &p[1..p.len() - 1];
                assert!(inner.iter().all(|t| (1..=n).contains(t) || pool.contains(t)));
                // the kept tokens keep their order
                let own: Vec<u32> = inner.iter().copied().filter(|t| *t < 900).collect();
                assert!(own.windows(2).all(|w| w[0] < w[1]), "{p:?}");
                kept += own.len();
                replaced += inner.len() - own.len();
                total += n as usize;
            }
        }
        // 70% kept, 20% replaced (binomial over 11,200 draws; 5 sigma is under 2 points)
        #[allow(clippy::cast_precision_loss)]
        let (k, r) = (kept as f64 / total as f64, replaced as f64 / total as f64);
        assert!((k - 0.7).abs() < 0.03 && (r - 0.2).abs() < 0.03, "kept {k}, replaced {r}");
        assert_eq!(perturb(&[101, 102], &pool, &mut rng), vec![101, 102]);
    }
}
