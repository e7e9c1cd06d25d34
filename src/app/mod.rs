//! The use cases, over the storage trait and the peer client: the only door to storage. Every
//! layer above (gRPC handlers, the server's wiring) reaches the store through [`UseCases`];
//! the state spaces only through [`state`]. Disputes and protections are the two users of the
//! [`outbox`] that carries their notices to peers. No gRPC types here.

pub(crate) mod admin;
pub(crate) mod answer;
pub(crate) mod attest;
pub(crate) mod audit_log;
pub(crate) mod consent;
pub(crate) mod decide;
pub(crate) mod disputes;
pub(crate) mod furnish;
pub(crate) mod holdings;
pub(crate) mod journal;
pub(crate) mod lifecycle;
pub(crate) mod locator;
pub(crate) mod notice;
pub(crate) mod notice_checks;
pub(crate) mod outbox;
pub(crate) mod proofs;
pub(crate) mod protection;
pub(crate) mod records;
pub(crate) mod refusal;
pub(crate) mod report;
pub(crate) mod score;
pub(crate) mod state;
pub(crate) mod tlog;
pub(crate) mod witnessing;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

/// The storage vocabulary the use cases speak to the layers above: plain data and the one
/// error type, never the store itself.
pub(crate) use crate::storage::{BackupPart, InquiryCursor, RecordCursor, StoreError};

use crate::{
    domain::{clock::Clock, inquiry::Purpose, retention::Retention},
    net::peers::Peers,
    scoring::Model,
    storage::DynStorage,
};

/// Everything a node's use cases need to be built, from its configuration.
pub(crate) struct Settings {
    /// The institution the node serves.
    pub institution: String,
    /// The log's origin (and checkpoint key name): `<federation>/institution/<id>`.
    pub origin: String,
    /// The clock every time is read from.
    pub clock: Clock,
    /// Retention windows.
    pub retention: Retention,
    /// Purposes this node answers peer queries for.
    pub accepted_purposes: Vec<Purpose>,
    /// Named decision policies.
    pub policies: BTreeMap<String, decide::Policy>,
    /// The scorecard.
    pub model: Model,
    /// One deadline for all peers of a score.
    pub peer_deadline: Duration,
    /// Longest wait between an outbox notice's retries.
    pub outbox_retry_max: Duration,
    /// The key that signs audit checkpoints, if configured.
    pub log_key: Option<Arc<ed25519_dalek::SigningKey>>,
    /// The institution's applications that may take a backup (`admin.applications`).
    pub administrators: Vec<String>,
    /// Applications that may only ask for attestations (`admin.attest_only`).
    pub attest_only: Vec<String>,
    /// This node runs the record locator (`federation.locator`).
    pub locator: bool,
    /// How consent is checked (`[consent]`).
    pub consent: consent::ConsentPolicy,
    /// This node as a C2SP witness of its peers' logs, when it has a witness key.
    pub witness: Option<tlog::WitnessSettings>,
    /// Collecting this log's cosignatures (`tlog.policy`).
    pub witnessing: Option<tlog::Witnessing>,
}

/// Every use case of one node, built once over one store. Cheap to clone.
#[derive(Clone)]
pub(crate) struct UseCases {
    /// The institution's own records.
    pub records: records::Records,
    /// Answering a peer's query.
    pub answers: answer::Answers,
    /// Federated scores.
    pub scorer: score::Scorer,
    /// Policy decisions.
    pub decisions: decide::Decisions,
    /// Signed threshold attestations.
    pub attestations: attest::Attestations,
    /// The person's own report.
    pub reports: report::Reports,
    /// The regulator's view of the log.
    pub audit: audit_log::AuditLog,
    /// Disputes.
    pub disputes: disputes::Disputes,
    /// People's freezes and fraud alerts.
    pub protections: protection::Protections,
    /// The notices waiting for peers (run by the server's background loop).
    pub outbox: outbox::Outbox,
    /// Backup and purge.
    pub admin: admin::Admin,
    /// Refusals and other entries outside a data change.
    pub journal: journal::Journal,
    /// The read rules, the clock and the background purge.
    pub life: lifecycle::Lifecycle,
    /// The record locator, when this node runs it.
    pub locator: locator::Locator,
    /// This member's registrations at the locator (run by the server's background loop).
    pub holdings: holdings::Holdings,
    /// The C2SP tiles and the witness.
    pub tlog: tlog::Tlog,
}

impl UseCases {
    /// Builds every use case over `store`, asking `peers`.
    pub(crate) fn new(s: Settings, store: DynStorage, peers: Arc<Peers>) -> Self {
        let life = lifecycle::Lifecycle {
            institution: s.institution.clone(),
            store: store.clone(),
            clock: s.clock.clone(),
            retention: s.retention,
        };
        let consents = consent::Consents::new(life.clone(), s.consent);
        let journal = journal::Journal::new(s.institution.clone(), store.clone(), s.clock);
        let prover = s.log_key.map(|key| proofs::Prover::new(store.clone(), key, s.origin, s.institution.clone()));
        let outbox = outbox::Outbox::new(life.clone(), peers.clone(), s.outbox_retry_max);
        let disputes = disputes::Disputes::new(life.clone(), outbox.clone(), consents.clone());
        let protections = protection::Protections::new(life.clone(), outbox.clone(), consents.clone());
        let window_days = s.model.window_days();
        let holdings = holdings::Holdings::new(life.clone(), peers.clone());
        let tlog =
            tlog::Tlog::new(store.clone(), prover.clone(), journal.clone(), s.witness, s.witnessing, peers.clone());
        let locator = locator::Locator::new(s.locator, state::State::new(store.clone()), journal.clone());
        let scorer = score::Scorer {
            institution: s.institution.clone(),
            journal: journal.clone(),
            peers,
            model: Arc::new(s.model),
            deadline: s.peer_deadline,
            life: life.clone(),
            protections: protections.clone(),
            consents: consents.clone(),
        };
        let decisions = decide::Decisions::new(s.policies, scorer.clone(), journal.clone());
        Self {
            attestations: attest::Attestations::new(decisions.clone(), journal.clone(), prover.clone()),
            decisions,
            records: records::Records::new(life.clone()),
            answers: answer::Answers::new(
                life.clone(),
                s.accepted_purposes,
                prover.clone(),
                window_days,
                consents.clone(),
            ),
            reports: report::Reports::new(scorer.clone(), disputes.clone(), prover.clone(), journal.clone()),
            tlog,
            audit: audit_log::AuditLog::new(store, prover, journal.clone()),
            admin: admin::Admin::new(life.clone(), journal.clone(), s.administrators, s.attest_only),
            scorer,
            disputes,
            protections,
            outbox,
            journal,
            life,
            locator,
            holdings,
        }
    }
}
