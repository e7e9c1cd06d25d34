//! Consent that binds: every answering node — the one an application calls and every peer it
//! forwards to — verifies the consent token a query carries (signature, the signer's
//! certificate chain and revocation, expiry), that it binds this query (the person, the
//! purpose, the asking institution the caller's certificate proves), and that its nonce was not
//! used for another query; then it records the nonce and a [`Action::ConsentVerified`] entry
//! with the evidence hash, in one write — at a peer or the locator, the answer's own
//! ([`Consents::verify`]). A person's own report is also counted against the yearly allowance
//! per person and institution, in that same write.
//!
//! [`Action::ConsentVerified`]: crate::audit::Action::ConsentVerified

use chrono::{DateTime, Duration, Utc};
use tracing::info;

use crate::{
    app::{lifecycle::Lifecycle, refusal::QueryRefusal},
    audit::{About, Entry},
    config::ConsentTokens,
    domain::inquiry::Purpose,
    net::consent_token::{self, TokenError, TokenVerifier},
    storage::{Space, StateChange, StoreError},
};

/// How a node checks consent, from its configuration.
#[derive(Debug, Clone)]
pub(crate) struct ConsentPolicy {
    /// Tokens required, or legacy reference strings.
    pub tokens: ConsentTokens,
    /// Checks tokens against the authority (absent only in legacy mode).
    pub verifier: Option<TokenVerifier>,
    /// The person's reports one institution may ask for in `report_window`.
    pub reports_per_window: u32,
    /// The window of that allowance.
    pub report_window: Duration,
}

/// One query's consent as asked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asked<'a> {
    /// The asking institution, as its certificate (or the node's own) proves.
    pub inquirer: &'a str,
    /// The person.
    pub subject: &'a str,
    /// The purpose named.
    pub purpose: Purpose,
    /// The query the token is spent on (a token serves one query, at every node it reaches).
    pub query_id: &'a str,
    /// The consent given.
    pub consent: &'a str,
    /// Count this as one of the person's own reports (at the node the application called).
    pub counts_as_report: bool,
}

/// Why consent was not accepted, or could not be checked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsentError {
    /// Refused (the query's refusal says why).
    #[error(transparent)]
    Refused(#[from] QueryRefusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The consent checks of one node. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Consents {
    life: Lifecycle,
    policy: ConsentPolicy,
}

impl Consents {
    /// Checks over `life`'s store and clock, by `policy`.
    pub(crate) fn new(life: Lifecycle, policy: ConsentPolicy) -> Self {
        Self { life, policy }
    }

    /// True when this node verifies tokens.
    pub(crate) fn tokens_required(&self) -> bool {
        self.policy.tokens == ConsentTokens::Required
    }

    /// Checks `a`'s consent. Legacy mode takes what the synchronous checks already took; token
    /// mode verifies any consent given (a relationship purpose may come without one) and spends
    /// its nonce on `a.query_id`.
    pub(crate) async fn check(&self, a: &Asked<'_>) -> Result<(), ConsentError> {
        match self.verify(a)? {
            Some(spend) => self.spend(a, spend).await,
            None => Ok(()),
        }
    }

    /// Verifies `a`'s consent without the store: the change that spends its token's nonce on
    /// `a.query_id` (expecting it unspent, logging [`Action::ConsentVerified`]), for a caller that
    /// makes it in its own write; `None` when there is nothing to spend (legacy mode, or no
    /// consent on a purpose that needs none). A person's own report is counted by [`Self::check`]
    /// alone.
    ///
    /// [`Action::ConsentVerified`]: crate::audit::Action::ConsentVerified
    pub(crate) fn verify(&self, a: &Asked<'_>) -> Result<Option<StateChange>, ConsentError> {
        if !self.tokens_required() {
            return Ok(None);
        }
        if a.consent.is_empty() {
            if a.purpose.needs_consent() {
                return Err(QueryRefusal::ConsentRequired(a.purpose).into());
            }
            return Ok(None);
        }
        let now = self.life.clock.now();
        let verifier = self.policy.verifier.as_ref().ok_or(QueryRefusal::ConsentInvalid("no verifier".into()))?;
        let v = verifier.verify(a.consent, now).map_err(|e| match e {
            TokenError::Expired(why) => QueryRefusal::ConsentExpired(why),
            e => QueryRefusal::ConsentInvalid(e.to_string()),
        })?;
        let c = &v.claims;
        let mismatch = if c.iss != a.inquirer {
            Some("institution")
        } else if c.sub != a.subject {
            Some("subject")
        } else if c.purpose != a.purpose {
            Some("purpose")
        } else {
            None
        };
        if let Some(field) = mismatch {
            return Err(QueryRefusal::ConsentMismatch(field).into());
        }
        let key = nonce_key(c.exp, &c.jti);
        let logged = consent_token::logged_form(a.consent);
        let about =
            About { query_id: a.query_id, subject_id: a.subject, purpose: a.purpose, consent_reference: &logged };
        let detail = format!("signer={} nonce={} exp={}", v.signer, c.jti, c.exp);
        let entry = Entry::consent_verified(now, a.inquirer, &self.life.institution, &about, "verified", detail);
        Ok(Some(StateChange {
            expect: vec![(Space::ConsentNonce, key.clone(), None)],
            put: vec![(Space::ConsentNonce, key, Some(a.query_id.as_bytes().to_vec()))],
            entries: vec![entry],
        }))
    }

    /// Makes `spend` (from [`Self::verify`]) in a write of its own, counting a person's own
    /// report in it; a nonce already spent on `a.query_id` (the same query asked again) is
    /// accepted, on another query refused as replayed.
    pub(crate) async fn spend(&self, a: &Asked<'_>, spend: StateChange) -> Result<(), ConsentError> {
        let now = self.life.clock.now();
        for _ in 0..4 {
            if self.spent_here(a, &spend).await? {
                return Ok(());
            }
            let mut change = spend.clone();
            if a.counts_as_report {
                self.count_report(a, now, &mut change).await?;
            }
            if self.life.store.state_write(change).await? {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable("consent nonce contended, try again".into()).into())
    }

    /// Whether `spend`'s nonce is already spent on `a.query_id`; refused as replayed when it is
    /// spent on another query.
    async fn spent_here(&self, a: &Asked<'_>, spend: &StateChange) -> Result<bool, ConsentError> {
        let Some((space, key, _)) = spend.expect.first() else { return Ok(false) };
        match self.life.store.state_get(*space, key).await? {
            Some(used) if used == a.query_id.as_bytes() => Ok(true),
            Some(_) => {
                info!(inquirer = %a.inquirer, subject = %a.subject, nonce = %key, "consent token replayed for another query");
                Err(QueryRefusal::ConsentReplayed.into())
            }
            None => Ok(false),
        }
    }

    /// Adds the person's report to `change` (expecting the count as read), or refuses when the
    /// allowance of the window is spent.
    async fn count_report(
        &self,
        a: &Asked<'_>,
        now: DateTime<Utc>,
        change: &mut StateChange,
    ) -> Result<(), ConsentError> {
        let key = format!("{}/{}", a.subject, a.inquirer);
        let old = self.life.store.state_get(Space::ReportCount, &key).await?;
        let since = (now - self.policy.report_window).timestamp();
        let mut times: Vec<i64> = match &old {
            Some(b) => serde_json::from_slice(b)
                .map_err(|e| StoreError::Corrupt { key: format!("report count {key}"), why: e.to_string() })?,
            None => Vec::new(),
        };
        times.retain(|t| *t > since);
        if times.len() >= self.policy.reports_per_window as usize {
            return Err(QueryRefusal::ReportLimit {
                limit: self.policy.reports_per_window,
                days: self.policy.report_window.num_days(),
            }
            .into());
        }
        times.push(now.timestamp());
        let bytes =
            serde_json::to_vec(&times).map_err(|e| StoreError::Corrupt { key: key.clone(), why: e.to_string() })?;
        change.expect.push((Space::ReportCount, key.clone(), old));
        change.put.push((Space::ReportCount, key, Some(bytes)));
        Ok(())
    }
}

/// The [`Space::ConsentNonce`] key of a token's nonce: its expiry first, so the purge of expired
/// nonces scans a prefix.
fn nonce_key(exp: i64, jti: &str) -> String {
    format!("{:012}/{}", exp.max(0), jti)
}
