//! A person's own report: the federation's records and inquiries about them, each inquiry with
//! an inclusion proof against the signed checkpoint of the node that recorded it, so the
//! person's application can check that the inquiries it was shown are the ones regulators see.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::{
    app::{
        answer::{check_consent, QueryRefusal},
        disputes::Disputes,
        journal::Journal,
        proofs::Prover,
        score::{FederatedScore, ScoreError, Scorer},
    },
    audit::{About, Entry},
    domain::{
        dispute::Dispute,
        inquiry::{Inquiry, Purpose},
        protection::Protection,
    },
    net::trace::TraceContext,
    storage::{InquiryCursor, Page},
    wire::{convert, pb::bureau::v1 as pb},
};

/// A person's own report, assembled: the federated score (records and every inquiry each node
/// recorded), the proofs, the disputes and protections this node holds.
#[derive(Debug)]
pub(crate) struct Report {
    /// The subject-request score and what it rests on.
    pub score: FederatedScore,
    /// Every inquiry the score counted, newest first, each with its proof where one was sent.
    pub inquiries: Vec<pb::Inquiry>,
    /// The signed checkpoints the proofs are against: this node's, then the peers'.
    pub checkpoints: Vec<pb::Checkpoint>,
    /// Disputes this node holds about the person.
    pub disputes: Vec<Dispute>,
    /// The person's freeze and alert as this node holds them.
    pub protection: Protection,
    /// When the report was made, by the node's clock.
    pub time: DateTime<Utc>,
}

/// The person's-own-report use case. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Reports {
    /// Federated scoring (a soft, subject-request query).
    scorer: Scorer,
    /// Disputes this node holds.
    disputes: Disputes,
    /// Proofs of this node's own inquiries, if it has a checkpoint key.
    prover: Option<Prover>,
    /// Where serving a report is logged.
    journal: Journal,
}

impl Reports {
    /// Reports made with `scorer`, proven by `prover`, logged in `journal`.
    pub(crate) fn new(scorer: Scorer, disputes: Disputes, prover: Option<Prover>, journal: Journal) -> Self {
        Self { scorer, disputes, prover, journal }
    }

    /// Assembles `subject`'s report from the whole federation and logs it durably.
    pub(crate) async fn report(&self, subject: &str, consent: &str, trace: TraceContext) -> Result<Report, ScoreError> {
        let mut score = self.scorer.score(subject, Some(Purpose::SubjectRequest), consent, trace).await?;
        // What would reach the next band: the person's own question, answered exactly.
        if let Some(edge) = Scorer::next_band(&score) {
            self.scorer.what_if(&mut score, edge);
        }
        // Proofs for the inquiries this node recorded; peers sent theirs with their answers.
        let mut proven: Vec<pb::Inquiry> = Vec::new();
        let mut checkpoints = Vec::new();
        if let Some(prover) = &self.prover {
            let own = prover.prove(&score.recorded).await?;
            checkpoints.push(own.checkpoint);
            proven.extend(own.proven);
        }
        for c in &score.coverage {
            checkpoints.extend(c.checkpoint.clone());
            proven.extend(c.proven.iter().cloned());
        }
        let disputes = self.disputes.about(subject).await?;
        let (protection, _) = self.scorer.life.protection(subject).await?;
        let time = self.journal.now();
        let about = About {
            query_id: &score.query_id,
            subject_id: subject,
            purpose: Purpose::SubjectRequest,
            consent_reference: &crate::net::consent_token::logged_form(consent),
        };
        let entry =
            Entry::report_served(time, self.journal.institution(), &about, score.records.len(), &score.model_version);
        self.journal.record(vec![entry]).await?;
        let inquiries = inquiries_with_proofs(&score.recorded, proven);
        Ok(Report { score, inquiries, checkpoints, disputes, protection, time })
    }

    /// A page of the inquiries this node holds about `subject`, newest first, none expired, for
    /// `caller` (one of this institution's applications). Who asked and why is the person's own
    /// data: only purpose `SubjectRequest` with the person's consent reference is answered, and
    /// each page listed is logged durably before it is returned.
    pub(crate) async fn inquiries(&self, ask: &InquiryListing<'_>) -> Result<Page<Inquiry, InquiryCursor>, ScoreError> {
        let purpose = ask.purpose.ok_or(QueryRefusal::PurposeRequired)?;
        if purpose != Purpose::SubjectRequest {
            return Err(QueryRefusal::PurposeNotAccepted(purpose).into());
        }
        check_consent(purpose, ask.consent)?;
        // Listing is the person's own request: a token is spent on this one listing.
        let spent_on = format!("list-{}", uuid::Uuid::new_v4());
        let asked = crate::app::consent::Asked {
            inquirer: self.journal.institution(),
            subject: ask.subject,
            purpose,
            query_id: &spent_on,
            consent: ask.consent,
            counts_as_report: false,
        };
        self.scorer.consents.check(&asked).await?;
        let life = &self.scorer.life;
        let page = life.store.subject_inquiries(ask.subject, ask.before.clone(), ask.size).await?;
        let page = Page { items: life.live_inquiries(page.items, life.clock.now()), next: page.next };
        let logged = crate::net::consent_token::logged_form(ask.consent);
        let about = About { query_id: "", subject_id: ask.subject, purpose, consent_reference: &logged };
        let entry = Entry::inquiries_listed(
            self.journal.now(),
            self.journal.institution(),
            ask.caller,
            &about,
            page.items.len(),
        );
        self.journal.record(vec![entry]).await?;
        Ok(page)
    }
}

/// One request to list a person's inquiries, as [`Reports::inquiries`] checks it.
#[derive(Debug, Clone)]
pub(crate) struct InquiryListing<'a> {
    /// The asking application's identity.
    pub caller: &'a str,
    /// The person's pseudonym (already checked well-formed).
    pub subject: &'a str,
    /// The purpose named; `None` when unspecified or unknown.
    pub purpose: Option<Purpose>,
    /// The person's consent reference, possibly empty.
    pub consent: &'a str,
    /// Older than this cursor, if any.
    pub before: Option<InquiryCursor>,
    /// At most this many.
    pub size: usize,
}

/// The report's inquiries: every one the score counted, newest first, each with its proof
/// where the node that recorded it sent one.
pub(crate) fn inquiries_with_proofs(inquiries: &[Inquiry], proven: Vec<pb::Inquiry>) -> Vec<pb::Inquiry> {
    let mut by_key: HashMap<(String, String), pb::Inquiry> =
        proven.into_iter().map(|p| ((p.responder.clone(), p.query_id.clone()), p)).collect();
    inquiries
        .iter()
        .map(|i| by_key.remove(&(i.responder.clone(), i.query_id.clone())).unwrap_or_else(|| convert::inquiry_to_pb(i)))
        .collect()
}
