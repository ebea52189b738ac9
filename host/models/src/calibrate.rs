//! Static calibration of a QuantConfig: the float model's value ranges over sample inputs
//! give the config with the most fractional bits that keeps every value inside its ring (with
//! headroom for the conversion primitives, [`Ranges::choose`]); that config is then run as the
//! plaintext fixed-point reference on the same inputs, and while any operation's input leaves
//! its admitted range it gives up a fractional bit (or widens the LayerNorm octaves) and tries
//! again. A config the inputs drive out of range is never returned.

use ditto_mpc::range::RangeReport;

use crate::ModelError;
use crate::gpt2::KvCache;
use crate::quant::{QuantConfig, Ranges};
use crate::spec::Model;

/// Fractional bits given up at most while the reference reports inputs out of range.
pub const RETRIES: usize = 8;

/// A model and its sample inputs (token ids).
pub struct Calibration {
    /// The float model.
    pub model: Model,
    /// The sample inputs.
    pub inputs: Vec<Vec<u32>>,
}

impl Calibration {
    /// The float model's value ranges over the inputs (weights included).
    pub fn ranges(&self) -> Result<Ranges, ModelError> {
        Ok(match &self.model {
            Model::Bert(b) => {
                let mut r = b.weight_ranges();
                for ids in &self.inputs {
                    b.forward_ranges(ids, Some(&mut r))?;
                }
                r
            }
            Model::Gpt2(m) => {
                let mut r = m.weight_ranges();
                for ids in &self.inputs {
                    m.forward_ranges(ids, &mut KvCache::default(), Some(&mut r))?;
                }
                r
            }
        })
    }

    /// The fixed-point reference's range report under `q` over the inputs.
    pub async fn range_report(&self, q: &QuantConfig) -> Result<RangeReport, ModelError> {
        match &self.model {
            Model::Bert(b) => crate::range::bert(b, q, &self.inputs).await,
            Model::Gpt2(m) => crate::range::gpt2(m, q, &self.inputs).await,
        }
    }

    /// `q`, or the nearest config with fewer fractional bits (or wider LayerNorm octaves) that
    /// keeps every input in range in the fixed-point reference; [`ModelError::OutOfRange`]
    /// naming the remaining issues when none within [`RETRIES`] steps does. `tried` sees each
    /// config's report, and the next config when there is one to try.
    pub async fn in_range(
        &self,
        mut q: QuantConfig,
        mut tried: impl FnMut(&RangeReport, Option<&QuantConfig>),
    ) -> Result<QuantConfig, ModelError> {
        let mut retries = 0;
        loop {
            let report = self.range_report(&q).await?;
            if report.is_clean() {
                tried(&report, None);
                return Ok(q);
            }
            if retries == RETRIES || !loosen(&report, &mut q) {
                tried(&report, None);
                return Err(ModelError::OutOfRange { retries, issues: report.lines(5).join("; ") });
            }
            retries += 1;
            tried(&report, Some(&q));
        }
    }
}

/// One step away from what `report` shows out of range: wider LayerNorm octaves for rsqrt,
/// else an activation bit, else a weight bit; false when nothing is left to give up.
fn loosen(report: &RangeReport, q: &mut QuantConfig) -> bool {
    if report.issues.iter().any(|i| i.op == "rsqrt") {
        q.ln_octaves = (q.ln_octaves.0 - 1, q.ln_octaves.1 + 1);
    } else if q.act_frac > 4 {
        q.act_frac -= 1;
    } else if q.weight_frac > 4 {
        q.weight_frac -= 1;
        q.dense_frac.values_mut().for_each(|f| *f = (*f).saturating_sub(1).max(4));
    } else {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_out_of_range_config_gives_up_bits_until_the_sample_runs_clean() {
        let inputs = vec![crate::seeded::tokenize("calibration sample"), crate::seeded::tokenize("x")];
        let c = Calibration { model: Model::Bert(Box::new(crate::seeded::model(1))), inputs };
        // 14 + 14 fractional bits drive the built-in BERT out of range (attention scores above 4).
        let mut hot = QuantConfig::accurate();
        (hot.act_frac, hot.weight_frac) = (14, 14);
        assert!(!c.range_report(&hot).await.unwrap().is_clean());
        let q = c.in_range(hot.clone(), |_, _| {}).await.unwrap();
        assert!(c.range_report(&q).await.unwrap().is_clean());
        assert!(q.act_frac < hot.act_frac && q.weight_frac == hot.weight_frac, "{q:?}");
        // The nearest clean config: one more activation bit is out of range again.
        let mut more = q.clone();
        more.act_frac += 1;
        assert!(!c.range_report(&more).await.unwrap().is_clean(), "{q:?} is not the nearest");
        // A config already in range comes back unchanged.
        assert_eq!(c.in_range(QuantConfig::accurate(), |_, _| {}).await.unwrap(), QuantConfig::accurate());
    }
}
