//! A policy decision ("waive the deposit at 550"): a federated score under the policy's
//! purpose, held against the policy's threshold, and the decision logged durably. Policies are
//! data from the configuration, never code.

use std::{collections::BTreeMap, sync::Arc};

use crate::{
    app::{
        journal::Journal,
        notice::{adverse_notice, Declined},
        score::{FederatedScore, ScoreError, Scorer},
    },
    audit::{About, Entry},
    domain::inquiry::Purpose,
    net::trace::TraceContext,
    wire::pb::bureau::v1 as pb,
};

/// One named policy: the purpose its queries name and the lowest approving score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// The purpose sent with the queries this policy makes.
    pub purpose: Purpose,
    /// Lowest approving score.
    pub min_score: i32,
    /// An unscoreable file is referred to a person (else the waiver is declined).
    pub refer_unscoreable: bool,
}

/// The decision use case: the node's named policies over its scorer. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Decisions {
    /// Policies by name.
    policies: Arc<BTreeMap<String, Policy>>,
    /// Federated scoring.
    scorer: Scorer,
    /// Where decisions are logged.
    journal: Journal,
}

/// What a policy decided, and the score it rests on.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    /// Approved automatically.
    pub approved: bool,
    /// `approve`, `decline`, `refer: verify identity` (a fraud alert stands), or for a file
    /// too thin to score `refer: unscoreable` or `decline: unscoreable`, as the policy says.
    pub outcome: &'static str,
    /// The policy's threshold.
    pub threshold: i32,
    /// The score decided on.
    pub score: FederatedScore,
    /// For a decline, the notice the lender gives the person.
    pub notice: Option<pb::AdverseActionNotice>,
}

/// Why no decision was made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecideError {
    /// No policy of that name on this node.
    #[error("no policy {name:?} on this node; known: {known:?}")]
    UnknownPolicy {
        /// The name asked for.
        name: String,
        /// The names this node has.
        known: Vec<String>,
    },
    /// The score could not be made.
    #[error(transparent)]
    Score(#[from] ScoreError),
}

impl Decisions {
    /// Decisions under `policies`, scored by `scorer`, logged in `journal`.
    pub(crate) fn new(policies: BTreeMap<String, Policy>, scorer: Scorer, journal: Journal) -> Self {
        Self { policies: Arc::new(policies), scorer, journal }
    }

    /// Scores `subject` under the named policy and decides; the decision is durable in the log
    /// before it is returned.
    pub(crate) async fn decide(
        &self,
        name: &str,
        subject: &str,
        consent: &str,
        trace: TraceContext,
    ) -> Result<Decision, DecideError> {
        let policy = *self.policies.get(name).ok_or_else(|| DecideError::UnknownPolicy {
            name: name.to_owned(),
            known: self.policies.keys().cloned().collect(),
        })?;
        let score = self.scorer.score(subject, Some(policy.purpose), consent, trace).await?;
        // A fraud alert means no automatic approval: the lender verifies identity first.
        let unscoreable = score.result.exclusion.is_some();
        let (approved, outcome, verdict) =
            match (score.result.score >= policy.min_score, score.fraud_alert, unscoreable) {
                (_, true, _) => (false, "refer: verify identity", "referred"),
                (_, false, true) if policy.refer_unscoreable => (false, "refer: unscoreable", "referred:unscoreable"),
                (_, false, true) => (false, "decline: unscoreable", "declined:unscoreable"),
                (true, false, false) => (true, "approve", "approved"),
                (false, false, false) => (false, "decline", "declined"),
            };
        let about = About {
            query_id: &score.query_id,
            subject_id: subject,
            purpose: policy.purpose,
            consent_reference: &crate::app::answer::logged_consent(policy.purpose, consent),
        };
        let entry = Entry::decision_served(
            self.journal.now(),
            self.journal.institution(),
            &about,
            format!("{name}:{verdict}"),
            score.result.score,
            policy.min_score,
            &score.model_version,
        );
        self.journal.record(vec![entry]).await.map_err(ScoreError::from)?;
        tracing::debug!(policy = %name, subject = %subject, score = score.result.score, approved, "decision served");
        let notice = outcome.starts_with("decline").then(|| {
            let declined =
                Declined { policy: name, outcome, lender: self.journal.institution(), time: self.journal.now() };
            adverse_notice(&declined, &score, &self.scorer.life.retention)
        });
        Ok(Decision { approved, outcome, threshold: policy.min_score, score, notice })
    }
}
