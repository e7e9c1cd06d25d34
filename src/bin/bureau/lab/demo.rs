//! `bureau demo`: a local federation with sample data, from nothing. Makes a throw-away
//! authority with a signed member directory, starts twelve institutions' nodes and the record
//! locator in this process on loopback (among them a payment app that waives deposits at 550, a
//! bike-share operator that waives them at 650, and a bank), furnishes generated records, prints
//! scores and decisions for sample subjects (each asking only the members that hold records),
//! takes the locator and then one holder down, and shows what refused requests look like.

use std::{path::PathBuf, time::Instant};

use anyhow::{Context, Result};
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::{lab::percentiles, show::print_score};
use bureau::{
    config::PolicyConfig,
    convert,
    pb::bureau::v1::{
        self as pb, records_service_client::RecordsServiceClient, scoring_service_client::ScoringServiceClient,
    },
    testkit::gen::{self, GenConfig},
    testkit::local::LocalFederation,
    Purpose, Role, RunningNode,
};

/// The demo's institutions: the three the walk-through follows, then nine more members.
pub const INSTITUTIONS: [&str; 12] = [
    "payapp",
    "bikeshare",
    "bank",
    "charger",
    "lender",
    "telco",
    "rental",
    "insurer",
    "microloan",
    "ecommerce",
    "utility",
    "carloan",
];
/// The record locator's node (one shard: every pseudonym).
pub const LOCATOR: &str = "locator";

/// Options of `bureau demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where to keep the federation; a temporary directory (removed afterwards) when `None`.
    pub dir: Option<PathBuf>,
    /// How many subjects to generate.
    pub subjects: usize,
    /// Keep the federation running afterwards (members on ports 7101–7112, the locator on
    /// 7113) until ctrl-c, for the regulator's walk-through.
    pub serve: bool,
}

/// The first fixed port used with `--serve` (member `i` on `FIRST_PORT + i`, the locator
/// after the last member), so the README's commands name them.
pub const FIRST_PORT: u16 = 7101;
/// The nodes' Prometheus endpoints with `--serve`, in the same order.
pub const METRICS_PORTS: [u16; 3] = [9101, 9102, 9103];

/// The running node of institution `inst`.
fn node<'a>(nodes: &'a [RunningNode], inst: &str) -> &'a RunningNode {
    nodes.iter().find(|n| n.institution == inst).expect("demo node")
}

/// The deposit waiver as a rental kiosk sees it: bikeshare's application asks its node for a
/// threshold attestation (one bit, no score) for the kiosk and its nonce, and the kiosk checks
/// it offline with bikeshare's public key alone; a tampered copy is refused.
async fn attested_waiver(fed: &LocalFederation, addr: std::net::SocketAddr, subject: &str) -> Result<()> {
    use bureau::{attestation, pb::bureau::v1::attestation_service_client::AttestationServiceClient};
    let mut app = AttestationServiceClient::new(fed.client(Role::Application, "bikeshare", addr).channel()?);
    let nonce = uuid::Uuid::new_v4().to_string();
    let a = app
        .attest(pb::AttestRequest {
            subject_id: subject.into(),
            policy: "deposit_waiver".into(),
            consent_reference: consent(fed, "bikeshare", subject, Purpose::DepositWaiver)?,
            verifier: "kiosk-17".into(),
            nonce: nonce.clone(),
        })
        .await?
        .into_inner();
    let bundle = convert::bundle_from_pb(&a);
    let key_file = fed.pki.member(Role::Node, "bikeshare").log_key.with_extension("pub");
    let key = std::fs::read_to_string(&key_file)?;
    let claims = attestation::verify(&bundle, key.trim(), "kiosk-17", &nonce, chrono::Utc::now())?;
    say!(
        "\nattested deposit waiver: bikeshare's app got a {}-byte signed statement, no score in it: {} {} {} (threshold {}), for kiosk-17, expires {}",
        a.jws.len(),
        &claims.sub[..8],
        claims.outcome.to_uppercase(),
        claims.policy,
        claims.threshold,
        chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or_default().format("%Y-%m-%d %H:%M UTC")
    );
    say!(
        "  verified offline with {} alone: EdDSA signature, nonce, expiry, and logged at index {} of bikeshare's log (inclusion proof against its signed checkpoint)",
        key_file.file_name().and_then(|n| n.to_str()).unwrap_or("the node's key"),
        a.log_index
    );
    let mut forged = bundle.clone();
    forged.jws = forged.jws.replacen(".ey", ".eZ", 1);
    if let Err(e) = attestation::verify(&forged, key.trim(), "kiosk-17", &nonce, chrono::Utc::now()) {
        say!(
            "  one changed byte: refused ({e}); for another kiosk: refused ({})",
            attestation::verify(&bundle, key.trim(), "kiosk-18", &nonce, chrono::Utc::now())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Runs the demo, printing to stdout.
pub async fn run(opts: DemoOptions) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = opts.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    let mut ids = INSTITUTIONS.to_vec();
    ids.push(LOCATOR);
    let fed = LocalFederation::create(&root, "bureau.demo", &ids, &["pbc"])?;
    say!(
        "federation bureau.demo: licensing authority, {} institutions, the record locator, regulator pbc ({})",
        INSTITUTIONS.len(),
        root.display()
    );
    let policies = |c: &mut bureau::NodeConfig| {
        let min_score = match c.node.institution.as_str() {
            "payapp" => 550,
            "bikeshare" => 650,
            _ => 600,
        };
        c.policies.insert(
            "deposit_waiver".into(),
            PolicyConfig { min_score, purpose: Purpose::DepositWaiver, unscoreable: Default::default() },
        );
        c.limits.outbox_retry_max_ms = 250;
        // As the README configures a node: consent tokens required (the test kit opts out).
        c.consent = Default::default();
        if opts.serve {
            if let Some(i) = INSTITUTIONS.iter().take(METRICS_PORTS.len()).position(|i| *i == c.node.institution) {
                c.metrics.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], METRICS_PORTS[i])));
            }
        }
    };
    let bind = |i: usize| async move {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], if opts.serve { FIRST_PORT + i as u16 } else { 0 }));
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("{addr} is taken"))
    };
    let mut members = Vec::new();
    for (i, id) in INSTITUTIONS.iter().enumerate() {
        members.push((*id, bind(i).await?));
    }
    let locators = vec![(LOCATOR, bind(INSTITUTIONS.len()).await?)];
    let (mut nodes, mut locator) =
        fed.start_with_directory_on(members, locators, policies).await.context("starting nodes")?;
    let directory = bureau::pki::read_directory(&fed.pki, "bureau.demo")?;
    say!(
        "  signed member directory serial {}: {} active members, locator shard \"\" (every pseudonym) at {}",
        directory.serial,
        directory.members.len(),
        locator[0].addr
    );
    for n in nodes.iter().take(3) {
        say!("  node {:<10} {}", n.institution, n.addr);
    }
    say!("  … and {} more members; no node's configuration lists another", nodes.len() - 3);

    // Each institution furnishes its own share of a generated population.
    let cfg = GenConfig {
        subjects: opts.subjects,
        seed: 2026,
        institutions: INSTITUTIONS.iter().map(|s| s.to_string()).collect(),
        federation_key: fed.subject_key(),
        as_of: bureau::today(),
    };
    let started = Instant::now();
    let mut total = 0;
    let progress = crate::cli::output::bar(Some(INSTITUTIONS.len() as u64), "institutions");
    progress.set_message("furnishing");
    for inst in INSTITUTIONS {
        let n = node(&nodes, inst);
        let records: Vec<pb::CreditRecord> = gen::generate(&cfg)
            .filter(|r| r.furnisher == inst)
            .map(|r| convert::record_to_pb(&r, chrono::Utc::now()))
            .collect();
        let batches: Vec<_> = records.chunks(1000).map(|c| pb::FurnishRecordsRequest { records: c.to_vec() }).collect();
        let mut c = RecordsServiceClient::new(fed.client(Role::Application, inst, n.addr).channel()?);
        let resp = c.stream_furnish_records(tokio_stream::iter(batches)).await?.into_inner();
        total += resp.accepted_count;
        progress.inc(1);
        progress.suspend(|| say!("  {inst:<10} furnished {:>6} records", resp.accepted_count));
    }
    progress.finish_and_clear();
    say!("{total} records about {} subjects furnished over mTLS in {:.2?}", opts.subjects, started.elapsed());
    let registered = until_registered(&fed, &locator[0]).await?;
    say!(
        "each member registered where it holds records with the locator, from its own log: {registered} log entries there"
    );

    let scoring = |inst: &str| -> Result<ScoringServiceClient<Channel>> {
        Ok(ScoringServiceClient::new(fed.client(Role::Application, inst, node(&nodes, inst).addr).channel()?))
    };
    let (mut payapp, mut bikeshare) = (scoring("payapp")?, scoring("bikeshare")?);
    let (doc, number) = gen::subject_identity(cfg.seed, 0);
    say!("\nsubjects are pseudonyms: {doc} {number} -> {}", gen::subject_id(&cfg, 0));
    say!(
        "\n{:<10} {:>5} {:<10} {:<16} {:>8}  {:<16} {:<16}",
        "subject",
        "score",
        "band",
        "top reasons",
        "asked",
        "payapp @550",
        "bikeshare @650"
    );
    let samples: Vec<usize> = (0..opts.subjects.min(40)).step_by(3).take(12).collect();
    let mut waived = None;
    let mut decided = Vec::new();
    for &i in &samples {
        let subject = gen::subject_id(&cfg, i);
        // Each institution's application signs the person's consent for its own decision.
        let decide = |inst: &str| -> Result<pb::DecideRequest> {
            Ok(pb::DecideRequest {
                subject_id: subject.clone(),
                policy: "deposit_waiver".into(),
                consent_reference: consent(&fed, inst, &subject, Purpose::DepositWaiver)?,
            })
        };
        let at_payapp = payapp.decide(decide("payapp")?).await?.into_inner();
        let at_bikeshare = bikeshare.decide(decide("bikeshare")?).await?.into_inner();
        if at_bikeshare.approved && waived.is_none() {
            waived = Some(subject.clone());
        }
        let s = at_payapp.score.clone().unwrap_or_default();
        let reasons: Vec<&str> = s.reasons.iter().take(3).map(|r| r.code.as_str()).collect();
        decided.push(serde_json::json!({
            "subject": subject, "score": s.score, "members_asked": s.members_asked, "members": s.members,
            "unscoreable": s.exclusion.as_ref().map(|x| x.code.clone()),
            "payapp_waives": at_payapp.approved, "bikeshare_waives": at_bikeshare.approved,
        }));
        let verdict = |d: &pb::Decision| match d.score.as_ref().and_then(|s| s.exclusion.as_ref()) {
            Some(x) => format!("{} ({})", d.outcome.split(':').next().unwrap_or("refer"), x.code),
            None => {
                let score = d.score.as_ref().map_or(0, |s| s.score);
                format!("{} ({score})", if d.approved { "waive" } else { "deposit" })
            }
        };
        say!(
            "{:<10} {:>5} {:<10} {:<16} {:>2} of {:<2}  {:<16} {:<16}",
            &subject[..8],
            s.score,
            if s.exclusion.is_some() { "unscored" } else { bureau::Band::of(s.score).as_str() },
            if reasons.is_empty() { "-".to_owned() } else { reasons.join(",") },
            s.members_asked,
            s.members,
            verdict(&at_payapp),
            verdict(&at_bikeshare)
        );
    }
    say!("(\"asked 2 of 11\": the locator named the members that hold records; no one else was asked)");
    say!("(a decision's score counts earlier hard inquiries: bikeshare sees the one payapp just made, counted at the locator)");
    if let Some(r) = payapp.get_score(score_req(&gen::subject_id(&cfg, samples[0]))).await?.into_inner().reasons.first()
    {
        say!("reason {}: {} (-{} points)", r.code, r.description, r.points_lost);
    }
    let waived = waived.unwrap_or_else(|| gen::subject_id(&cfg, samples[0]));
    attested_waiver(&fed, node(&nodes, "bikeshare").addr, &waived).await?;

    // Latency of one federated score (a lookup, then the holders), median over many calls.
    let subjects: Vec<String> = (0..200).map(|i| gen::subject_id(&cfg, i % opts.subjects.max(1))).collect();
    for s in subjects.iter().take(20) {
        payapp.get_score(score_req(s)).await?;
    }
    let mut samples_t = Vec::new();
    for s in &subjects {
        let t = Instant::now();
        payapp.get_score(score_req(s)).await?;
        samples_t.push(t.elapsed());
    }
    let p = percentiles(&mut samples_t);
    say!(
        "\nfederated score latency over {} calls: p50 {:.0} µs, p99 {:.0} µs",
        samples_t.len(),
        p.p50.as_secs_f64() * 1e6,
        p.p99.as_secs_f64() * 1e6
    );

    let summary = serde_json::json!({
        "federation": "bureau.demo",
        "institutions": INSTITUTIONS.len(),
        "subjects": opts.subjects,
        "records_furnished": total,
        "decisions": decided,
        "score_latency_us": { "p50": p.p50.as_secs_f64() * 1e6, "p99": p.p99.as_secs_f64() * 1e6 },
    });

    dispute(&fed, &nodes, &cfg, &mut payapp).await?;
    report(&fed, &nodes, &gen::subject_id(&cfg, samples[0]), opts.dir.as_deref()).await?;

    // The locator goes down: scores still work, asking every member.
    let locator_addr = locator[0].addr;
    locator.remove(0).shutdown().await?;
    say!("\nthe locator is down; payapp scores {} by asking every member:", &subjects[0][..8]);
    let s = payapp.get_score(score_req(&subjects[0])).await?.into_inner();
    print_score(&s);
    let mut locator_cfg = fed.directory_config(LOCATOR, true);
    policies(&mut locator_cfg);
    locator.push(bureau::start_on(locator_cfg, tokio::net::TcpListener::bind(locator_addr).await?).await?);
    until_registered(&fed, &locator[0]).await?;

    // One holder goes down: the answer is partial and says so, and does not wait for it.
    let (subject_of_bank, bank) = {
        let mut held = None;
        for s in &subjects {
            let score = payapp.get_score(score_req(s)).await?.into_inner();
            if score.coverage.iter().any(|c| c.peer == "bank") {
                held = Some(s.clone());
                break;
            }
        }
        let bank = nodes.remove(nodes.iter().position(|n| n.institution == "bank").unwrap_or(2));
        (held.unwrap_or_else(|| subjects[0].clone()), bank)
    };
    let bank_addr = bank.addr;
    bank.shutdown().await?;
    say!("\nbank's node is down; payapp scores {}, whose records bank holds:", &subject_of_bank[..8]);
    let t = Instant::now();
    let s = payapp.get_score(score_req(&subject_of_bank)).await?.into_inner();
    print_score(&s);
    say!("  answered in {:.1?}", t.elapsed());

    say!("\nrefusals:");
    let pay = node(&nodes, "payapp");
    let mut as_regulator = ScoringServiceClient::new(fed.client(Role::Regulator, "pbc", pay.addr).channel()?);
    print_refusal("regulator asks payapp for a score", as_regulator.get_score(score_req(&subjects[0])).await.err());
    let mut as_bikeshare = RecordsServiceClient::new(fed.client(Role::Application, "bikeshare", pay.addr).channel()?);
    print_refusal(
        "bikeshare reads payapp's records",
        as_bikeshare.get_record(pb::GetRecordRequest { name: "institutions/payapp/records/cc-0-0".into() }).await.err(),
    );
    let mut app_as_peer = pb::federation_service_client::FederationServiceClient::new(
        fed.client(Role::Application, "bikeshare", pay.addr).channel()?,
    );
    let direct = pb::QueryRecordsRequest {
        subject_id: subjects[0].clone(),
        purpose: pb::Purpose::AccountReview as i32,
        consent_reference: String::new(),
        query_id: "demo-direct".into(),
        records_only: false,
    };
    print_refusal(
        "bikeshare's application queries payapp's node directly, bypassing its own node",
        app_as_peer.query_records(direct).await.err(),
    );
    let no_consent = pb::GetScoreRequest {
        subject_id: subjects[0].clone(),
        purpose: pb::Purpose::DepositWaiver as i32,
        consent_reference: String::new(),
    };
    print_refusal("deposit-waiver score without a consent token", payapp.get_score(no_consent).await.err());
    let made_up = pb::GetScoreRequest {
        subject_id: subjects[0].clone(),
        purpose: pb::Purpose::DepositWaiver as i32,
        consent_reference: "consent-1".into(),
    };
    print_refusal("deposit-waiver score with a made-up consent string", payapp.get_score(made_up).await.err());
    let bikeshares = pb::GetScoreRequest {
        subject_id: subjects[0].clone(),
        purpose: pb::Purpose::DepositWaiver as i32,
        consent_reference: consent(&fed, "bikeshare", &subjects[0], Purpose::DepositWaiver)?,
    };
    print_refusal("payapp presents a consent bikeshare's application signed", payapp.get_score(bikeshares).await.err());
    let mut subjects_at_payapp = pb::subjects_service_client::SubjectsServiceClient::new(
        fed.client(Role::Application, "payapp", pay.addr).channel()?,
    );
    subjects_at_payapp
        .place_protection(pb::ProtectionRequest {
            subject_id: subjects[1].clone(),
            kind: pb::ProtectionKind::SecurityFreeze as i32,
            consent_reference: consent(&fed, "payapp", &subjects[1], Purpose::SubjectRequest)?,
        })
        .await?;
    print_refusal(
        "deposit-waiver score for a person who froze their file",
        payapp
            .get_score(pb::GetScoreRequest {
                subject_id: subjects[1].clone(),
                purpose: pb::Purpose::DepositWaiver as i32,
                consent_reference: consent(&fed, "payapp", &subjects[1], Purpose::DepositWaiver)?,
            })
            .await
            .err(),
    );
    let mut bad =
        gen::generate(&cfg).find(|r| r.furnisher == "payapp").map(|r| convert::record_to_pb(&r, chrono::Utc::now()));
    if let Some(b) = bad.as_mut() {
        b.currency_code = "yuan".into();
    }
    let mut as_payapp = RecordsServiceClient::new(fed.client(Role::Application, "payapp", pay.addr).channel()?);
    print_refusal(
        "payapp furnishes a record with currency \"yuan\"",
        as_payapp.furnish_records(pb::FurnishRecordsRequest { records: bad.into_iter().collect() }).await.err(),
    );

    crate::cli::output::emit(&summary, || {});
    if opts.serve {
        // Bring the bank back for the regulator's walk-through.
        let mut bank_cfg = fed.directory_config("bank", false);
        policies(&mut bank_cfg);
        let listener = tokio::net::TcpListener::bind(bank_addr).await?;
        nodes.push(bureau::start_on(bank_cfg, listener).await?);
        let pki = fed.pki.0.display();
        let last = FIRST_PORT + INSTITUTIONS.len() as u16;
        say!("\nthe federation keeps running (ctrl-c stops it). As the regulator pbc:");
        say!("  bureau audit verify    --pki {pki} --regulator pbc --federation bureau.demo --node 127.0.0.1:7101");
        say!("  bureau audit verify    --pki {pki} --regulator pbc --federation bureau.demo --node 127.0.0.1:{last}   # the locator");
        say!("  bureau audit reconcile --pki {pki} --regulator pbc --federation bureau.demo --node 127.0.0.1:7101 --node 127.0.0.1:7102 --node 127.0.0.1:7103 --node 127.0.0.1:{last}");
        say!("  bureau audit entries   --pki {pki} --regulator pbc --federation bureau.demo --node 127.0.0.1:{last} --subject {}", subjects[0]);
        say!("  bureau pki directory show --dir {pki} --federation bureau.demo");
        say!("Prometheus metrics (one process, so the nodes serve the same figures):");
        for (inst, port) in INSTITUTIONS.iter().zip(METRICS_PORTS) {
            say!("  {inst:<10} http://127.0.0.1:{port}/metrics");
        }
        tokio::signal::ctrl_c().await?;
    }
    for n in nodes.into_iter().chain(locator) {
        n.shutdown().await?;
    }
    say!("\nnodes stopped");
    Ok(())
}

/// One dispute's effect on a score: payapp's application files for its customer against a
/// charge-off bank furnished; bank's node flags the record at once, payapp's score leaves its
/// derogatory lines out; bank verifies it and the score is what it was.
async fn dispute(
    fed: &LocalFederation,
    nodes: &[RunningNode],
    cfg: &GenConfig,
    payapp: &mut ScoringServiceClient<Channel>,
) -> Result<()> {
    use pb::disputes_service_client::DisputesServiceClient;
    let Some(r) = gen::generate(cfg).find(|r| r.furnisher == "bank" && r.status.is_derogatory()) else {
        return Ok(());
    };
    say!(
        "
a dispute: payapp's customer {} says bank's {} is not theirs",
        &r.subject_id[..8],
        r.record_id
    );
    let before = payapp.get_score(score_req(&r.subject_id)).await?.into_inner();
    let mut at_payapp =
        DisputesServiceClient::new(fed.client(Role::Application, "payapp", node(nodes, "payapp").addr).channel()?);
    let d = at_payapp
        .file_dispute(pb::FileDisputeRequest {
            record: convert::record_name(&r.furnisher, &r.record_id),
            subject_id: r.subject_id.clone(),
            reason: pb::DisputeReason::NotMine as i32,
            statement: "I never had this account".into(),
            consent_reference: consent(fed, "payapp", &r.subject_id, Purpose::SubjectRequest)?,
        })
        .await?
        .into_inner();
    let status = |d: &pb::Dispute| {
        pb::DisputeStatus::try_from(d.status)
            .map(|s| s.as_str_name().trim_start_matches("DISPUTE_STATUS_"))
            .unwrap_or("?")
            .to_owned()
    };
    let deadline =
        d.deadline.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0)).map(|t| t.date_naive().to_string());
    say!("  filed at payapp's node: {} {} (bank must answer by {})", d.name, status(&d), deadline.unwrap_or_default());
    let during = payapp.get_score(score_req(&r.subject_id)).await?.into_inner();
    say!(
        "  score {} -> {} while disputed ({} record's charge-off left out)",
        before.score,
        during.score,
        during.disputed_records_excluded
    );
    let mut at_bank =
        DisputesServiceClient::new(fed.client(Role::Application, "bank", node(nodes, "bank").addr).channel()?);
    let resolved = at_bank
        .resolve_dispute(pb::ResolveDisputeRequest {
            name: d.name.clone(),
            resolution: pb::DisputeResolution::Verified as i32,
            corrected_record: None,
        })
        .await?
        .into_inner();
    let after = payapp.get_score(score_req(&r.subject_id)).await?.into_inner();
    say!(
        "  bank {} it: score {} again; the record now carries the customer's statement (XC)",
        status(&resolved).to_lowercase(),
        after.score
    );
    Ok(())
}

/// A person's own report through payapp, written as the HTML page `bureau report` makes.
async fn report(
    fed: &LocalFederation,
    nodes: &[RunningNode],
    subject: &str,
    dir: Option<&std::path::Path>,
) -> Result<()> {
    let mut c = pb::subjects_service_client::SubjectsServiceClient::new(
        fed.client(Role::Application, "payapp", node(nodes, "payapp").addr).channel()?,
    );
    let r = c
        .get_report(pb::GetReportRequest {
            subject_id: subject.to_owned(),
            consent_reference: consent(fed, "payapp", subject, Purpose::SubjectRequest)?,
        })
        .await?
        .into_inner();
    let path =
        dir.map(|d| d.join("report.html")).unwrap_or_else(|| std::env::temp_dir().join("bureau-demo-report.html"));
    bureau::write_report(&path, &r).with_context(|| path.display().to_string())?;
    let check = bureau::regulator::check_report(&r, &bureau::regulator::KeySource::PkiDir(fed.pki.0.clone()))?;
    say!(
        "
{}'s own report: {} accounts, {} inquiries ({} proven in the signed logs), written to {}",
        &subject[..8],
        r.records.len(),
        r.inquiries.len(),
        check.proven,
        path.display()
    );
    Ok(())
}

/// Waits until the locator's log stops growing (every member's registrations delivered), but
/// for the one entry each of these reads adds (a regulator's read is logged); returns its size.
async fn until_registered(fed: &LocalFederation, locator: &RunningNode) -> Result<u64> {
    let mut audit =
        pb::audit_service_client::AuditServiceClient::new(fed.client(Role::Regulator, "pbc", locator.addr).channel()?);
    let (mut last, mut still) = (0, 0);
    for _ in 0..200 {
        let size = audit.get_checkpoint(pb::GetCheckpointRequest {}).await?.into_inner().tree_size;
        still = if size <= last + 1 && size > 1 { still + 1 } else { 0 };
        if still == 4 {
            return Ok(size);
        }
        last = size;
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    anyhow::bail!("the locator's log kept growing for 50 s")
}

/// A consent token `inst`'s application signs for `subject` and `purpose`, over a demo consent
/// form, living 15 minutes.
fn consent(fed: &LocalFederation, inst: &str, subject: &str, purpose: Purpose) -> Result<String> {
    let form = format!("consent form: {subject} agrees to {} with {inst}", purpose.as_str());
    Ok(fed.consent_token(inst, subject, purpose, form.as_bytes(), chrono::Duration::minutes(15), chrono::Utc::now())?)
}

fn score_req(subject: &str) -> pb::GetScoreRequest {
    pb::GetScoreRequest {
        subject_id: subject.to_owned(),
        purpose: pb::Purpose::AccountReview as i32,
        consent_reference: String::new(),
    }
}

fn print_refusal(what: &str, err: Option<tonic::Status>) {
    match err {
        None => say!("  {what}: unexpectedly allowed"),
        Some(s) => {
            let d = s.get_error_details();
            let reason = d.error_info().map(|i| i.reason.clone()).unwrap_or_default();
            say!("  {what}: {:?} {reason} — {}", s.code(), s.message());
            for v in d.bad_request().map(|b| b.field_violations.clone()).unwrap_or_default() {
                say!("      {}: {}", v.field, v.description);
            }
        }
    }
}
