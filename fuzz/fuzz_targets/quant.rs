//! QuantConfig files: parsed and checked; with a config that passes the check, planning and
//! running a small BERT (planner and fixed-point reference) ends in a result or an error, never
//! a panic or an overflow.
#![no_main]

use std::sync::LazyLock;

use ditto_models::quant::QuantConfig;
use ditto_models::bert::secure::{BertShare, SecureBert};
use ditto_models::blocks::one_hot;
use ditto_mpc::{Engine, Shared};
use libfuzzer_sys::fuzz_target;

static RT: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap());
static BERT: LazyLock<ditto_models::bert::Bert> = LazyLock::new(|| ditto_models::seeded::model(1));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(q) = QuantConfig::from_json(text) else { return };
    RT.block_on(async {
        let cfg = ditto_models::seeded::config();
        if ditto_models::plans::bert("fuzz", &cfg, &q, 2).await.is_err() {
            return;
        }
        let Ok(share) = BertShare::plaintext(&BERT, &q) else { return };
        let mut e = Engine::plaintext();
        let Ok(m) = SecureBert::setup(&mut e, share).await else { return };
        let x = Shared::new(one_hot(&[1, 2], cfg.vocab_size).unwrap(), &[2, cfg.vocab_size], 0).unwrap();
        let _ = m.infer(&mut e, &x).await;
    });
});
