//! The transcript's hash chain catches edits, deletions, reordering and truncation, and names
//! the line.

use tessera_core::transcript::{self, Record, TranscriptError};

fn sample(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("t.jsonl");
    for i in 0..5 {
        transcript::append(
            &path,
            "2026-11-21T00:00:00Z",
            Record::new("test.step", format!("ok {i}")).input("x", &[i]),
        )
        .unwrap();
    }
    path
}

fn broken_line(path: &std::path::Path) -> u64 {
    match transcript::verify(path) {
        Err(TranscriptError::Broken { line, .. }) => line,
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write(path: &std::path::Path, lines: &[String]) {
    let text: String = lines.iter().flat_map(|l| [l.as_str(), "\n"]).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn intact_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let r = transcript::verify(&path).unwrap();
    assert_eq!(r.lines, 5);
}

#[test]
fn an_edited_line_breaks_the_chain_at_the_next_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let mut l = lines(&path);
    l[2] = l[2].replace("ok 2", "ok X");
    write(&path, &l);
    assert_eq!(broken_line(&path), 4);
}

#[test]
fn a_removed_line_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let mut l = lines(&path);
    l.remove(1);
    write(&path, &l);
    assert_eq!(broken_line(&path), 2);
}

#[test]
fn reordered_lines_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let mut l = lines(&path);
    l.swap(3, 4);
    write(&path, &l);
    assert_eq!(broken_line(&path), 4);
}

#[test]
fn truncation_and_garbage_are_found_and_nothing_is_appended_to_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path());
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() - 3]).unwrap();
    assert_eq!(broken_line(&path), 5);
    assert!(transcript::append(&path, "t", Record::new("x", "y")).is_err());
    std::fs::write(&path, b"not json\n").unwrap();
    assert_eq!(broken_line(&path), 1);
}
