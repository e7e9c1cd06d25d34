//! C2SP tlog-proof receipts of a person's proven inquiries, checked offline (with the
//! witnesses' cosignatures under a tlog-policy), and the bench showing that collecting
//! cosignatures adds no wait to a query's path.

mod common;

use std::{collections::HashMap, process::Command};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use bureau::{pb::bureau::v1 as pb, Action, Role};
use common::{
    fed, record, subject,
    tlog::{eventually, free_port, furnish},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proven_inquiry_exported_as_a_tlog_proof_is_checked_offline() {
    use bureau::pb::bureau::v1::{
        scoring_service_client::ScoringServiceClient, subjects_service_client::SubjectsServiceClient,
    };
    let f = fed(&["bank", "shop"], &["pbc"]);
    let (bank_tlog, shop_tlog) = (free_port(), free_port());
    let policy = f.tmp.path().join("bank.policy");
    let shop_w = f.fed.witness_vkey("shop");
    std::fs::write(&policy, format!("witness shop {shop_w} https://{shop_tlog}\nquorum shop\n")).unwrap();
    let nodes = f
        .fed
        .start_all(&["bank", "shop"], |cfg| {
            let bank = cfg.node.institution == "bank";
            f.fed.with_tlog(cfg, if bank { &["shop"] } else { &["bank"] });
            cfg.tlog.listen = Some(if bank { bank_tlog } else { shop_tlog });
            cfg.tlog.witness_every_ms = 50;
            if bank {
                cfg.tlog.policy = Some(policy.clone());
            }
        })
        .await
        .unwrap();
    let (bank, shop) = (&nodes[0], &nodes[1]);
    f.records(Role::Application, "bank", bank.addr)
        .furnish_records(pb::FurnishRecordsRequest { records: vec![record(&subject(1), "b-1", 1)] })
        .await
        .unwrap();
    ScoringServiceClient::new(f.channel(Role::Application, "shop", shop.addr))
        .get_score(pb::GetScoreRequest {
            subject_id: subject(1),
            purpose: pb::Purpose::CreditApplication as i32,
            consent_reference: "app-0001".into(),
        })
        .await
        .unwrap();
    let keys = bureau::regulator::KeySource::PkiDir(f.fed.pki.0.clone());
    let policy_text = std::fs::read_to_string(&policy).unwrap();
    // Once bank's witness has cosigned a checkpoint covering the inquiry, the report is proven
    // against it and the receipt carries the cosignature.
    let (name, text, r, report) = eventually("a receipt against bank's witnessed checkpoint", async || {
        let report = SubjectsServiceClient::new(f.channel(Role::Application, "bank", bank.addr))
            .get_report(pb::GetReportRequest { subject_id: subject(1), consent_reference: "report-1".into() })
            .await
            .ok()?
            .into_inner();
        bureau::regulator::receipts(&report).into_iter().find_map(|(name, text)| {
            let r = bureau::regulator::verify_receipt(&text, &keys, Some(&policy_text)).ok()?;
            (r.quorum == Some(true) && r.entry.actor == "shop").then_some((name, text, r, report.clone()))
        })
    })
    .await;
    let (name, text) = (&name, &text);
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{text}");
    assert_eq!(r.cosigners, ["shop"]);
    // report --verify --policy: bank's checkpoint in the report is witnessed.
    let seen = bureau::regulator::report_witnesses(&report, &policy_text).unwrap();
    let of_bank = seen.iter().find(|w| w.origin == "fed.test/institution/bank").unwrap();
    assert_eq!((of_bank.cosigners.as_slice(), of_bank.quorum), (&["shop".to_string()][..], true));
    // The report page names the witnesses beside the proof.
    let page = bureau::render_report(&report);
    assert!(
        page.contains("in bank's signed log, entry") && page.contains("cosigned by fed.test/witness/shop"),
        "{page}"
    );
    assert_eq!(
        (r.origin.as_str(), r.entry.action, r.entry.actor.as_str()),
        ("fed.test/institution/bank", Action::QueryInbound, "shop")
    );
    assert_eq!(r.entry.subject_id, subject(1));
    // A receipt whose cosignature line fails is refused, not counted as unwitnessed.
    let (body, lines) = text.rsplit_once("\n\u{2014} fed.test/witness/shop ").unwrap();
    let mut blob = STANDARD.decode(lines.trim_end()).unwrap();
    blob[20] ^= 1;
    let broken = format!("{body}\n\u{2014} fed.test/witness/shop {}\n", STANDARD.encode(blob));
    let refused = bureau::regulator::verify_receipt(&broken, &keys, Some(&policy_text));
    assert!(refused.is_err(), "{:?}", refused.map(|r| r.cosigners));
    // Another index, or another entry, is not proven.
    let moved = text.replacen(&format!("index {}\n", r.index), &format!("index {}\n", r.index + 1), 1);
    assert!(bureau::regulator::verify_receipt(&moved, &keys, None).is_err());
    // The command line checks it offline, with the node stopped.
    for n in nodes {
        n.shutdown().await.unwrap();
    }
    let path = f.tmp.path().join(name);
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bureau"))
        .args(["proof", "verify", "--proof"])
        .arg(&path)
        .arg("--pki")
        .arg(&f.fed.pki.0)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("in the signed log"),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Bench (ignored; `cargo test --release --test tlog_receipts -- --ignored --nocapture`): the latency of
/// a federated score at shop, which asks bank and logs at both, with bank collecting
/// cosignatures from shop and cafe every 20 ms meanwhile versus not at all. Collecting is a
/// background task: the query's path never waits for a witness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_cosigning_adds_no_wait_to_a_query() {
    use bureau::pb::bureau::v1::scoring_service_client::ScoringServiceClient;
    async fn run(collect: bool) -> (f64, f64, u64) {
        let f = fed(&["bank", "shop", "cafe"], &[]);
        let names = ["bank", "shop", "cafe"];
        let ports: HashMap<&str, std::net::SocketAddr> = names.iter().map(|n| (*n, free_port())).collect();
        let policy = f.tmp.path().join("bank.policy");
        std::fs::write(
            &policy,
            format!(
                "witness shop {} https://{}\nwitness cafe {} https://{}\ngroup all-of-them all shop cafe\nquorum all-of-them\n",
                f.fed.witness_vkey("shop"),
                ports["shop"],
                f.fed.witness_vkey("cafe"),
                ports["cafe"]
            ),
        )
        .unwrap();
        let nodes = f
            .fed
            .start_all(&names, |cfg| {
                let me = cfg.node.institution.clone();
                let others: Vec<&str> = names.iter().copied().filter(|n| *n != me).collect();
                f.fed.with_tlog(cfg, &others);
                cfg.tlog.listen = Some(ports[me.as_str()]);
                cfg.tlog.witness_every_ms = 20;
                if me == "bank" && collect {
                    cfg.tlog.policy = Some(policy.clone());
                }
            })
            .await
            .unwrap();
        furnish(&f, &nodes[0], 1, 0).await;
        let mut c = ScoringServiceClient::new(f.channel(Role::Application, "shop", nodes[1].addr));
        let mut times = Vec::new();
        for i in 0..600 {
            let t = std::time::Instant::now();
            c.get_score(pb::GetScoreRequest {
                subject_id: subject(0),
                purpose: pb::Purpose::CreditApplication as i32,
                consent_reference: format!("c-{i}"),
            })
            .await
            .unwrap();
            if i >= 100 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        let reader = f.fed.tlog_client(Role::Node, "shop", ports["bank"]);
        let note = String::from_utf8(reader.get("/checkpoint").await.unwrap().body).unwrap();
        let cosigned = note.matches("\u{2014} fed.test/witness/").count() as u64;
        for n in nodes {
            n.shutdown().await.unwrap();
        }
        (times[times.len() / 2], times[times.len() * 99 / 100], cosigned)
    }
    for _ in 0..2 {
        let (p50_off, p99_off, _) = run(false).await;
        let (p50_on, p99_on, cosigned) = run(true).await;
        println!(
            "score at shop asking bank: witnessing off p50 {p50_off:.3} ms p99 {p99_off:.3} ms; \
             bank collecting every 20 ms p50 {p50_on:.3} ms p99 {p99_on:.3} ms ({cosigned} cosignatures on its last checkpoint)"
        );
    }
}
