//! Model share files: save/load round trip, and every kind of damage is a clear error.

use ditto_core::prg::Prg;
use ditto_models::bert::secure::{BertShare, share_bert};
use ditto_models::quant::QuantConfig;
use ditto_models::seeded;

#[test]
fn round_trip_and_damage() {
    let bert = seeded::model(3);
    let mut rng = Prg::with_counter(&[1; 16], 0);
    let [s0, _] = share_bert(&bert, &QuantConfig::accurate(), &mut rng).unwrap();
    let dir = std::env::temp_dir().join(format!("ditto-share-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("p0.share");
    s0.save(&p, 0).unwrap();
    let (back, party) = BertShare::load(&p).unwrap();
    assert_eq!(party, 0);
    let q = dir.join("again.share");
    back.save(&q, 0).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(&q).unwrap(), "load then save reproduces the file");
    let bytes = std::fs::read(&p).unwrap();
    let check = |b: &[u8], want: &str| {
        std::fs::write(&q, b).unwrap();
        let e = BertShare::load(&q).unwrap_err().to_string();
        assert!(e.contains(want), "{e} (wanted {want})");
    };
    check(&bytes[..bytes.len() - 1], "truncated inside tensor encoder.layer.1.output.LayerNorm.bias");
    check(&[bytes.clone(), vec![0]].concat(), "1 bytes after the last tensor");
    check(b"NOTASHAREFILE...", "bad magic");
    let mut v = bytes.clone();
    v[8] = 9;
    check(&v, "share format version 9");
    let mut h = bytes.clone();
    h[16] = b'x';
    check(&h, "bad header");
    let e = BertShare::load(&dir.join("absent.share")).unwrap_err().to_string();
    assert!(e.contains("absent.share"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
