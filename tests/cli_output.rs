//! The command line for scripts: every command that prints something prints one JSON document
//! with the global `--output json`, parsed here field by field; `subject-id` reads the number
//! from standard input, never argv; `config check` and `completions`; and `records put` streams
//! a file of a million lines with bounded memory.

mod common;

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use bureau::{pb::bureau::v1 as pb, Role};
use common::{fed, record, subject, Cluster};
use serde_json::Value;

/// Runs `cmd --output json`; asserts it succeeded and returns its standard output parsed.
fn json(mut cmd: impl std::borrow::BorrowMut<Command>) -> Value {
    let cmd = cmd.borrow_mut();
    let out = cmd.args(["--output", "json"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?}: {stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{cmd:?} printed no JSON document ({e}): {stdout}"))
}

/// The `bureau` binary.
fn bureau() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bureau"))
}

/// A records file of `n` JSON lines furnished by `furnisher`, cycling over `distinct` records.
fn records_file(path: &Path, furnisher: &str, n: usize, distinct: usize) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let lines: Vec<String> = (0..distinct)
        .map(|i| {
            let mut r = record(&subject(i as u32), &format!("r-{i}"), 1);
            r.furnisher = furnisher.into();
            serde_json::to_string(&bureau::convert::record_from_stored(r).unwrap()).unwrap()
        })
        .collect();
    for i in 0..n {
        writeln!(w, "{}", lines[i % distinct]).unwrap();
    }
}

#[test]
fn the_authority_and_local_commands_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let p = pki.to_str().unwrap();
    let v =
        json(bureau().args(["pki", "init", "--federation", "fed.test", "--out", p, "--institution", "bank"]).args([
            "--institution",
            "payapp",
            "--regulator",
            "pbc",
        ]));
    assert_eq!((v["federation"].as_str(), v["institutions"].as_array().map(Vec::len)), (Some("fed.test"), Some(2)));
    let v = json(bureau().args(["pki", "issue-app", "--dir", p, "--federation", "fed.test"]).args([
        "--institution",
        "bank",
        "--app",
        "mobile",
    ]));
    let cert = v["cert"].as_str().unwrap().to_owned();
    assert!(Path::new(&cert).exists() && v["app"] == "mobile", "{v}");
    let v = json(bureau().args(["pki", "revoke", "--dir", p, "--cert", &cert]));
    assert!(!v["revoked_serial"].as_str().unwrap().is_empty(), "{v}");
    let v = json(bureau().args(["pki", "crl", "refresh", "--dir", p]));
    assert_eq!(v["valid_days"], 30, "{v}");

    let at = ["--dir", p, "--federation", "fed.test"];
    let v = json(bureau().args(["pki", "directory", "show"]).args(at));
    let serial = v["serial"].as_u64().unwrap();
    assert!(v["members"].is_array(), "{v}");
    let v = json(bureau().args(["pki", "directory", "add"]).args(at).args(["--id", "shop", "--address", "h:1"]));
    assert_eq!(v["serial"].as_u64(), Some(serial + 1), "{v}");
    for cmd in ["suspend", "activate", "remove"] {
        let v = json(bureau().args(["pki", "directory", cmd]).args(at).args(["--id", "shop"]));
        assert!(v["change"].as_str().unwrap().contains("shop"), "{cmd}: {v}");
    }
    let v = json(bureau().args(["pki", "directory", "locator"]).args(at).args(["--id", "bank", "--address", "h:2"]));
    assert!(v["change"].as_str().unwrap().contains("locator shard"), "{v}");
    let v = json(bureau().args(["pki", "directory", "resign"]).args(at));
    assert_eq!(v["change"], "re-signed");
    let v = json(bureau().args(["pki", "directory", "show"]).args(at));
    assert_eq!(v["locators"][0]["id"], "bank", "{v}");

    let v = json(bureau().args(["model", "show"]));
    assert!(v["version"].as_str().is_some_and(|s| !s.is_empty()) && v["toml"].is_string(), "{v}");

    // The number comes from standard input (never argv): the same id as the library derives,
    // and with --number refused outright.
    let key = pki.join("subject-key.hex");
    let mut child = bureau()
        .args(["subject-id", "--type", "RESIDENT_ID", "--key-file", key.to_str().unwrap(), "--output", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"110101 19900307 123X\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expect = bureau::derive_subject_id(&bureau::read_hex_key(&key).unwrap(), "RESIDENT_ID", "11010119900307123X");
    assert_eq!(v["subject_id"], expect.as_str());
    let refused = bureau().args(["subject-id", "--type", "passport", "--number", "X1"]).output().unwrap();
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("--number"));
    let refused = bureau().args(["subject-id", "--type", "library_card", "--key-file", "k"]).output().unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("resident_id") && err.contains("passport"), "{err}");

    // The bench's table as rows (its in-memory part: seconds), and no chart without data.
    let charts = dir.path().join("charts");
    let v = json(bureau().args(["bench", "--quick", "--only", "scoring", "--charts", charts.to_str().unwrap()]));
    assert!(v["rows"][0]["benchmark"].as_str().is_some_and(|b| b.contains("scor")), "{v}");
    assert_eq!(v["charts"].as_array().map(Vec::len), Some(0), "{v}");

    // gen's records are JSON already: one document a line.
    let out = bureau().args(["gen", "--subjects", "3", "--output", "json"]).output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect::<Vec<_>>();
    assert!(out.status.success() && !lines.is_empty());
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["record_id"].is_string(), "{v}");
    }

    // completions: a script for the shell, naming the commands.
    let out = bureau().args(["completions", "bash"]).output().unwrap();
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && script.contains("complete") && script.contains("subject-id"), "{script}");
}

#[test]
fn config_check_reads_every_file_the_configuration_names() {
    let f = fed(&["bank"], &["pbc"]);
    let path = f.tmp.path().join("bank.toml");
    let mut cfg = f.fed.node_config("bank", &[]);
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let v = json(bureau().args(["config", "check", "--config", path.to_str().unwrap()]));
    assert_eq!((v["ok"].as_bool(), v["institution"].as_str()), (Some(true), Some("bank")), "{v}");
    let out = bureau().args(["config", "check", "--config", path.to_str().unwrap()]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok (institution bank"));

    // The node it checked starts; its text log into a pipe (a file, a journal) has no colour codes.
    let mut node = bureau().args(["serve", "--config", path.to_str().unwrap()]).stderr(Stdio::piped()).spawn().unwrap();
    let mut log = std::io::BufReader::new(node.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("listening") {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut log, &mut line).unwrap() > 0, "node stopped: {seen}");
        seen.push_str(&line);
    }
    node.kill().unwrap();
    node.wait().unwrap();
    assert!(!seen.contains('\x1b'), "ANSI escapes in a piped log: {seen:?}");

    // A key that is not there: listed, and the exit is non-zero.
    cfg.tls.key = f.tmp.path().join("missing.key");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let out =
        bureau().args(["config", "check", "--output", "json", "--config", path.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["problems"][0].as_str().unwrap().contains("missing.key"), "{v}");
    // A value that cannot work is refused at parse time, like `serve` would.
    std::fs::write(&path, toml::to_string(&cfg).unwrap().replace("fed.test", "fed.test\"\nbogus = \"1")).unwrap();
    let out = bureau().args(["config", "check", "--config", path.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("bogus"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_and_regulator_commands_print_json() {
    let mut c = Cluster::start(&["payapp", "bank"]).await;
    let (payapp, bank) = (c.addrs[0], c.addrs[1]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    records_file(&file, "payapp", 3, 3);
    let s = subject(0);

    let v = json(c.cli("payapp", payapp, &["records", "put", "--file", file.to_str().unwrap()]));
    assert_eq!((v["accepted"].as_u64(), v["rejected"].as_u64()), (Some(3), Some(0)), "{v}");
    let v = json(c.cli("payapp", payapp, &["records", "get", "--id", "r-0"]));
    assert_eq!(v["record_id"], "r-0", "{v}");
    let v = json(c.cli("payapp", payapp, &["records", "list", "--subject", &s]));
    assert_eq!(v["records"].as_array().map(Vec::len), Some(1), "{v}");
    let v = json(c.cli("payapp", payapp, &["records", "delete", "--id", "r-2", "--reason", "furnished_in_error"]));
    assert_eq!(v["record_id"], "r-2", "{v}");
    // A bad line stops the put with its line number.
    std::fs::write(&file, "\n{\"not\": \"a record\"}\n").unwrap();
    let out = c.cli("payapp", payapp, &["records", "put", "--file", file.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("line 2"));

    let v = json(c.cli("bank", bank, &["score", "--subject", &s]));
    assert!(v["score"].as_u64().is_some() && v["coverage"].is_array(), "{v}");
    c.stop(1).await;
    let waiver = bureau::config::PolicyConfig {
        min_score: 350,
        purpose: bureau::Purpose::DepositWaiver,
        unscoreable: Default::default(),
    };
    c.cfgs[1].policies.insert("waiver".into(), waiver);
    c.restart(1).await;
    let v = json(c.cli("bank", bank, &["decide", "--subject", &s, "--policy", "waiver", "--consent", "d-1"]));
    assert!(v["policy"] == "waiver" && v["approved"].is_boolean() && v["score"]["score"].is_u64(), "{v}");
    let name = {
        let v = json(c.cli("bank", bank, &["disputes", "file", "--record", "institutions/payapp/records/r-0"]).args([
            "--subject",
            &s,
            "--reason",
            "not_mine",
            "--consent",
            "c-1",
        ]));
        assert_eq!(v["status"], "open", "{v}");
        v["name"].as_str().unwrap().to_owned()
    };
    let v = json(c.cli("bank", bank, &["disputes", "get", "--name", &name]));
    assert_eq!(v["name"], name.as_str());
    let v = json(c.cli("payapp", payapp, &["disputes", "list"]));
    assert_eq!(v["disputes"][0]["name"], name.as_str(), "{v}");
    let v = json(c.cli("payapp", payapp, &["disputes", "resolve", "--name", &name, "--resolution", "verified"]));
    assert_eq!(v["status"], "verified", "{v}");

    let v =
        json(c.cli("payapp", payapp, &["protect", "place", "--kind", "alert", "--subject", &s, "--consent", "i-1"]));
    assert_eq!(v["fraud_alert"], true, "{v}");
    let report = dir.path().join("report.html");
    let v = json(
        c.cli("payapp", payapp, &["report", "--subject", &s, "--consent", "r-1", "--verify"])
            .arg("--out")
            .arg(&report)
            .arg("--pki")
            .arg(&c.f.fed.pki.0),
    );
    assert!(v["fraud_alert"] == true && v["verified"]["problems"].as_array().is_some_and(Vec::is_empty), "{v}");
    let v = json(c.cli("payapp", payapp, &["retention", "purge"]));
    assert_eq!(v["records_deleted"], 0, "{v}");

    let backup = dir.path().join("payapp.backup");
    let recipients = c.f.fed.pki.member(Role::Node, "payapp").backup_key.with_extension("pub");
    let v =
        json(c.cli("payapp", payapp, &["backup"]).arg("--out").arg(&backup).arg("--recipients-file").arg(&recipients));
    let tree_size = v["tree_size"].as_u64().unwrap();
    assert!(tree_size > 0 && v["root"].as_str().unwrap().len() == 64, "{v}");

    // The regulator's four commands.
    let state = dir.path().join("reg");
    let reg = |args: &[&str]| {
        let mut cmd = bureau();
        cmd.args(args).args(["--regulator", "pbc", "--federation", "fed.test", "--pki"]).arg(&c.f.fed.pki.0);
        cmd.arg("--state").arg(&state);
        cmd
    };
    let v = json(reg(&["audit", "verify", "--node", &payapp.to_string()]));
    assert_eq!(v["ok"], true, "{v}");
    // bank's account review of a person it furnished nothing about is flagged: the command
    // prints its JSON and exits non-zero.
    let out = reg(&["audit", "reconcile", "--node", &payapp.to_string(), "--node", &bank.to_string()])
        .args(["--output", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["logs"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["flags"].as_array().map(Vec::len), Some(1), "{v}");
    assert!(v["mismatches"].as_array().is_some_and(Vec::is_empty) && v["reconciled"] == false, "{v}");
    assert!(!out.status.success(), "a flag fails the reconcile");
    let v = json(reg(&["audit", "disputes", "--node", &payapp.to_string(), "--node", &bank.to_string()]));
    assert_eq!(v["disputes"][0]["state"], "verified", "{v}");
    let v = json(reg(&["audit", "entries", "--node", &payapp.to_string(), "--subject", &s]));
    assert!(v["entries"].as_array().is_some_and(|e| !e.is_empty() && e[0]["entry"]["action"].is_string()), "{v}");

    // restore: into a fresh data directory of the same configuration.
    c.stop(0).await;
    let mut cfg = c.cfgs[0].clone();
    cfg.node.data_dir = dir.path().join("restored");
    let cfg_path = dir.path().join("payapp.toml");
    std::fs::write(&cfg_path, toml::to_string(&cfg).unwrap()).unwrap();
    let identity = c.f.fed.pki.member(Role::Node, "payapp").backup_key;
    let v = json(
        bureau()
            .arg("restore")
            .arg("--config")
            .arg(&cfg_path)
            .arg("--from")
            .arg(&backup)
            .arg("--identity")
            .arg(&identity),
    );
    assert_eq!((v["tree_size"].as_u64(), v["checked"].as_bool()), (Some(tree_size), Some(true)), "{v}");
    c.shutdown().await;
}

/// Runs `cmd --output json` and waits for it with `wait4`, which reports that one child's
/// peak resident memory (other tests' children run at the same time); returns its output
/// parsed and the peak in KiB.
#[allow(clippy::zombie_processes)] // waited for with `wait4`, which std does not know of
fn json_with_peak_rss(cmd: &mut Command) -> (Value, i64) {
    use std::io::Read;
    let mut child = cmd.args(["--output", "json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let (mut status, mut usage): (libc::c_int, libc::rusage) = (0, unsafe { std::mem::zeroed() });
    // SAFETY: the pid is our own unwaited child; `status` and `usage` are valid and writable.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    let stderr = errs.join().unwrap();
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{cmd:?}: {stdout}{stderr}");
    (serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {stdout}{stderr}")), usage.ru_maxrss)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_put_streams_a_million_lines_in_bounded_memory() {
    let c = Cluster::start(&["payapp"]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("million.jsonl");
    records_file(&file, "payapp", 1_000_000, 1_000);
    let size = std::fs::metadata(&file).unwrap().len();
    let started = std::time::Instant::now();
    let (v, peak) = json_with_peak_rss(&mut c.cli(
        "payapp",
        c.addrs[0],
        &["records", "put", "--batch", "1000", "--file", file.to_str().unwrap()],
    ));
    let peak_mib = peak / 1024;
    eprintln!("records put: {size} bytes, 1,000,000 lines in {:.1?}, peak RSS {peak_mib} MiB", started.elapsed());
    assert_eq!(v["accepted"].as_u64().unwrap() + v["ignored"].as_u64().unwrap(), 1_000_000, "{v}");
    assert!(peak_mib < 100, "peak RSS {peak_mib} MiB for a {} MiB file", size >> 20);
    let mut recs = c.f.records(Role::Application, "payapp", c.addrs[0]);
    let got = recs.get_record(pb::GetRecordRequest { name: "institutions/payapp/records/r-999".into() }).await;
    assert!(got.is_ok());
    c.shutdown().await;
}

#[test]
fn the_demo_prints_its_summary_as_json_and_its_story_on_stderr() {
    let out = bureau().args(["demo", "--subjects", "60", "--output", "json"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {stdout}"));
    assert_eq!((v["subjects"].as_u64(), v["institutions"].as_u64()), (Some(60), Some(12)), "{v}");
    assert!(v["records_furnished"].as_u64().is_some_and(|n| n > 0), "{v}");
    assert!(v["decisions"][0]["score"].is_u64() && v["score_latency_us"]["p50"].as_f64().is_some(), "{v}");
    assert!(stderr.contains("federation bureau.demo"), "the narrative moves to stderr: {stderr}");
}
