//! Reconciling the record locator's registrations: every batch a locator logged as registered
//! from a member must be logged as delivered in that member's own log (with the same SHA-256),
//! and every batch a member logged as delivered must be registered at a locator whose log is
//! read. A registration no member delivered is someone writing into the locator with that
//! member's key; a delivery no locator registered is a member's log saying more than happened.

use std::collections::{HashMap, HashSet};

use super::{institution_of, VerifiedLog};
use crate::audit::Action;

/// The batches' digests an entry names (`sha256=a,b,…` in its detail).
fn digests(detail: &str) -> impl Iterator<Item = &str> {
    detail
        .split_whitespace()
        .filter_map(|part| part.strip_prefix("sha256="))
        .flat_map(|list| list.split(','))
        .filter(|d| !d.is_empty())
}

/// What does not match between members' deliveries and locators' registrations, among the
/// institutions whose logs were read (`ids`).
pub(super) fn reconcile(logs: &[VerifiedLog], ids: &HashSet<&str>) -> Vec<String> {
    // (member, digest) → the shards it named, as delivered; → the locator, as registered.
    let mut delivered: HashMap<(String, String), String> = HashMap::new();
    let mut registered: HashMap<(String, String), String> = HashMap::new();
    for log in logs {
        let me = institution_of(&log.origin);
        for e in &log.holdings {
            match e.action {
                Action::HoldingsDelivered if e.actor == me => {
                    for d in digests(&e.detail) {
                        delivered.insert((me.to_owned(), d.to_owned()), e.counterparty.clone());
                    }
                }
                Action::HoldingsRegistered if e.counterparty == me => {
                    for d in digests(&e.detail) {
                        registered.insert((e.actor.clone(), d.to_owned()), me.to_owned());
                    }
                }
                _ => {}
            }
        }
    }
    let mut problems = Vec::new();
    for ((member, digest), locator) in &registered {
        if ids.contains(member.as_str()) && !delivered.contains_key(&(member.clone(), digest.clone())) {
            problems.push(format!(
                "{locator} registered holdings batch sha256={digest} from {member}, but {member} has no entry delivering it"
            ));
        }
    }
    for ((member, digest), shards) in &delivered {
        let read = shards.split(',').filter(|s| !s.is_empty()).all(|s| ids.contains(s));
        if read && !registered.contains_key(&(member.clone(), digest.clone())) {
            problems.push(format!(
                "{member} logged delivering holdings batch sha256={digest} to {shards}, but no locator registered it"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_read_from_the_detail() {
        let found: Vec<&str> = digests("sha256=ab,cd").collect();
        assert_eq!(found, ["ab", "cd"]);
        assert_eq!(digests("stale=0 sha256=ef").collect::<Vec<_>>(), ["ef"]);
        assert_eq!(digests("").count(), 0);
    }
}
