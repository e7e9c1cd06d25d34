//! The regulator's view of consent: which consent tokens the nodes verified, listed by the
//! evidence hash each carried (so the regulator can demand that evidence from the asking
//! institution and check it with `bureau consent check-evidence`), and the relationship
//! purposes asked without a relationship.

use crate::{
    audit::Action,
    net::consent_token::LOGGED_PREFIX,
    regulator::{institution_of, VerifiedLog},
};

/// One consent token as a node verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentUse {
    /// The evidence hash, `sha256:<hex>`.
    pub evidence: String,
    /// The node that verified it.
    pub node: String,
    /// The asking institution.
    pub asker: String,
    /// The query it was spent on.
    pub query_id: String,
    /// The person.
    pub subject_id: String,
    /// The purpose consented to.
    pub purpose: String,
    /// When, RFC 3339.
    pub time: String,
    /// The signing application, the nonce and the expiry.
    pub detail: String,
}

/// Every consent the logs hold as verified, ordered by evidence hash, then node and time; only
/// those with evidence hash `hash` (`sha256:<hex>` or `<hex>`) when given.
pub fn consents_by_hash(logs: &[VerifiedLog], hash: Option<&str>) -> Vec<ConsentUse> {
    let wanted = hash.map(|h| format!("{LOGGED_PREFIX}{}", h.trim().trim_start_matches(LOGGED_PREFIX)));
    let mut out: Vec<ConsentUse> = logs
        .iter()
        .flat_map(|log| {
            let node = institution_of(&log.origin).to_owned();
            log.consents.iter().filter(|e| e.action == Action::ConsentVerified && e.outcome == "verified").map(
                move |e| ConsentUse {
                    evidence: e.consent_reference.clone(),
                    node: node.clone(),
                    asker: e.actor.clone(),
                    query_id: e.query_id.clone(),
                    subject_id: e.subject_id.clone(),
                    purpose: e.purpose.map(|p| p.as_str().to_owned()).unwrap_or_default(),
                    time: e.time.to_rfc3339(),
                    detail: e.detail.clone(),
                },
            )
        })
        .filter(|c| wanted.as_ref().is_none_or(|w| &c.evidence == w))
        .collect();
    out.sort_by(|a, b| (&a.evidence, &a.node, &a.time).cmp(&(&b.evidence, &b.node, &b.time)));
    out
}

/// Account reviews and collections asked on a relationship (no consent) while the asking
/// institution's own node answered its own part with no record about the person: the asker
/// had furnished nothing about them before asking. Read from the asker's own log (its
/// inbound entry for its own part of the query).
pub fn relationship_flags(logs: &[VerifiedLog]) -> Vec<String> {
    let mut out = Vec::new();
    for log in logs {
        let me = institution_of(&log.origin);
        for e in &log.queries {
            let own_part = e.action == Action::QueryInbound && e.actor == me && e.counterparty == me;
            if own_part && e.consent == crate::app::answer::RELATIONSHIP && e.record_count == 0 {
                out.push(format!(
                    "{me} asked {} query {} on a relationship, but had furnished nothing about the person before asking",
                    e.purpose.map(|p| p.as_str()).unwrap_or("an unnamed purpose"),
                    e.query_id
                ));
            }
        }
    }
    out
}
