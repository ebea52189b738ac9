//! The committed plan files that the dealer, link, firmware and fuzz tests read
//! (`testdata/plans/`) are what `ditto plan --out` makes from the model programs today: plans have
//! one source, and a change to a model program or the plan format cannot leave stale copies.

use std::path::Path;
use std::process::Command;

#[test]
fn committed_test_plans_equal_what_ditto_plan_makes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/plans");
    let list = std::fs::read_to_string(dir.join("LIST")).unwrap();
    let tmp = std::env::temp_dir().join(format!("ditto-plans-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut checked = 0;
    for line in list.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [name, arch, seq, generate] = f[..] else { panic!("bad LIST line {line:?}") };
        let out = tmp.join(format!("{name}.plan"));
        let o = Command::new(env!("CARGO_BIN_EXE_ditto"))
            .args(["plan", "--arch", arch, "--seq", seq, "--gen", generate, "--quant", "ditto", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let committed = std::fs::read(dir.join(format!("{name}.plan"))).unwrap();
        assert!(
            std::fs::read(&out).unwrap() == committed,
            "testdata/plans/{name}.plan differs from `ditto plan --arch {arch} --seq {seq} --gen {generate} \
             --quant ditto`: run scripts/test-plans"
        );
        checked += 1;
    }
    assert!(checked >= 7, "{checked} plans listed");
    let _ = std::fs::remove_dir_all(&tmp);
}
