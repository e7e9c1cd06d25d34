//! The README's walk-through steps 7–9 with the real `bureau` command line against three real
//! nodes: a dispute filed at one institution against another's record, its effect on the
//! score, listing and resolving it, a purge on demand, a freeze that another node's deposit
//! waiver then meets, and the regulator's list of disputes.

mod common;

use std::{net::SocketAddr, process::Command, time::Duration};

use bureau::{pb::bureau::v1 as pb, Role};
use common::{record, subject, Cluster};

const INSTITUTIONS: [&str; 3] = ["payapp", "bikeshare", "bank"];
const PAYAPP: usize = 0;
const BANK: usize = 2;

/// Runs `bureau ARGS` as `inst`'s application at `addr`; returns (success, stdout + stderr).
fn bureau_as(c: &Cluster, inst: &str, addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let out = c.cli(inst, addr, args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_dispute_retention_and_freeze_steps_work_from_the_command_line() {
    let c = Cluster::start(&INSTITUTIONS).await;
    let s = subject(11);
    let mut late = record(&s, "bnpl-001", 1);
    late.payment_history[2] = pb::PaymentStatus::Late60 as i32;
    late.status = pb::AccountStatus::ChargedOff as i32;
    late.days_past_due = 90;
    c.f.records(Role::Application, "payapp", c.addrs[PAYAPP])
        .furnish_records(pb::FurnishRecordsRequest { records: vec![late] })
        .await
        .unwrap();
    let (payapp, bank) = (c.addrs[PAYAPP], c.addrs[BANK]);

    // 7. bank's application files a dispute against payapp's record, at bank's node.
    let (ok, out) = bureau_as(
        &c,
        "bank",
        bank,
        &["disputes", "file", "--record", "institutions/payapp/records/bnpl-001", "--subject", &s]
            .into_iter()
            .chain(["--reason", "inaccurate_payment_history", "--statement", "I have the receipt", "--consent", "c-7"])
            .collect::<Vec<_>>(),
    );
    assert!(ok && out.contains("status    OPEN") && out.contains("deadline  20"), "{out}");
    let name = out.lines().find(|l| l.starts_with("institutions/bank/disputes/")).unwrap().trim().to_owned();
    let (ok, out) = bureau_as(&c, "payapp", payapp, &["score", "--subject", &s]);
    assert!(ok && out.contains("1 disputed record(s)"), "{out}");
    let (ok, out) = bureau_as(&c, "payapp", payapp, &["disputes", "list"]);
    assert!(ok && out.contains(&name), "{out}");
    let (ok, out) =
        bureau_as(&c, "payapp", payapp, &["disputes", "resolve", "--name", &name, "--resolution", "verified"]);
    assert!(ok && out.contains("status    VERIFIED"), "{out}");
    let (ok, out) = bureau_as(&c, "bank", bank, &["disputes", "resolve", "--name", &name, "--resolution", "deleted"]);
    assert!(!ok && out.contains("NOT_DISPUTE_PARTY"), "only the furnisher resolves: {out}");

    // 8. A purge on demand.
    let (ok, out) = bureau_as(&c, "payapp", payapp, &["retention", "purge"]);
    assert!(ok && out.contains("purged: 0 record(s)"), "{out}");

    // 9. A freeze through payapp; bank's deposit waiver meets it once the notice lands.
    let (ok, out) = bureau_as(
        &c,
        "payapp",
        payapp,
        &["protect", "place", "--kind", "freeze", "--subject", &s, "--consent", "id-1"],
    );
    assert!(ok && out.contains("frozen: true"), "{out}");
    let waiver = ["score", "--subject", &s, "--purpose", "deposit_waiver", "--consent", "w-1"];
    let mut refused = String::new();
    for _ in 0..50 {
        let (ok, out) = bureau_as(&c, "bank", bank, &waiver);
        if !ok && out.contains("SUBJECT_FROZEN") {
            refused = out;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused.contains("FailedPrecondition"), "bank never refused: {refused}");
    let (ok, out) =
        bureau_as(&c, "payapp", payapp, &["protect", "lift", "--kind", "freeze", "--subject", &s, "--consent", "id-2"]);
    assert!(ok && out.contains("frozen: false"), "{out}");

    // The regulator's list: one dispute, verified, with its deadline; no statement anywhere.
    let state = tempfile::tempdir().unwrap();
    let reg = Command::new(env!("CARGO_BIN_EXE_bureau"))
        .args(["audit", "disputes", "--regulator", "pbc", "--federation", "fed.test"])
        .arg("--pki")
        .arg(&c.f.fed.pki.0)
        .arg("--state")
        .arg(state.path())
        .args(["--node", &payapp.to_string(), "--node", &bank.to_string()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&reg.stdout).into_owned();
    assert!(reg.status.success(), "{out}{}", String::from_utf8_lossy(&reg.stderr));
    assert!(out.contains("1 dispute(s): 0 open, 0 overdue") && out.contains("verified"), "{out}");
    assert!(!out.contains("receipt"), "a regulator never sees the statement: {out}");
    c.shutdown().await;
}
