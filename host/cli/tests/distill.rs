//! The default model, `ditto train-lm`, `ditto distill` (with resuming) and `ditto demo` on a
//! distilled student.

mod common;

use common::{ditto, path, run};

#[test]
fn demo_runs_the_shipped_model_by_default() {
    let o = ditto().args(["demo"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("models/austen-gpt2 (built in"), "{out}");
    assert!(out.contains("quant   the model's quant.json: 8 / 8 fractional bits, GeLU Quad"), "{out}");
    // Equal, or apart only where the reference's logits nearly tie.
    assert!(out.contains("secure and fixed-point generation agree"), "{out}");
    // The continuation is English words, not byte noise.
    let line = out.lines().find(|l| l.starts_with("secure ")).unwrap();
    let text = line.split("-> ").nth(1).unwrap();
    let words = text
        .split_whitespace()
        .filter(|w| w.chars().all(|c| c.is_ascii_alphabetic() || ",.;'\"".contains(c)))
        .count();
    assert!(words >= 10, "{text}");
}

fn novels(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let s = [
        "She walked to the house and saw her sister at the window.",
        "He was very glad to see them all again.",
        "They spoke of the weather, the ball and the letters.",
        "It was a fine morning in the country.",
    ];
    for (i, b) in
        ["emma", "mansfieldpark", "northangerabbey", "prideprejudice", "sensesensibility", "persuasion"]
            .iter()
            .enumerate()
    {
        let text: Vec<String> = (0..60).map(|k| s[(k * 3 + i) % 4].to_string()).collect();
        std::fs::write(dir.join(format!("{b}.txt")), text.join("\n\n")).unwrap();
    }
}

#[test]
fn train_distill_resume_and_run_the_student() {
    let d = std::env::temp_dir().join(format!("ditto-distill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    novels(&d.join("austen"));
    let (data, teacher, student) =
        (path(&d.join("austen")), path(&d.join("teacher")), path(&d.join("student")));
    let shape = ["--vocab", "300", "--layers", "1", "--embd", "32", "--heads", "2", "--positions", "32"];
    let small = ["--seq", "16", "--batch", "4", "--every", "3"];
    let lm = |steps: &str| {
        let mut a = vec!["train-lm", "--data", &data, "--out", &teacher, "--steps", steps];
        a.extend(shape);
        a.extend(small);
        run(&a)
    };
    let first = lm("6");
    assert!(first.contains("trained 6 steps"), "{first}");
    let again = lm("8");
    assert!(again.contains("resume  lm from step 6"), "{again}");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(d.join("teacher").join(f).exists(), "{f}");
    }
    let mut a = vec!["distill", "--teacher", &teacher, "--data", &data, "--out", &student];
    a.extend(["--stage1-steps", "3", "--stage2-steps", "3", "--eval-windows", "2"]);
    a.extend(small);
    let out = run(&a);
    assert!(out.contains("Ditto-mode student (fixed-point)"), "{out}");
    let q = std::fs::read_to_string(d.join("student/quant.json")).unwrap();
    assert!(q.contains("\"quad\""), "{q}");
    // A finished run resumes at its end: nothing left to train.
    let out = run(&a);
    assert!(out.contains("resume  stage2 from step 3"), "{out}");
    // The BERT-only options are refused for a GPT-2 teacher, not silently ignored.
    for extra in ["--augment", "--eval-every", "--keep-best", "--hard-label"] {
        let x = path(&d.join("x"));
        let mut b = vec!["distill", "--teacher", &teacher, "--data", &data, "--out", &x, extra];
        if extra != "--keep-best" {
            b.push("1");
        }
        let bad = ditto().args(&b).output().unwrap();
        assert!(!bad.status.success(), "{extra}");
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("are for a BERT classifier teacher"),
            "{extra}"
        );
    }
    // The student runs securely with its own quant.json, and agrees with its fixed-point reference.
    let out = run(&["demo", "--model", &student, "--gen", "4", "--text", "She walked"]);
    assert!(
        out.contains("quant   the model's quant.json")
            && out.contains("secure and fixed-point generation agree"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
