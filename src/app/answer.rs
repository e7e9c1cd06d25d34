//! Answering a peer's query about a subject: check purpose and consent, record an inquiry, and
//! answer with the records this node's institution furnished itself plus what the purpose needs
//! of the inquiries it holds: every inquiry for the person's own report, only the hard ones
//! inside the scorecard's window for anything else. The node never passes on what it learnt from
//! other peers (it never stores it). No gRPC here.

use crate::{
    app::lifecycle::Lifecycle,
    audit::{About, Entry},
    domain::inquiry::{Inquiry, Purpose},
    domain::protection::Change,
    domain::record::CreditRecord,
    domain::subject::is_valid_subject_id,
    storage::{AnswerQuery, GateError, InquiryAnswer, Refusal, StateChange, StoreError},
};

/// Most inquiries returned with an answer.
pub(crate) const MAX_INQUIRIES_RETURNED: usize = 100;
/// Longest legacy consent reference accepted (a token may be up to
/// [`MAX_TOKEN_LEN`](crate::net::consent_token::MAX_TOKEN_LEN)).
pub(crate) const MAX_CONSENT_REFERENCE: usize = 128;

/// A query as received, before checks.
#[derive(Debug, Clone)]
pub(crate) struct PeerQuery {
    /// The asking institution, from its certificate.
    pub inquirer: String,
    /// The subject's pseudonym.
    pub subject_id: String,
    /// The purpose named; `None` when unspecified or unknown.
    pub purpose: Option<Purpose>,
    /// The consent reference, possibly empty.
    pub consent_reference: String,
    /// The federation-wide query id.
    pub query_id: String,
}

pub(crate) use super::refusal::QueryRefusal;

/// What a node answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Answer {
    /// Records the answering institution furnished.
    pub records: Vec<CreditRecord>,
    /// Inquiries the answering node holds about the subject, newest first: every one for a
    /// subject request; otherwise only the hard ones inside the inquiry window (what a score
    /// counts), which the wire strips to query id and time.
    pub inquiries: Vec<Inquiry>,
    /// The person's freeze and alert as this node holds them (read in the answering write).
    pub protection: crate::domain::protection::Protection,
}

/// Why an answer was not made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AnswerError {
    /// Refused (a malformed query, a purpose not accepted, consent missing).
    #[error(transparent)]
    Refused(#[from] QueryRefusal),
    /// A freeze stands and the purpose is a hard inquiry: nothing was recorded. Carries the
    /// freeze's latest change as this node holds it, which the asking node adopts.
    #[error("{}", QueryRefusal::SubjectFrozen(FROZEN))]
    Frozen {
        /// The freeze's latest change here (none only if the store held none, which a refusal
        /// for a freeze rules out).
        freeze: Option<Change>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::app::consent::ConsentError> for AnswerError {
    fn from(e: crate::app::consent::ConsentError) -> Self {
        match e {
            crate::app::consent::ConsentError::Refused(r) => Self::Refused(r),
            crate::app::consent::ConsentError::Store(s) => Self::Store(s),
        }
    }
}

/// What a freeze refuses: hard inquiries.
pub(crate) const FROZEN: &str = "hard inquiries are refused while a security freeze stands";

/// True for a query id we accept: 1–64 of `[A-Za-z0-9-]` (a UUID fits).
pub(crate) fn is_valid_query_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Checks a query's fields, purpose and consent; returns its purpose.
pub(crate) fn check(q: &PeerQuery, accepted: &[Purpose]) -> Result<Purpose, QueryRefusal> {
    if !is_valid_subject_id(&q.subject_id) {
        return Err(QueryRefusal::Invalid("subject_id", "must be 64 lowercase hex characters"));
    }
    if !is_valid_query_id(&q.query_id) {
        return Err(QueryRefusal::Invalid("query_id", "must be 1 to 64 of [A-Za-z0-9-]"));
    }
    let purpose = q.purpose.ok_or(QueryRefusal::PurposeRequired)?;
    if !accepted.contains(&purpose) {
        return Err(QueryRefusal::PurposeNotAccepted(purpose));
    }
    check_consent(purpose, &q.consent_reference)?;
    Ok(purpose)
}

/// True when a consent is neither a reference of at most 128 printable characters nor a
/// token's shape of at most [`MAX_TOKEN_LEN`](crate::net::consent_token::MAX_TOKEN_LEN).
pub(crate) fn consent_malformed(consent: &str) -> bool {
    let max = match crate::net::consent_token::looks_like_token(consent) {
        true => crate::net::consent_token::MAX_TOKEN_LEN,
        false => MAX_CONSENT_REFERENCE,
    };
    consent.len() > max || consent.chars().any(|c| c.is_control())
}

/// What the audit log records as a query's consent: a token's evidence hash (`sha256:…`),
/// `relationship` for an account review or collections asked without consent (resting on a
/// relationship with the person, which `bureau audit reconcile` checks), else the reference.
pub(crate) fn logged_consent(purpose: Purpose, consent: &str) -> String {
    if consent.is_empty() && !purpose.needs_consent() {
        return RELATIONSHIP.to_owned();
    }
    crate::net::consent_token::logged_form(consent)
}

/// The logged consent of a query that rests on a relationship with the person.
pub(crate) const RELATIONSHIP: &str = "relationship";

/// Checks the consent reference against what `purpose` needs.
pub(crate) fn check_consent(purpose: Purpose, consent: &str) -> Result<(), QueryRefusal> {
    if consent_malformed(consent) {
        return Err(QueryRefusal::Invalid(
            "consent_reference",
            "must be a consent token or at most 128 printable characters",
        ));
    }
    if purpose.needs_consent() && consent.trim().is_empty() {
        return Err(QueryRefusal::ConsentRequired(purpose));
    }
    Ok(())
}

/// Records the inquiry durably and answers with this node's own records and inquiries: only
/// what retention still allows and no record suppressed by an overdue dispute, each with its
/// dispute flag.
pub(crate) async fn answer(
    life: &Lifecycle,
    q: &PeerQuery,
    purpose: Purpose,
    window_days: u32,
) -> Result<Answer, AnswerError> {
    answer_as(life, q, purpose, window_days, (true, None)).await?.ok_or_else(no_first)
}

/// The error of an answer said unmet though it made no change first: the store broke its
/// contract.
fn no_first() -> AnswerError {
    StoreError::Panicked("an answer with no change to make first came back unmet".into()).into()
}

/// [`answer`] without the flush, for a caller that flushes later before answering anyone (the
/// scoring node's own part of a federated score, made durable with its log entries).
///
/// A hard inquiry about a person whose file is frozen is refused inside the same write, from
/// the freeze state that write reads: nothing is recorded, and no separate read is on the path.
///
/// Inquiries: a subject request gets the newest [`MAX_INQUIRIES_RETURNED`]; any other purpose
/// only the hard ones of the last `window_days` (plus a day, for the scorecard's date boundary),
/// and the store reads no further back than that.
pub(crate) async fn answer_unsynced(
    life: &Lifecycle,
    q: &PeerQuery,
    purpose: Purpose,
    window_days: u32,
) -> Result<Answer, AnswerError> {
    answer_as(life, q, purpose, window_days, (false, None)).await?.ok_or_else(no_first)
}

/// [`answer`] (`durable`) or [`answer_unsynced`], making `first` in the same write (`None`
/// when its expectations did not hold: nothing was written).
async fn answer_as(
    life: &Lifecycle,
    q: &PeerQuery,
    purpose: Purpose,
    window_days: u32,
    (durable, first): (bool, Option<StateChange>),
) -> Result<Option<Answer>, AnswerError> {
    let (responder, now) = (life.institution.as_str(), life.clock.now());
    let since = match purpose {
        Purpose::SubjectRequest => None,
        _ => now.checked_sub_signed(chrono::Duration::days(i64::from(window_days) + 1)),
    };
    let show = life.rules(now);
    let gate: crate::storage::AnswerGate = if purpose.is_hard() {
        std::sync::Arc::new(|p: Option<&[u8]>| match p.map(crate::domain::protection::Protection::decode) {
            Some(Ok(p)) if p.frozen() => Err(GateError::Refused(Refusal(FROZEN))),
            Some(Err(why)) => Err(GateError::Undecodable(why)),
            _ => Ok(()),
        })
    } else {
        crate::storage::open_gate()
    };
    let inquiry = Inquiry {
        inquirer: q.inquirer.clone(),
        responder: responder.to_owned(),
        subject_id: q.subject_id.clone(),
        purpose,
        hard: purpose.is_hard(),
        time: now,
        query_id: q.query_id.clone(),
        log_index: None,
    };
    let logged = logged_consent(purpose, &q.consent_reference);
    let about = About { query_id: &q.query_id, subject_id: &q.subject_id, purpose, consent_reference: &logged };
    let entry = Entry::query_inbound(now, &q.inquirer, responder, &about);
    // Only what this institution furnished, even if the store ever held more; the inquiry,
    // its entry (with the number of records answered) and what is read are one write.
    let ask = AnswerQuery { since, show, gate, first, ..AnswerQuery::new(inquiry, entry, MAX_INQUIRIES_RETURNED) };
    let InquiryAnswer { records, inquiries, protection, refused, unmet } = match durable {
        true => life.store.answer_inquiry_durably(ask).await?,
        false => life.store.answer_inquiry(ask).await?,
    };
    let protection = match protection {
        Some(b) => crate::domain::protection::Protection::decode(&b)
            .map_err(|why| StoreError::Corrupt { key: format!("protection {}", q.subject_id), why })?,
        None => Default::default(),
    };
    if let Some(Refusal(_)) = refused {
        return Err(AnswerError::Frozen { freeze: protection.freeze });
    }
    if unmet {
        return Ok(None);
    }
    let mut inquiries = life.live_inquiries(inquiries, now);
    if purpose != Purpose::SubjectRequest {
        inquiries.retain(|i| i.hard);
    }
    Ok(Some(Answer { records, inquiries, protection }))
}

/// The answer-a-peer use case: the purposes this node accepts, its read rules, and (for a
/// person's own report) proofs of the inquiries it recorded. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Answers {
    /// The store with its read rules and clock.
    life: Lifecycle,
    /// Purposes this node answers peer queries for.
    accepted: Vec<Purpose>,
    /// Signs the checkpoint the person's proofs are against, if configured.
    prover: Option<crate::app::proofs::Prover>,
    /// The scorecard's inquiry window in days: how far back a scoring answer's hard inquiries go.
    window_days: u32,
    /// Verifies the consent a peer's query carries.
    consents: crate::app::consent::Consents,
}

/// A peer's answer as the node gives it: what it answered, when, and the proofs a person's own
/// report carries.
#[derive(Debug)]
pub(crate) struct Given {
    /// The answer.
    pub answer: Answer,
    /// When it was made, by the node's clock.
    pub time: chrono::DateTime<chrono::Utc>,
    /// For the person's own report: this node's signed checkpoint and its inquiries with proofs.
    pub proofs: Option<crate::app::proofs::Proofs>,
}

impl Answers {
    /// Answers over `life`, for `accepted` purposes, proving with `prover`, with hard inquiries
    /// of the last `window_days` for scoring purposes.
    pub(crate) fn new(
        life: Lifecycle,
        accepted: Vec<Purpose>,
        prover: Option<crate::app::proofs::Prover>,
        window_days: u32,
        consents: crate::app::consent::Consents,
    ) -> Self {
        Self { life, accepted, prover, window_days, consents }
    }

    /// Checks `q`, records the inquiry durably and answers it. A consent token's nonce is spent
    /// in the answer's own write, so a refused answer (a freeze) leaves the token unspent; only
    /// when the nonce is already spent does a separate check decide (the same query asked again,
    /// or a replay).
    pub(crate) async fn answer(&self, q: &PeerQuery) -> Result<Given, AnswerError> {
        let purpose = check(q, &self.accepted)?;
        let asked = crate::app::consent::Asked {
            inquirer: &q.inquirer,
            subject: &q.subject_id,
            purpose,
            query_id: &q.query_id,
            consent: &q.consent_reference,
            counts_as_report: false,
        };
        let spend = self.consents.verify(&asked)?;
        let time = self.life.clock.now();
        let answer = match answer_as(&self.life, q, purpose, self.window_days, (true, spend.clone())).await? {
            Some(answer) => answer,
            None => {
                if let Some(spend) = spend {
                    self.consents.spend(&asked, spend).await?;
                }
                answer(&self.life, q, purpose, self.window_days).await?
            }
        };
        // The person asking for their own report gets proofs of who looked, from this log.
        let proofs = match (&self.prover, purpose) {
            (Some(prover), Purpose::SubjectRequest) => Some(prover.prove(&answer.inquiries).await?),
            _ => None,
        };
        Ok(Given { answer, time, proofs })
    }
}
