//! The house rules that keep the one door to the store: checked on the source, so a change that
//! breaks them fails here rather than in a review.
//! - gRPC handlers reach storage only through the use cases in `app/`;
//! - the storage trait's module names no backend (opening them is `storage/open.rs`'s job);
//! - no backend type is named outside its own folder (and the opener);
//! - `app/` knows nothing of tonic.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The code lines of `path` (comment lines dropped: a doc may name what the code must not).
fn code(path: &Path) -> Vec<(usize, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l.to_owned()))
        .collect()
}

/// Lines of the files under `dir` matching `bad`, as `path:line: text`.
fn offenders(dir: &str, bad: &[&str], except: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for path in sources(&root.join(dir)) {
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        if except.iter().any(|e| rel.starts_with(e)) {
            continue;
        }
        for (n, line) in code(&path) {
            if bad.iter().any(|b| line.contains(b)) {
                found.push(format!("{rel}:{n}: {}", line.trim()));
            }
        }
    }
    found
}

#[test]
fn grpc_handlers_never_name_the_store() {
    let found = offenders("src/grpc", &["crate::storage", "storage::"], &[]);
    assert!(found.is_empty(), "src/grpc must reach storage through app/ only:\n{}", found.join("\n"));
}

#[test]
fn the_storage_trait_names_no_backend() {
    let found = offenders(
        "src/storage",
        &["sled::", "postgres::", "tokio_postgres", "deadpool"],
        &["src/storage/sled", "src/storage/postgres", "src/storage/open.rs", "src/storage/conformance.rs"],
    );
    assert!(found.is_empty(), "only the backends' folders and storage/open.rs name a backend:\n{}", found.join("\n"));
}

#[test]
fn no_backend_type_outside_its_folder() {
    let found = offenders(
        "src",
        &["sled::", "tokio_postgres::", "deadpool_postgres::"],
        &[
            "src/storage/sled",
            "src/storage/postgres",
            "src/storage/open.rs",
            // Benchmark baselines time the raw backends on purpose.
            "src/testkit",
            "src/bin/bureau/lab/bench",
        ],
    );
    assert!(found.is_empty(), "a backend type is named outside its folder:\n{}", found.join("\n"));
}

#[test]
fn use_cases_know_no_grpc() {
    let found = offenders("src/app", &["tonic"], &[]);
    assert!(found.is_empty(), "app/ must know nothing of tonic:\n{}", found.join("\n"));
}
