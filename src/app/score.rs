//! One federated score: the node's own records and inquiries, plus every peer's answer under one
//! deadline, merged and de-duplicated, scored locally. Says which peers answered and which did
//! not. No gRPC here beyond the federation client.

use std::{sync::Arc, time::Duration};

use tracing::info;

use crate::{
    app::answer::{self as peer_query, PeerQuery, QueryRefusal},
    app::journal::Journal,
    app::lifecycle::Lifecycle,
    app::protection::{Adoption, Protections},
    audit::{About, Entry},
    domain::inquiry::{Inquiry, Purpose},
    domain::record::merge_records,
    net::{
        locator_client::LocateError,
        peers::{PeerOutcome, PeerResult, Peers, Query},
        trace::TraceContext,
    },
    scoring::{whatif::Suggestion, Band, Model, ScoreResult, MAX_SCORE, MIN_SCORE},
    storage::StoreError,
};

/// What a scoring node needs.
#[derive(Clone)]
pub(crate) struct Scorer {
    /// This node's institution.
    pub institution: String,
    /// Where every attempt and every score served is logged.
    pub journal: Journal,
    /// Its peers.
    pub peers: Arc<Peers>,
    /// The scorecard.
    pub model: Arc<Model>,
    /// One deadline for all peers.
    pub deadline: Duration,
    /// Retention and dispute rules, and the clock.
    pub life: Lifecycle,
    /// Where a freeze a peer refused for is adopted.
    pub protections: Protections,
    /// Verifies the consent a score is asked with, and counts the person's own reports.
    pub consents: crate::app::consent::Consents,
}

/// A subject's federated score and how it was reached.
#[derive(Debug, Clone)]
pub(crate) struct FederatedScore {
    /// The subject.
    pub subject_id: String,
    /// The scorecard's verdict.
    pub result: ScoreResult,
    /// The model's version.
    pub model_version: String,
    /// One entry per peer (records moved out).
    pub coverage: Vec<PeerResult>,
    /// True when any peer did not answer.
    pub partial: bool,
    /// The federated query's id.
    pub query_id: String,
    /// Records the score rests on after de-duplication.
    pub records_used: usize,
    /// Those records (every node's, merged, expired ones left out).
    pub records: Vec<crate::domain::record::CreditRecord>,
    /// Every inquiry any node that answered recorded (one per node a query reached), newest
    /// first: what a person's report shows, each provable by the node that recorded it.
    pub recorded: Vec<Inquiry>,
    /// This node or a peer that answered holds a fraud alert on the subject.
    pub fraud_alert: bool,
    /// How the members asked were chosen.
    pub route: Route,
    /// Members asked (the locator not counted).
    pub asked: usize,
    /// Members this node could have asked.
    pub members: usize,
    /// The inquiries the score counted (merged, one per federated query).
    pub inquiries: Vec<Inquiry>,
    /// The smallest changes that reach [`Self::what_if_target`], when one was asked.
    pub what_if: Vec<Suggestion>,
    /// The target score the what-if is for; 0 when none was asked.
    pub what_if_target: i32,
}

/// How a score chose whom to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// No record locator in the federation: every member.
    Everyone,
    /// The members the locator named as holding records.
    Located,
    /// The locator did not answer: every member instead.
    LocatorDown,
    /// A person's own report: the locator and every member.
    Report,
}

/// Whom a score reached: the members' answers, and the locator's apart.
struct Reach {
    members: Vec<PeerResult>,
    locator: Option<PeerResult>,
    route: Route,
}

impl FederatedScore {
    /// Records under dispute whose derogatory lines the score left out.
    pub(crate) fn disputed_excluded(&self) -> usize {
        self.result.disputed_excluded
    }
}

/// Why a score could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScoreError {
    /// The request itself is refused (bad subject, purpose or consent).
    #[error(transparent)]
    Refused(#[from] QueryRefusal),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::app::consent::ConsentError> for ScoreError {
    fn from(e: crate::app::consent::ConsentError) -> Self {
        match e {
            crate::app::consent::ConsentError::Refused(r) => Self::Refused(r),
            crate::app::consent::ConsentError::Store(s) => Self::Store(s),
        }
    }
}

impl From<peer_query::AnswerError> for ScoreError {
    fn from(e: peer_query::AnswerError) -> Self {
        match e {
            peer_query::AnswerError::Refused(r) => Self::Refused(r),
            peer_query::AnswerError::Frozen { .. } => Self::Refused(QueryRefusal::SubjectFrozen(peer_query::FROZEN)),
            peer_query::AnswerError::Store(s) => Self::Store(s),
        }
    }
}

impl Scorer {
    /// Scores `subject_id` for `purpose`, asking every peer.
    pub(crate) async fn score(
        &self,
        subject_id: &str,
        purpose: Option<Purpose>,
        consent: &str,
        trace: TraceContext,
    ) -> Result<FederatedScore, ScoreError> {
        let started = std::time::Instant::now();
        let query_id = uuid::Uuid::new_v4().to_string();
        let q = PeerQuery {
            inquirer: self.institution.clone(),
            subject_id: subject_id.to_owned(),
            purpose,
            consent_reference: consent.to_owned(),
            query_id: query_id.clone(),
        };
        // Refuse locally what every peer would refuse, before anyone is asked.
        let purpose = peer_query::check(&q, &ALL_PURPOSES)?;
        // The token is verified and its nonce spent on this query here first: peers see the
        // same query id and accept it once each. A person's own report is counted here.
        let asked = crate::app::consent::Asked {
            inquirer: &self.institution,
            subject: subject_id,
            purpose,
            query_id: &query_id,
            consent,
            counts_as_report: purpose == Purpose::SubjectRequest,
        };
        self.consents.check(&asked).await?;
        let (protection, _) = self.life.protection(subject_id).await?;
        if protection.frozen() {
            self.check_freeze(subject_id, purpose).await?;
        }
        let query = Query {
            subject_id: subject_id.to_owned(),
            purpose,
            consent_reference: consent.to_owned(),
            query_id: query_id.clone(),
            trace,
            records_only: false,
        };
        // Peers first, so they work while this node reads its own part; that part is flushed
        // together with the log entries below, one fsync on the critical path instead of two.
        let fan_out = self.reach(&query);
        // `join!` polls in order: the fan-out's requests are on the wire before the own part
        // waits on its first storage call.
        let (reach, own) =
            tokio::join!(fan_out, peer_query::answer_unsynced(&self.life, &q, purpose, self.model.window_days()));
        let Reach { members: mut coverage, locator, route } = reach;
        let (asked, members) = (coverage.len(), self.peers.member_count());
        // A locator that did not answer leaves nothing out (every member was asked instead).
        let partial = coverage.iter().any(|c| c.outcome != PeerOutcome::Answered);
        coverage.extend(locator);
        // Every attempt, answered or not, and the score served, durable before the answer.
        let logged = peer_query::logged_consent(purpose, consent);
        let about = About { query_id: &query_id, subject_id, purpose, consent_reference: &logged };
        let now = self.life.clock.now();
        let mut log: Vec<Entry> = coverage
            .iter()
            .map(|c| {
                let outcome = c.outcome.as_str();
                Entry::query_outbound(now, &self.institution, &about, &c.peer, outcome, c.records_returned)
            })
            .collect();
        let own = match own {
            Ok(own) => own,
            Err(e) => {
                // The own part was refused (a freeze arrived after the check above) or failed
                // after peers were asked: the peers that answered logged the query, so this
                // node logs its side before it refuses.
                log.push(Entry::score_refused(now, &self.institution, &about, &e));
                self.journal.record(log).await?;
                return Err(e.into());
            }
        };
        // A freeze anywhere stops a hard inquiry: one peer's SUBJECT_FROZEN refuses the whole
        // score, as this node's own freeze would, and this node adopts the freeze (with its
        // side of the log, in one write) so it refuses the next one before asking anyone.
        let frozen_at = coverage.iter().filter(|_| purpose.is_hard()).find_map(|c| Some((&c.peer, c.frozen.as_ref()?)));
        if let Some((peer, frozen)) = frozen_at {
            let refusal = QueryRefusal::SubjectFrozen(peer_query::FROZEN);
            log.push(Entry::score_refused(now, &self.institution, &about, &refusal));
            let adoption = Adoption { from: peer, subject: subject_id, freeze: frozen.change.as_ref() };
            self.protections.adopt(adoption, log).await?;
            info!(subject = %subject_id, query_id = %query_id, peer = %peer, purpose = purpose.as_str(), "score refused: a peer holds a freeze");
            return Err(refusal.into());
        }
        let today = now.date_naive();
        // Only a person's report shows every inquiry as each node recorded it.
        let keep_recorded = purpose == Purpose::SubjectRequest;
        let (records, inquiries, recorded) =
            score_input(&self.life.retention, now, own, &mut coverage, &query_id, keep_recorded);
        let result = self.model.score(&records, &inquiries, today);
        let fraud_alert = protection.alert_active(now) || coverage.iter().any(|c| c.fraud_alert);
        let outcome = format!(
            "score={}{}{}{}",
            result.score,
            result.exclusion.map(|e| format!(" unscoreable={}", e.code())).unwrap_or_default(),
            if partial { " partial" } else { "" },
            if fraud_alert { " fraud_alert" } else { "" }
        );
        log.push(Entry::score_served(now, &self.institution, &about, outcome, records.len(), self.model.version()));
        self.journal.record(log).await?;
        metrics::histogram!("bureau_score_duration_seconds").record(started.elapsed().as_secs_f64());
        info!(
            trace_id = %query.trace.trace_id(),
            subject = %subject_id,
            query_id = %query_id,
            purpose = purpose.as_str(),
            score = result.score,
            records = records.len(),
            asked,
            members,
            route = ?route,
            partial,
            "federated score served"
        );
        Ok(FederatedScore {
            subject_id: subject_id.to_owned(),
            result,
            model_version: self.model.version().to_owned(),
            coverage,
            partial,
            query_id,
            records_used: records.len(),
            records,
            recorded,
            fraud_alert,
            route,
            asked,
            members,
            inquiries,
            what_if: Vec::new(),
            what_if_target: 0,
        })
    }

    /// Scores `subject_id` as [`Self::score`] does and adds the smallest changes within the
    /// person's control that reach `target` (350 to 950), computed from the scorecard itself.
    pub(crate) async fn score_what_if(
        &self,
        subject_id: &str,
        purpose: Option<Purpose>,
        consent: &str,
        trace: TraceContext,
        target: i32,
    ) -> Result<FederatedScore, ScoreError> {
        let mut s = self.score(subject_id, purpose, consent, trace).await?;
        self.what_if(&mut s, target);
        Ok(s)
    }

    /// Fills `s`'s what-if for `target` (clamped to the scale).
    pub(crate) fn what_if(&self, s: &mut FederatedScore, target: i32) {
        let target = target.clamp(MIN_SCORE, MAX_SCORE);
        s.what_if = self.model.what_if(&s.records, &s.inquiries, s.result.as_of, target);
        s.what_if_target = target;
    }

    /// The next band's lowest score above `s` (what a person's report shows a what-if for), or
    /// the lowest score for an unscoreable file (what makes it scoreable); none at the top band.
    pub(crate) fn next_band(s: &FederatedScore) -> Option<i32> {
        if s.result.exclusion.is_some() {
            return Some(MIN_SCORE);
        }
        [550, 600, 650, 700].into_iter().find(|edge| Band::of(*edge) > s.result.band)
    }

    /// Asks the members that matter for `query`: with a record locator, the ones it names as
    /// holding records about the person (with records only: the locator's answer carries the
    /// hard inquiries a score counts); without one, or while it does not answer, every member.
    /// A person's own report asks the locator and every member, since any may hold an inquiry.
    async fn reach(&self, query: &Query) -> Reach {
        let everyone = |route| async move {
            let members = self.peers.query_all(query, self.deadline).await;
            Reach { members, locator: None, route }
        };
        if !self.peers.has_locator() {
            return everyone(Route::Everyone).await;
        }
        let started = std::time::Instant::now();
        let report = query.purpose == Purpose::SubjectRequest;
        let located = Query { records_only: !report, ..query.clone() };
        if report {
            let (found, members) =
                tokio::join!(self.peers.locate(&located, self.deadline), self.peers.query_all(query, self.deadline));
            let locator = match found {
                Ok(l) => Some(l.answer),
                Err(LocateError::Failed(r)) => Some(*r),
                Err(LocateError::NoLocator) => None,
            };
            return Reach { members, locator, route: Route::Report };
        }
        match self.peers.locate(&located, self.deadline).await {
            Ok(found) => {
                let holders: Vec<String> = found.holders.into_iter().filter(|h| *h != self.institution).collect();
                let rest = self.deadline.saturating_sub(started.elapsed());
                let members = self.peers.query_some(&holders, &located, rest).await;
                Reach { members, locator: Some(found.answer), route: Route::Located }
            }
            Err(LocateError::NoLocator) => everyone(Route::Everyone).await,
            Err(LocateError::Failed(r)) => {
                tracing::warn!(locator = %r.peer, error = r.error.as_deref().unwrap_or(""), "the record locator did not answer; asking every member");
                metrics::counter!("bureau_locator_fallbacks_total").increment(1);
                let rest = self.deadline.saturating_sub(started.elapsed());
                let members = self.peers.query_all(query, rest).await;
                Reach { members, locator: Some(*r), route: Route::LocatorDown }
            }
        }
    }

    /// While a freeze stands: hard inquiries are refused; account review and collections pass
    /// only for an institution that already furnishes a record about the person (FCRA
    /// §605A(i)(4): existing creditors); the person's own requests always pass.
    async fn check_freeze(&self, subject_id: &str, purpose: Purpose) -> Result<(), ScoreError> {
        match purpose {
            Purpose::SubjectRequest => Ok(()),
            Purpose::CreditApplication | Purpose::DepositWaiver => {
                Err(QueryRefusal::SubjectFrozen(peer_query::FROZEN).into())
            }
            Purpose::AccountReview | Purpose::Collections => {
                let mut after = None;
                loop {
                    let page = self.life.store.list_subject(subject_id, after, 256).await?;
                    if page.items.iter().any(|s| s.record.furnisher == self.institution) {
                        return Ok(());
                    }
                    match page.next {
                        Some(next) => after = Some(next),
                        None => {
                            return Err(QueryRefusal::SubjectFrozen(
                                "while a security freeze stands only institutions that already furnish a record about \
                                 the person may review or collect",
                            )
                            .into())
                        }
                    }
                }
            }
        }
    }
}

/// What a score made at `now` rests on: the node's own part and every peer's records merged
/// (highest version per key) and inquiries de-duplicated, with nothing this node's retention
/// has expired. A peer with a longer window never brings expired data into a score made here.
/// With `keep_recorded`, also every inquiry as each node recorded it (for a person's report);
/// empty otherwise, so a score does not sort and copy what it never shows.
pub(crate) fn score_input(
    retention: &crate::domain::retention::Retention,
    now: chrono::DateTime<chrono::Utc>,
    own: peer_query::Answer,
    coverage: &mut [PeerResult],
    query_id: &str,
    keep_recorded: bool,
) -> (Vec<crate::domain::record::CreditRecord>, Vec<Inquiry>, Vec<Inquiry>) {
    let today = now.date_naive();
    let records = merge_records(
        own.records
            .into_iter()
            .chain(coverage.iter_mut().flat_map(|c| std::mem::take(&mut c.records)))
            .filter(|r| !retention.record_expired(r, today)),
    );
    let all: Vec<Inquiry> = own
        .inquiries
        .into_iter()
        .chain(coverage.iter_mut().flat_map(|c| std::mem::take(&mut c.inquiries)))
        .filter(|i| !retention.inquiry_expired(i, now) && i.query_id != query_id)
        .collect();
    let mut recorded = Vec::new();
    if keep_recorded {
        let mut seen = std::collections::HashSet::new();
        recorded = all.iter().filter(|i| seen.insert((i.responder.clone(), i.query_id.clone()))).cloned().collect();
        recorded.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.responder.cmp(&b.responder)));
    }
    let inquiries = merge_inquiries(all.into_iter(), query_id);
    (records, inquiries, recorded)
}

/// Every purpose: the scoring node itself refuses only on consent, peers apply their own lists.
const ALL_PURPOSES: [Purpose; 5] = [
    Purpose::CreditApplication,
    Purpose::AccountReview,
    Purpose::DepositWaiver,
    Purpose::Collections,
    Purpose::SubjectRequest,
];

/// One inquiry per federated query (each peer logs the same query id), without the query being
/// scored now: an application does not count against itself.
pub(crate) fn merge_inquiries(inquiries: impl Iterator<Item = Inquiry>, current: &str) -> Vec<Inquiry> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Inquiry> =
        inquiries.filter(|i| i.query_id != current && seen.insert(i.query_id.clone())).collect();
    out.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.query_id.cmp(&b.query_id)));
    out
}
