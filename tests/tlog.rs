//! The C2SP transparency-log API over real nodes: hash tiles, entry bundles and the checkpoint
//! served to whom they may be, checked by an implementation we did not write (`aics-tlog`
//! from PyPI, installed by scripts/deps); and each node as a tlog-witness of its peers' logs,
//! which cosigns only extensions of what it cosigned, refuses a fork with the spec's codes,
//! raises a split-view alarm, and keeps its state across a `kill -9`.

mod common;

use std::{collections::HashMap, path::Path};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use bureau::{
    merkle::{self, Hash},
    pb::bureau::v1 as pb,
    testkit::tlog as c2sp,
    Action, Role, TlogClient,
};
use common::{
    fed,
    tlog::{eventually, free_port, furnish, scrape, size_of, start, verifier},
};

/// Copies the checkpoint's tiles (every level, partial ones included) and entry bundles into
/// `dir` in the URL layout, as a regulator reads them.
async fn mirror(c: &TlogClient, size: u64, dir: &Path) {
    let fetch = |path: String| {
        let (c, dir) = (c.clone(), dir.to_owned());
        async move {
            let a = c.get(&format!("/{path}")).await.unwrap();
            assert_eq!(a.status, 200, "{path}: {}", String::from_utf8_lossy(&a.body));
            assert_eq!(a.content_type, "application/octet-stream");
            let file = dir.join(&path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, &a.body).unwrap();
            a.body
        }
    };
    for level in 0u8..8 {
        let n = size >> (8 * u32::from(level));
        if n == 0 {
            break;
        }
        for i in 0..n / 256 {
            fetch(c2sp::tile_path(Some(level), i, 256)).await;
        }
        if n % 256 > 0 {
            fetch(c2sp::tile_path(Some(level), n / 256, n % 256)).await;
        }
    }
    for i in 0..size / 256 {
        fetch(c2sp::tile_path(None, i, 256)).await;
    }
    if size % 256 > 0 {
        fetch(c2sp::tile_path(None, size / 256, size % 256)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_are_served_by_role_and_an_independent_verifier_checks_them() {
    let f = fed(&["bank", "shop"], &["pbc"]);
    let nodes = start(&f, &["bank", "shop"]).await;
    let bank = &nodes[0];
    let at = bank.tlog_addr.expect("tlog listens");
    furnish(&f, bank, 100, 0).await;
    let member = f.fed.tlog_client(Role::Node, "shop", at);
    let regulator = f.fed.tlog_client(Role::Regulator, "pbc", at);
    let app = f.fed.tlog_client(Role::Application, "bank", at);

    let old = member.get("/checkpoint").await.unwrap();
    assert_eq!((old.status, old.content_type.as_str()), (200, "text/plain; charset=utf-8"));
    let old = String::from_utf8(old.body).unwrap();
    furnish(&f, bank, 200, 100).await;
    let new = String::from_utf8(regulator.get("/checkpoint").await.unwrap().body).unwrap();
    let (m, n) = (size_of(&old), size_of(&new));
    assert!(m >= 100 && n >= 300, "{m} {n}");

    // Who reads what: hashes reveal nothing about people; entries carry pseudonyms.
    assert_eq!(app.get("/checkpoint").await.unwrap().status, 403, "an application is not a member node");
    assert_eq!(member.get("/tile/entries/000").await.unwrap().status, 403, "entries are for regulators");
    assert_eq!(member.get("/tile/0/000").await.unwrap().status, 200);
    assert_eq!(member.get("/tile/0/x001/000").await.unwrap().status, 404, "beyond the durable log");
    assert_eq!(member.get("/tile/0/00").await.unwrap().status, 404, "not a tile path");
    assert_eq!(member.post("/tile/0/000", "").await.unwrap().status, 405);

    let dir = tempfile::tempdir().unwrap();
    mirror(&regulator, m, dir.path()).await;
    mirror(&regulator, n, dir.path()).await;
    std::fs::write(dir.path().join("checkpoint"), &new).unwrap();
    let (old_file, new_file) = (dir.path().join("old.note"), dir.path().join("new.note"));
    std::fs::write(&old_file, &old).unwrap();
    std::fs::write(&new_file, &new).unwrap();
    // Our own reading first: every bundle's entries hash to the level-0 tile beside it.
    let bundle = std::fs::read(dir.path().join("tile/entries/000")).unwrap();
    let tile = std::fs::read(dir.path().join("tile/0/000")).unwrap();
    let entries = c2sp::bundle_entries(&bundle);
    assert_eq!(entries.len(), 256);
    for (k, e) in entries.iter().enumerate() {
        assert_eq!(merkle::leaf_hash(e).as_slice(), &tile[k * 32..(k + 1) * 32]);
    }
    let leaf = dir.path().join("leaf");
    std::fs::write(&leaf, &entries[200]).unwrap();

    let key = std::fs::read_to_string(f.fed.pki.member(Role::Node, "bank").log_key.with_extension("pub")).unwrap();
    let key = key.trim();
    let tiles = dir.path().to_str().unwrap();
    let checked = verifier(&["verify-checkpoint", "--note", new_file.to_str().unwrap(), "--log-key", key]);
    assert_eq!(checked["ok"], true, "{checked}");
    // aics-tlog: is the leaf in `leaf` entry 200 of the new checkpoint, by our tiles?
    let inclusion = || {
        verifier(&[
            "verify-inclusion",
            "--tiles",
            tiles,
            "--checkpoint",
            new_file.to_str().unwrap(),
            "--log-key",
            key,
            "--index",
            "200",
            "--leaf",
            leaf.to_str().unwrap(),
        ])
    };
    let included = inclusion();
    assert_eq!(included["ok"], true, "{included}");
    let consistent = verifier(&[
        "verify-consistency",
        "--tiles",
        tiles,
        "--old-checkpoint",
        old_file.to_str().unwrap(),
        "--checkpoint",
        new_file.to_str().unwrap(),
        "--log-key",
        key,
    ]);
    assert_eq!(consistent["ok"], true, "{consistent}");
    // A leaf that is not the log's is not included.
    std::fs::write(&leaf, b"{\"forged\":true}").unwrap();
    let forged = inclusion();
    assert_eq!(forged["ok"], false, "{forged}");

    // The regulator's bundle reads are in the log, like any regulator read.
    let logged = f.entries_at(bank.addr).await;
    assert!(
        logged
            .iter()
            .any(|e| e.action == Action::RegulatorRead && e.outcome == "ok" && e.detail.contains("tile/entries/000")),
        "bundle read logged"
    );
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

/// A log the test signs with bank's log key: its leaves' complete subtrees, so any root and
/// consistency proof can be made.
struct PlayedLog {
    nodes: HashMap<(u8, u64), Hash>,
    size: u64,
}

impl PlayedLog {
    fn new(leaves: impl IntoIterator<Item = String>) -> Self {
        let mut log = Self { nodes: HashMap::new(), size: 0 };
        for l in leaves {
            let new = merkle::append_nodes(log.size, merkle::leaf_hash(l.as_bytes()), |lv, i| {
                Ok::<_, ()>(log.nodes[&(lv, i)])
            })
            .unwrap();
            log.nodes.extend(new);
            log.size += 1;
        }
        log
    }
    fn tree(&self) -> merkle::Tree<impl FnMut(u8, u64) -> Result<Hash, ()> + '_> {
        merkle::Tree::new(|l, i| self.nodes.get(&(l, i)).copied().ok_or(()))
    }
    /// An add-checkpoint body from `old` to `size`, signed with `key`.
    fn request(&self, key: &Path, old: u64, size: u64) -> String {
        let mut t = self.tree();
        let root = t.root(size).unwrap();
        let proof = if old == 0 || old == size { vec![] } else { t.consistency_proof(old, size).unwrap() };
        let note = c2sp::sign_checkpoint(key, "fed.test/institution/bank", size, root);
        c2sp::add_checkpoint_body(old, &proof, &note)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_cosigns_extensions_refuses_forks_and_keeps_its_state_across_kill_9() {
    let f = fed(&["bank", "shop"], &["pbc"]);
    let mut cfg = f.fed.node_config("shop", &[]);
    f.fed.with_tlog(&mut cfg, &["bank"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    cfg.tlog.listen = Some(port);
    let (mut shop, _) = common::spawn_serve(&f, &cfg);
    let witness = f.fed.tlog_client(Role::Node, "bank", port);
    let vkey = f.fed.witness_vkey("shop");
    let bank_key = f.fed.pki.member(Role::Node, "bank").log_key;
    let honest = PlayedLog::new((0..40).map(|i| format!("entry {i}")));
    let forked = PlayedLog::new((0..40).map(|i| if i < 10 { format!("entry {i}") } else { format!("other {i}") }));

    let post = |body: String| {
        let w = witness.clone();
        async move { w.post("/add-checkpoint", body).await.unwrap() }
    };
    let first = post(honest.request(&bank_key, 0, 12)).await;
    assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));
    let line = String::from_utf8(first.body).unwrap();
    let body = honest.request(&bank_key, 0, 12);
    let note = format!("{}{line}", body.split_once("\n\n").unwrap().1);
    assert!(c2sp::cosigned_at(&note, &vkey).is_some_and(|t| t > 0), "a cosignature/v1 by shop's witness key");
    // The independent verifier accepts the cosigned checkpoint with a quorum of one.
    let cosigned = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cosigned.path(), &note).unwrap();
    let log_vkey = std::fs::read_to_string(bank_key.with_extension("pub")).unwrap();
    let checked = verifier(&[
        "verify-checkpoint",
        "--note",
        cosigned.path().to_str().unwrap(),
        "--log-key",
        log_vkey.trim(),
        "--witness-key",
        &vkey,
        "--quorum",
        "1",
    ]);
    assert_eq!(checked["ok"], true, "{checked}");

    let stale = post(honest.request(&bank_key, 0, 20)).await;
    assert_eq!(
        (stale.status, stale.content_type.as_str(), stale.body.as_slice()),
        (409, "text/x.tlog.size", &b"12\n"[..])
    );
    assert_eq!(post(honest.request(&bank_key, 12, 20)).await.status, 200);
    // The fork shares ten entries: no proof from the cosigned 20 can reach it.
    let fork = post(forked.request(&bank_key, 20, 30)).await;
    assert_eq!(fork.status, 422, "{}", String::from_utf8_lossy(&fork.body));
    assert_eq!(post(forked.request(&bank_key, 20, 20)).await.status, 422, "same size, other root");
    let shop_key = f.fed.pki.member(Role::Node, "shop").log_key;
    let unknown = c2sp::sign_checkpoint(&shop_key, "fed.test/institution/shop", 1, merkle::leaf_hash(b"x"));
    let unknown = c2sp::add_checkpoint_body(0, &[], &unknown);
    assert_eq!(post(unknown).await.status, 404, "shop's own log is not witnessed here");
    let mut wrong_key = honest.request(&bank_key, 20, 30);
    let sig_at = wrong_key.rfind(' ').unwrap() + 1;
    wrong_key.replace_range(sig_at..sig_at + 8, "AAAAAAAA");
    assert_eq!(post(wrong_key).await.status, 403, "a failing signature from the log's key");
    assert_eq!(post("old 1\n".into()).await.status, 400);
    let backwards = honest.request(&bank_key, 0, 30).replacen("old 0\n", "old 31\n", 1);
    assert_eq!(post(backwards).await.status, 400, "old above the new size");

    // kill -9: the cosigned 20 survives; a fork is still refused and an extension still cosigned.
    shop.kill().unwrap();
    shop.wait().unwrap();
    let (shop, _) = common::spawn_serve(&f, &cfg);
    let after = post(honest.request(&bank_key, 0, 25)).await;
    assert_eq!((after.status, after.body.as_slice()), (409, &b"20\n"[..]));
    assert_eq!(post(forked.request(&bank_key, 20, 25)).await.status, 422);
    assert_eq!(post(honest.request(&bank_key, 20, 40)).await.status, 200);
    // Monitors read what the witness cosigned last: the log's signature and the witness's.
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"fed.test/institution/bank"));
    let seen = witness.get(&format!("/{hash}/checkpoint")).await.unwrap();
    assert_eq!(seen.status, 200);
    let seen = String::from_utf8(seen.body).unwrap();
    assert_eq!(size_of(&seen), 40);
    assert!(c2sp::cosigned_at(&seen, &vkey).is_some(), "{seen}");
    let unknown_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"fed.test/institution/nobody"));
    assert_eq!(witness.get(&format!("/{unknown_hash}/checkpoint")).await.unwrap().status, 404);

    // The alarms are in the witness's log, for the regulator, with what was shown.
    let mut c = pb::audit_service_client::AuditServiceClient::new(f.channel(Role::Regulator, "pbc", shop.addr));
    let size = c.get_checkpoint(pb::GetCheckpointRequest {}).await.unwrap().into_inner().tree_size;
    let entries: Vec<bureau::Entry> = bureau::regulator::fetch_entries(&mut c, size)
        .await
        .unwrap()
        .iter()
        .map(|e| bureau::Entry::from_bytes(&e.leaf_data).unwrap())
        .collect();
    let alarms: Vec<&bureau::Entry> = entries.iter().filter(|e| e.action == Action::SplitViewAlarm).collect();
    assert_eq!(alarms.len(), 3, "{alarms:#?}");
    assert!(alarms
        .iter()
        .all(|a| a.counterparty == "fed.test/institution/bank" && a.detail.contains("cosigned size=20")));
    let root20 = STANDARD.encode(honest.tree().root(20).unwrap());
    assert!(alarms[0].detail.contains(&root20), "{}", alarms[0].detail);
    let cosigns = entries.iter().filter(|e| e.action == Action::CheckpointCosigned).count();
    assert_eq!(cosigns, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_showing_two_histories_is_refused_by_its_witnesses_and_the_regulator_is_told() {
    let f = fed(&["bank", "shop", "cafe"], &["pbc"]);
    let names = ["bank", "shop", "cafe"];
    let ports: HashMap<&str, std::net::SocketAddr> = names.iter().map(|n| (*n, free_port())).collect();
    let metrics = free_port();
    let log_vkey = std::fs::read_to_string(f.fed.pki.member(Role::Node, "bank").log_key.with_extension("pub")).unwrap();
    let (shop_w, cafe_w) = (f.fed.witness_vkey("shop"), f.fed.witness_vkey("cafe"));
    let policy = f.tmp.path().join("bank.policy");
    std::fs::write(
        &policy,
        format!(
            "log {}\nwitness shop {shop_w} https://{}\nwitness cafe {cafe_w} https://{}\ngroup members all shop cafe\nquorum members\n",
            log_vkey.trim(),
            ports["shop"],
            ports["cafe"]
        ),
    )
    .unwrap();
    let configure = |cfg: &mut bureau::NodeConfig| {
        let me = cfg.node.institution.clone();
        let others: Vec<&str> = names.iter().copied().filter(|n| *n != me).collect();
        f.fed.with_tlog(cfg, &others);
        cfg.tlog.listen = Some(ports[me.as_str()]);
        cfg.tlog.witness_every_ms = 100;
        match me.as_str() {
            "bank" => cfg.tlog.policy = Some(policy.clone()),
            "shop" => cfg.metrics.listen = Some(metrics),
            _ => {}
        }
    };
    let mut nodes = f.fed.start_all(&names, configure).await.unwrap();
    furnish(&f, &nodes[0], 20, 0).await;
    let reader = f.fed.tlog_client(Role::Regulator, "pbc", ports["bank"]);
    let witnessed = eventually("bank's checkpoint cosigned by shop and cafe", async || {
        let note = String::from_utf8(reader.get("/checkpoint").await.ok()?.body).ok()?;
        let both = c2sp::cosigned_at(&note, &shop_w).is_some() && c2sp::cosigned_at(&note, &cafe_w).is_some();
        (both && size_of(&note) >= 20).then_some(note)
    })
    .await;
    let cosigned_size = size_of(&witnessed);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &witnessed).unwrap();
    let checked = verifier(&[
        "verify-checkpoint",
        "--note",
        file.path().to_str().unwrap(),
        "--log-key",
        log_vkey.trim(),
        "--witness-key",
        &shop_w,
        "--witness-key",
        &cafe_w,
        "--quorum",
        "2",
    ]);
    assert_eq!(checked["ok"], true, "{checked}");
    let policy_text = std::fs::read_to_string(&policy).unwrap();
    let keys = bureau::regulator::KeySource::PkiDir(f.fed.pki.0.clone());
    let w = bureau::regulator::witnessed(&reader, &keys, &policy_text).await.unwrap();
    assert_eq!((w.cosigners.as_slice(), w.quorum), (&["shop".to_string(), "cafe".to_string()][..], true));

    // The same identity shows a second history: its stopped store cut back to 5 entries, then
    // other records on top, past the size the witnesses cosigned.
    let bank = nodes.remove(0);
    bank.shutdown().await.unwrap();
    bureau::testkit::tamper::set_log_size(&f.fed.root.join("data").join("bank"), 5);
    let mut cfg = f.fed.node_config("bank", &[]);
    configure(&mut cfg);
    let bank = bureau::start(cfg).await.unwrap();
    furnish(&f, &bank, 40, 1000).await;

    let shop = &nodes[0];
    let alarms = eventually("a split-view alarm in shop's log", async || {
        let alarms: Vec<bureau::Entry> =
            f.entries_at(shop.addr).await.into_iter().filter(|e| e.action == Action::SplitViewAlarm).collect();
        (!alarms.is_empty()).then_some(alarms)
    })
    .await;
    assert_eq!(alarms[0].counterparty, "fed.test/institution/bank");
    assert!(alarms[0].detail.contains(&format!("cosigned size={cosigned_size}")), "{}", alarms[0].detail);
    assert!(alarms[0].outcome.starts_with("refused:"), "{}", alarms[0].outcome);
    let cafe = &nodes[1];
    eventually("cafe refuses too", async || {
        f.entries_at(cafe.addr).await.iter().any(|e| e.action == Action::SplitViewAlarm).then_some(())
    })
    .await;
    let text = scrape(metrics).await;
    assert!(
        text.lines().any(|l| l.starts_with("bureau_split_view_alarms_total{origin=\"fed.test/institution/bank\"}")),
        "{text}"
    );
    // The second history is never witnessed: what bank serves carries no cosignature of it.
    let served = String::from_utf8(reader.get("/checkpoint").await.unwrap().body).unwrap();
    assert!(c2sp::cosigned_at(&served, &shop_w).is_none() && c2sp::cosigned_at(&served, &cafe_w).is_none(), "{served}");
    let w = bureau::regulator::witnessed(&reader, &keys, &policy_text).await.unwrap();
    assert!(w.cosigners.is_empty() && !w.quorum, "below quorum: {w:?}");
    // The regulator verifying shop's log is told.
    let state = tempfile::tempdir().unwrap();
    let log = bureau::regulator::verify(
        f.channel(Role::Regulator, "pbc", shop.addr),
        &bureau::regulator::KeySource::PkiDir(f.fed.pki.0.clone()),
        state.path(),
    )
    .await
    .unwrap();
    assert!(log.problems.is_empty(), "{:?}", log.problems);
    assert!(
        log.alarms.iter().any(|a| a.contains("split view of fed.test/institution/bank caught by witness shop")),
        "{:?}",
        log.alarms
    );
    bank.shutdown().await.unwrap();
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

/// A witness following the signed directory witnesses a member licensed after it started: the
/// new member's checkpoint is unknown (404) until the next directory edition lists it, then
/// cosigned (200), with no restart and no edit of the witness's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_licensed_later_is_witnessed_without_a_restart() {
    let f = fed(&["bank", "shop", "late"], &["pbc"]);
    let (nodes, _) = f
        .fed
        .start_with_directory(&["bank", "shop"], &[], |cfg| {
            cfg.limits.crl_reload_ms = 100;
            if cfg.node.institution == "bank" {
                f.fed.with_tlog(cfg, &[]);
            }
        })
        .await
        .expect("nodes start");
    let at = nodes[0].tlog_addr.expect("bank serves the C2SP endpoint");
    let late_key = f.fed.pki.member(Role::Node, "late").log_key;
    let note = c2sp::sign_checkpoint(&late_key, "fed.test/institution/late", 1, merkle::leaf_hash(b"late-1"));
    let body = c2sp::add_checkpoint_body(0, &[], &note);
    let from_shop = f.fed.tlog_client(Role::Node, "shop", at);
    let before = from_shop.post("/add-checkpoint", body.clone()).await.unwrap();
    assert_eq!(before.status, 404, "not listed yet: {}", String::from_utf8_lossy(&before.body));

    let listed: Vec<(&str, std::net::SocketAddr)> =
        vec![("bank", nodes[0].addr), ("shop", nodes[1].addr), ("late", free_port())];
    f.fed.publish_directory(&listed, &[]).unwrap();
    let from_late = f.fed.tlog_client(Role::Node, "late", at);
    let cosigned = eventually("the next edition in force at the witness", async || {
        let a = from_late.post("/add-checkpoint", body.clone()).await.ok()?;
        (a.status == 200).then_some(a)
    })
    .await;
    let line = String::from_utf8_lossy(&cosigned.body).into_owned();
    assert!(line.starts_with("\u{2014} fed.test/witness/bank "), "a cosignature line from bank's witness: {line}");
}
