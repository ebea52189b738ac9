//! Static dyadic quantization settings (DESIGN.md §1, §6): which ring and how many fractional
//! bits each kind of tensor gets, and which approximation each non-linear function uses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// GeLU approximation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gelu {
    /// 0.125x^2 + 0.25x + 0.5 in Z_2^32 (needs a QAD-trained model).
    Quad,
    /// PUMA's piecewise polynomial in Z_2^64.
    Poly,
}

/// Per-model quantization config (JSON beside the model).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantConfig {
    /// Fractional bits of activations in Z_2^32 (linear layers).
    pub act_frac: u32,
    /// Fractional bits of weights and biases of linear layers (Z_2^32).
    pub weight_frac: u32,
    /// Fractional bits in Z_2^64 (softmax, LayerNorm, accurate GeLU).
    pub nl_frac: u32,
    /// GeLU approximation.
    pub gelu: Gelu,
    /// Squarings of the exp limit form.
    pub exp_iters: u32,
    /// LayerNorm: var + eps lies in [2^lo, 2^hi).
    pub ln_octaves: (i32, i32),
    /// Fractional bits of individual linear layers' weights where they differ from
    /// `weight_frac` (their biases get these plus `act_frac`), by layer name: BERT
    /// `encoder.layer.N.attention.self` (Q, K, V together), `encoder.layer.N.attention.output.dense`,
    /// `encoder.layer.N.intermediate.dense`, `encoder.layer.N.output.dense`; GPT-2 `h.N.attn.c_attn`,
    /// `h.N.attn.c_proj`, `h.N.mlp.c_fc`, `h.N.mlp.c_proj`; a BERT classification head's
    /// `pooler.dense` and `classifier`. `ditto calibrate` fills it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dense_frac: BTreeMap<String, u32>,
}

impl QuantConfig {
    /// Ditto mode (for QAD-distilled models): FXP32_8 linear, FXP64_18 non-linear, Quad GeLU.
    pub fn ditto() -> Self {
        QuantConfig {
            act_frac: 8,
            weight_frac: 8,
            nl_frac: 18,
            gelu: Gelu::Quad,
            exp_iters: 5,
            ln_octaves: (-17, 15),
            dense_frac: BTreeMap::new(),
        }
    }

    /// Accurate mode (default for an unmodified model): activations with 10 and weights with 12
    /// fractional bits in Z_2^32 (so outputs of linear layers must stay below
    /// 2^(30 - 10 - 12) = 256 and attention scores below 2^(30 - 20) = 1024), exp with 8
    /// squarings, PUMA's GeLU in Z_2^64. On all-MiniLM-L6-v2 the fixed-point embedding keeps a
    /// cosine above 0.9995 with the float one (Ditto's 8 / 8 bits and 5 squarings give 0.9987).
    pub fn accurate() -> Self {
        QuantConfig {
            act_frac: 10,
            weight_frac: 12,
            nl_frac: 18,
            gelu: Gelu::Poly,
            exp_iters: 8,
            ln_octaves: (-17, 15),
            dense_frac: BTreeMap::new(),
        }
    }

    /// A QuantConfig by preset name (`accurate`, `ditto`) or from a JSON file (`ditto
    /// calibrate`, `ditto distill`), checked.
    pub fn from_spec(spec: &str) -> Result<Self, crate::ModelError> {
        match spec {
            "accurate" => Ok(QuantConfig::accurate()),
            "ditto" => Ok(QuantConfig::ditto()),
            path => {
                let p = std::path::Path::new(path);
                let text = std::fs::read_to_string(p)
                    .map_err(|source| crate::ModelError::Io { path: p.to_path_buf(), source })?;
                QuantConfig::from_json(&text)
                    .map_err(|reason| crate::ModelError::Config { path: p.to_path_buf(), reason })
            }
        }
    }

    /// Parses a QuantConfig file's text and checks it ([`QuantConfig::check`]).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let q: QuantConfig = serde_json::from_str(text).map_err(|e| format!("not a QuantConfig: {e}"))?;
        q.check()?;
        Ok(q)
    }

    /// Refuses settings outside what the protocols are built for: activation and weight bits
    /// 1..=16 with their sum at most 28 (products live in Z_2^32; calibration keeps them below 2^29), non-linear bits from the
    /// activation bits up to 30 (squares live in Z_2^64), 1..=12 exp squarings, and a LayerNorm
    /// octave range inside -40..=40.
    pub fn check(&self) -> Result<(), String> {
        let bits = |what: &str, v: u32, lo: u32, hi: u32| {
            if (lo..=hi).contains(&v) { Ok(()) } else { Err(format!("{what} = {v}: expected {lo}..={hi}")) }
        };
        bits("act_frac", self.act_frac, 1, 16)?;
        for (name, w) in std::iter::once(("weight_frac", &self.weight_frac))
            .chain(self.dense_frac.iter().map(|(k, v)| (k.as_str(), v)))
        {
            bits(name, *w, 1, 16)?;
            bits(&format!("act_frac + {name}"), self.act_frac + w, 2, 28)?;
        }
        bits("nl_frac", self.nl_frac, self.act_frac, 30)?;
        bits("exp_iters", self.exp_iters, 1, 12)?;
        let (lo, hi) = self.ln_octaves;
        if !(-40 <= lo && lo < hi && hi <= 40) {
            return Err(format!("ln_octaves = ({lo}, {hi}): expected -40 <= low < high <= 40"));
        }
        Ok(())
    }

    /// Fractional bits of the weights of linear layer `name`.
    pub fn weight_frac_of(&self, name: &str) -> u32 {
        self.dense_frac.get(name).copied().unwrap_or(self.weight_frac)
    }
}

/// Ranges of one linear layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DenseRange {
    /// Largest |weight|.
    pub weight: f32,
    /// Largest |bias|.
    pub bias: f32,
    /// Largest |output| seen.
    pub out: f32,
}

/// Value ranges seen by the float model on sample text (calibration).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ranges {
    /// Largest |value| of the embedding sum (before its LayerNorm).
    pub embedding: f32,
    /// Largest |output| of any linear layer.
    pub linear: f32,
    /// Largest |Q K^T| before the 1/sqrt(d) scaling.
    pub scores: f32,
    /// Largest |value| of the residual stream (LayerNorm inputs).
    pub residual: f32,
    /// Smallest and largest variance seen at a LayerNorm input.
    pub variance: (f32, f32),
    /// Largest |weight|.
    pub weight: f32,
    /// Per linear layer (names as in [`QuantConfig::dense_frac`]).
    pub dense: BTreeMap<String, DenseRange>,
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |a, b| a.max(b.abs()))
}

impl Ranges {
    pub(crate) fn see_embedding(&mut self, x: &[f32]) {
        self.embedding = self.embedding.max(max_abs(x));
    }
    pub(crate) fn see_linear(&mut self, x: &[f32]) {
        self.linear = self.linear.max(max_abs(x));
    }
    /// Output of linear layer `name`.
    pub(crate) fn see_dense(&mut self, name: &str, x: &[f32]) {
        self.see_linear(x);
        let d = self.dense.entry(name.to_string()).or_default();
        d.out = d.out.max(max_abs(x));
    }
    /// Weights and biases of linear layer `name` (and the global weight maximum).
    pub(crate) fn see_dense_params(&mut self, name: &str, w: &[&[f32]], b: &[&[f32]]) {
        let d = self.dense.entry(name.to_string()).or_default();
        w.iter().for_each(|w| d.weight = d.weight.max(max_abs(w)));
        b.iter().for_each(|b| d.bias = d.bias.max(max_abs(b)));
        self.weight = self.weight.max(d.weight);
    }
    /// Other weights (embedding tables).
    pub(crate) fn see_weight(&mut self, w: &[f32]) {
        self.weight = self.weight.max(max_abs(w));
    }
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn see_residual(&mut self, x: &[f32], h: usize) {
        self.residual = self.residual.max(max_abs(x));
        for row in x.chunks(h) {
            let mean = row.iter().sum::<f32>() / h as f32;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / h as f32;
            if self.variance == (0.0, 0.0) {
                self.variance = (var, var);
            }
            self.variance = (self.variance.0.min(var), self.variance.1.max(var));
        }
    }
    pub(crate) fn see_scores(&mut self, q: &[f32], k: &[f32], n: usize, h: usize, heads: usize) {
        self.see_scores_past(q, k, n, h, heads);
    }

    /// Scores of n queries against every key in `k` (t x h).
    pub(crate) fn see_scores_past(&mut self, q: &[f32], k: &[f32], n: usize, h: usize, heads: usize) {
        let (dh, t) = (h / heads, k.len() / h);
        for hd in 0..heads {
            for i in 0..n {
                for j in 0..t {
                    let s: f32 = (0..dh).map(|d| q[i * h + hd * dh + d] * k[j * h + hd * dh + d]).sum();
                    self.scores = self.scores.max(s.abs());
                }
            }
        }
    }

    /// The accurate-mode config with the most fractional bits these ranges allow, keeping a
    /// factor-2 headroom below every bound of the conversion primitives: linear outputs
    /// |y| 2^(act + w) < 2^29 (truncation admits 2^30), scores |s| 2^(2 act) < 2^29 (upcast
    /// admits 2^30), residual and embeddings below 2^29 at their scales, weights below 2^30.
    pub fn choose(&self) -> QuantConfig {
        let fits =
            |v: f32, bits: u32| f64::from(v) * 2f64.powi(i32::try_from(bits).unwrap_or(62)) < 2f64.powi(29);
        let mut q = QuantConfig::accurate();
        'search: for act in (6..=12).rev() {
            for wf in (6..=14).rev() {
                if fits(self.linear, act + wf)
                    && fits(self.scores, 2 * act)
                    && fits(self.residual, act)
                    && fits(self.embedding, wf)
                    && fits(self.weight, wf)
                {
                    q.act_frac = act;
                    q.weight_frac = wf;
                    break 'search;
                }
            }
        }
        // Each linear layer: as many more weight bits as its own weights, bias and outputs allow.
        for (name, d) in &self.dense {
            let best = (q.weight_frac..=16)
                .rev()
                .find(|&wf| {
                    fits(d.out, q.act_frac + wf) && fits(d.bias, q.act_frac + wf) && fits(d.weight, wf)
                })
                .unwrap_or(q.weight_frac);
            if best != q.weight_frac {
                q.dense_frac.insert(name.clone(), best);
            }
        }
        let lo = f64::from(self.variance.0.max(1e-6)).log2().floor() - 2.0;
        let hi = f64::from(self.variance.1.max(1.0)).log2().ceil() + 2.0;
        #[allow(clippy::cast_possible_truncation)]
        let octaves = ((lo.max(-17.0)) as i32, (hi.min(40.0)) as i32);
        q.ln_octaves = octaves;
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_pass_the_check_and_out_of_range_settings_are_refused() {
        QuantConfig::ditto().check().unwrap();
        QuantConfig::accurate().check().unwrap();
        let text = serde_json::to_string(&QuantConfig::ditto()).unwrap();
        assert_eq!(QuantConfig::from_json(&text).unwrap(), QuantConfig::ditto());
        let mut q = QuantConfig::ditto();
        q.dense_frac.insert("layer.0.attention.self.query".into(), 17);
        assert!(q.check().unwrap_err().contains("layer.0.attention.self.query = 17"));
        for (f, want) in [
            (&mut |q: &mut QuantConfig| q.act_frac = 0, "act_frac = 0"),
            (&mut |q: &mut QuantConfig| q.nl_frac = 4, "nl_frac = 4"),
            (&mut |q: &mut QuantConfig| q.exp_iters = 100, "exp_iters = 100"),
            (&mut |q: &mut QuantConfig| q.ln_octaves = (3, 3), "ln_octaves"),
            (
                &mut |q: &mut QuantConfig| (q.act_frac, q.weight_frac) = (15, 14),
                "act_frac + weight_frac = 29",
            ),
        ] as [(&mut dyn FnMut(&mut QuantConfig), &str); 5]
        {
            let mut q = QuantConfig::ditto();
            f(&mut q);
            assert!(q.check().unwrap_err().contains(want), "{want}");
        }
        assert!(QuantConfig::from_json("{").unwrap_err().contains("not a QuantConfig"));
    }
}
