//! Fuzz regressions: every fuzz target of `quantbench_tests::fuzzing` runs in-process for a short,
//! deterministic number of executions (its seeds first, then mutants) and must never panic.
//! The `fuzz` binary runs the same targets for longer:
//! `cargo run -p quantbench-tests --bin fuzz -- all --seconds 600`.

use quantbench_tests::fuzzing::{Fuzzer, Limits, Target, fuzz_for, preview, save_findings};

/// Executions per target: seeds plus mutants, a few seconds each in the dev profile.
const EXECS: u64 = 300;
/// PRNG seed of these runs (any fixed value: runs are reproducible).
const SEED: u64 = 20_250_601;

/// `QB_FUZZ_SEED` / `QB_FUZZ_EXECS` override the seed and the number of executions, to explore
/// locally with the same test.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn never_panics(target: Target) {
    let execs = env_or("QB_FUZZ_EXECS", EXECS);
    let report = fuzz_for(target, env_or("QB_FUZZ_SEED", SEED), execs);
    assert_eq!(report.execs + report.skipped, execs);
    print!("{}", report.summary());
    if report.findings.is_empty() {
        return;
    }
    let dir = std::env::temp_dir().join("quantbench-fuzz-regressions");
    let saved = save_findings(&report, &dir).unwrap_or_default();
    let details: Vec<String> = report
        .findings
        .iter()
        .zip(saved.iter().map(|p| p.display().to_string()).chain(std::iter::repeat(String::from("<not saved>"))))
        .map(|(f, p)| format!("panic at {}: {}\n  input {p}: {}", f.place(), f.message, preview(&f.input)))
        .collect();
    panic!("fuzz target '{}' panicked:\n{}", target.name(), details.join("\n"));
}

#[test]
fn model_loading_and_summary_never_panic() {
    never_panics(Target::Model);
}

#[test]
fn npz_data_sets_never_panic() {
    never_panics(Target::Npz);
}

#[test]
fn npy_data_sets_never_panic() {
    never_panics(Target::Npy);
}

#[test]
fn recipe_json_never_panics() {
    never_panics(Target::Recipe);
}

#[test]
fn mutations_are_deterministic_and_change_the_input() {
    let mutants = |seed| {
        let mut f = Fuzzer::new(Target::Npy, seed, &[], Limits::default());
        (0..200).map(|_| f.mutant()).collect::<Vec<_>>()
    };
    let a = mutants(7);
    assert_eq!(a, mutants(7), "same seed, same mutants");
    assert_ne!(a, mutants(8), "another seed, other mutants");
    let distinct: std::collections::BTreeSet<&Vec<u8>> = a.iter().collect();
    assert!(distinct.len() > 150, "only {} distinct mutants of 200", distinct.len());
}

/// Every input the fuzzer found a bug with (`tests/fuzz_corpus/regressions/`, named after the
/// bug) now runs to a clean error, never a panic, a huge allocation or a hang; `notes` record
/// anything suspicious short of a panic (e.g. a recipe that would not save again).
#[test]
fn found_bugs_stay_fixed() {
    use quantbench_tests::fuzzing::Context;
    let dir = quantbench_tests::repo_root().join("tests/fuzz_corpus/regressions");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).expect("regressions dir").filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    assert!(files.len() >= 9, "{} reproducers", files.len());
    for path in files {
        let name = path.file_name().expect("name").to_string_lossy().to_string();
        let target = match name.split('_').next() {
            Some("model") => Target::Model,
            Some("npz") => Target::Npz,
            Some("npy") => Target::Npy,
            Some("recipe") => Target::Recipe,
            _ => panic!("unknown reproducer {name}"),
        };
        let input = std::fs::read(&path).expect("read");
        let ctx = Context::new(target, Limits::default());
        let start = std::time::Instant::now();
        let mut notes = Vec::new();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.execute(&input, &mut notes)));
        let outcome = outcome.unwrap_or_else(|_| panic!("{name}: still panics"));
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "{name}: took {:?}", start.elapsed());
        assert!(notes.is_empty(), "{name}: {notes:?} (outcome {outcome})");
    }
}
