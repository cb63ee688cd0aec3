//! The `weir` binary as a user meets it: help, run, explain, errors, Ctrl-C.

use std::process::{Command, Stdio};
use std::time::Duration;

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

#[test]
fn help_documents_the_commands() {
    let out = weir().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for cmd in ["run", "explain", "cluster", "checkpoints", "status"] {
        assert!(text.contains(cmd), "{text}");
    }
    let out = weir().args(["run", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Ctrl-C"));
}

#[test]
fn run_writes_to_stdout_and_exits_zero_when_the_input_ends() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "name: small\nparallelism: 2\nsources:\n  - id: n\n    connector: datagen\n    rows: 5\n    fields: [{name: id, kind: sequence}]\nsinks:\n  - input: n\n    connector: stdout\n",
    )
    .unwrap();
    let out = weir()
        .current_dir(dir.path())
        .args(["run", "job.yaml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, (0..5).map(|i| format!("{{\"id\":{i}}}")).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("job 'small' finished") && err.contains("read 5 rows"),
        "{err}"
    );
}

#[test]
fn the_readme_example_runs() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/nexmark-expensive-bids.yaml");
    let out = weir()
        .current_dir(dir.path())
        .args(["run", example.to_str().unwrap(), "--progress", "always"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("read 920000 rows"), "{err}");
    assert!(dir.path().join("out/expensive-bids").read_dir().unwrap().count() >= 1);
}

#[test]
fn a_bad_file_exits_nonzero_with_the_location() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "name: bad\nsources: []\nsinks: []\nparalelism: 2\n",
    )
    .unwrap();
    let out = weir()
        .current_dir(dir.path())
        .args(["run", "bad.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:4") && err.contains("paralelism"), "{err}");
    let out = weir().args(["run", "/no/such/job.yaml"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/job.yaml"));
}

#[test]
fn explain_prints_the_plan() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/nexmark-expensive-bids.yaml");
    let out = weir().args(["explain", example.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("task 0 (parallelism 2): bids [source:nexmark] -> expensive [filter]"),
        "{text}"
    );
    assert!(text.contains("via Hash"), "{text}");
}

#[test]
fn ctrl_c_stops_an_unbounded_job_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.yaml"),
        "name: forever\nsources:\n  - id: g\n    connector: datagen\n    rows_per_second: 2000\nsinks:\n  - input: g\n    connector: file\n    path: out\n",
    )
    .unwrap();
    let child = weir()
        .current_dir(dir.path())
        .args(["run", "job.yaml"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("job 'forever' stopped"), "{err}");
    // What was read was written: the file sink closed its part files.
    let written: usize = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap().lines().count())
        .sum();
    assert!(
        written > 500 && err.contains(&format!("wrote {written} rows")),
        "{written} {err}"
    );
}

#[test]
fn the_socket_word_count_example_counts_words() {
    // The example as shipped, pointed at a socket this test serves: two lines, then the end.
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/socket-word-count.yaml");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = std::fs::read_to_string(&example)
        .unwrap()
        .replace("port: 9999", &format!("port: {port}"));
    assert!(yaml.contains(&format!("port: {port}")));
    let server = std::thread::spawn(move || {
        use std::io::Write;
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"To be or\nnot to BE\n").unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("words.yaml"), yaml).unwrap();
    let out = weir()
        .current_dir(dir.path())
        .args(["run", "words.yaml", "--progress=never"])
        .output()
        .unwrap();
    server.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut counts: Vec<(String, i64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (_, json) = l.split_once("> ").expect("a subtask prefix");
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            (v["word"].as_str().unwrap().to_string(), v["count"].as_i64().unwrap())
        })
        .collect();
    counts.sort();
    let expected: Vec<(String, i64)> = [("be", 1), ("be", 2), ("not", 1), ("or", 1), ("to", 1), ("to", 2)]
        .into_iter()
        .map(|(w, n)| (w.to_string(), n))
        .collect();
    assert_eq!(counts, expected);
}
