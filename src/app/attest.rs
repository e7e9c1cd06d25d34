//! Threshold attestations for the node's own applications: a policy decided as `Decide` does,
//! but answered only with a statement signed by the node — meets / does not meet, for one
//! verifier and its nonce — logged and proven against a signed checkpoint. The score stays in
//! the node's log, where only a regulator reads it.

use chrono::Duration;

use crate::{
    app::{
        decide::{DecideError, Decisions},
        journal::Journal,
        proofs::Prover,
    },
    audit::attestation::{self, Bundle, Claims},
    net::trace::TraceContext,
    storage::StoreError,
};

/// How long an attestation holds: long enough for a rental to start, short enough that an
/// old "meets" is not reused for the next one.
pub(crate) const TTL: Duration = Duration::hours(24);

/// Longest verifier id or nonce accepted, in bytes.
pub(crate) const MAX_FIELD: usize = 256;

/// The attestation use case. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Attestations {
    /// Decides the policy (and logs the decision with its score).
    decisions: Decisions,
    /// The node's clock and institution.
    journal: Journal,
    /// Signs and proves; `None` when the node has no checkpoint key.
    prover: Option<Prover>,
}

/// A request for an attestation.
#[derive(Debug, Clone)]
pub(crate) struct AttestRequest<'a> {
    /// The policy's name.
    pub policy: &'a str,
    /// The person's pseudonym.
    pub subject: &'a str,
    /// The person's consent reference.
    pub consent: &'a str,
    /// The verifier the statement is for.
    pub verifier: &'a str,
    /// The verifier's nonce.
    pub nonce: &'a str,
}

/// Why no attestation was issued.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttestError {
    /// A field is empty, too long or not printable ASCII.
    #[error("{field}: {why}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// The node has no checkpoint key to sign with.
    #[error("this node has no checkpoint key: it cannot sign attestations")]
    NoKey,
    /// The decision could not be made.
    #[error(transparent)]
    Decide(#[from] DecideError),
    /// The log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn check(field: &'static str, v: &str) -> Result<(), AttestError> {
    if v.is_empty() {
        return Err(AttestError::Invalid { field, why: "required" });
    }
    if v.len() > MAX_FIELD || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AttestError::Invalid { field, why: "at most 256 printable ASCII characters" });
    }
    Ok(())
}

impl Attestations {
    /// Attestations over `decisions`, signed and proven by `prover`.
    pub(crate) fn new(decisions: Decisions, journal: Journal, prover: Option<Prover>) -> Self {
        Self { decisions, journal, prover }
    }

    /// Decides `r.policy` for `r.subject` and returns the signed, logged, proven statement of
    /// its outcome. `meets` only when the decision approved: a fraud alert or an unscoreable
    /// file is `does_not_meet`, with no detail the verifier could learn the score from.
    pub(crate) async fn attest(&self, r: AttestRequest<'_>, trace: TraceContext) -> Result<Bundle, AttestError> {
        check("verifier", r.verifier)?;
        check("nonce", r.nonce)?;
        let prover = self.prover.as_ref().ok_or(AttestError::NoKey)?;
        let d = self.decisions.decide(r.policy, r.subject, r.consent, trace).await?;
        let now = self.journal.now();
        let claims = Claims {
            iss: prover.origin().to_owned(),
            sub: r.subject.to_owned(),
            aud: r.verifier.to_owned(),
            nonce: r.nonce.to_owned(),
            policy: r.policy.to_owned(),
            threshold: d.threshold,
            outcome: if d.approved { attestation::MEETS } else { attestation::DOES_NOT_MEET }.to_owned(),
            model: d.score.model_version.clone(),
            iat: now.timestamp(),
            exp: (now + TTL).timestamp(),
            jti: d.score.query_id.clone(),
        };
        let jws = prover.sign_attestation(&claims);
        // The entry carries the consent as every entry does: its evidence hash, never the token.
        let consent = crate::net::consent_token::logged_form(r.consent);
        let entry = attestation::entry(now, self.journal.institution(), &claims, &consent, &jws);
        let bundle = prover.log_and_prove(entry, jws).await?;
        tracing::info!(policy = %r.policy, subject = %r.subject, verifier = %r.verifier, outcome = %claims.outcome, log_index = bundle.log_index, "attestation issued");
        Ok(bundle)
    }
}
