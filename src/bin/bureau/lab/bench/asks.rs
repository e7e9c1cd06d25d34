//! What the growth part's scores ask: an account review, which needs no consent, or a deposit
//! waiver — the anchor's case, a hard inquiry — carrying a consent token minted for that score
//! alone. A token's nonce is spent by its first query, so the tokens are minted before the run,
//! one per score, and their signing costs no node anything.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{anyhow, Result};
use bureau::{pb::bureau::v1 as pb, testkit::local::LocalFederation, Purpose};

use super::score_req;

/// How each score of a run is asked for.
pub(super) enum Asks {
    /// An account review (a soft inquiry, no consent).
    Review,
    /// A deposit waiver, each with its own token from `m00`'s application.
    Waiver { tokens: Vec<(String, String)>, next: AtomicUsize },
}

impl Asks {
    /// `count` deposit waivers cycling over `sample`, their tokens minted now.
    pub(super) fn waivers(fed: &LocalFederation, sample: &[String], count: usize) -> Result<Self> {
        let now = chrono::Utc::now();
        let tokens = (0..count)
            .map(|k| {
                let subject = &sample[k % sample.len()];
                let evidence = format!("waiver application {k}");
                let token = fed.consent_token(
                    "m00",
                    subject,
                    Purpose::DepositWaiver,
                    evidence.as_bytes(),
                    chrono::Duration::minutes(10),
                    now,
                )?;
                Ok((subject.clone(), token))
            })
            .collect::<Result<_>>()?;
        Ok(Self::Waiver { tokens, next: AtomicUsize::new(0) })
    }

    /// The request of call `i` over `sample`; a waiver takes the next unused token.
    pub(super) fn request(&self, i: usize, sample: &[String]) -> Result<pb::GetScoreRequest> {
        match self {
            Self::Review => Ok(score_req(&sample[i % sample.len()])),
            Self::Waiver { tokens, next } => {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let (subject, token) =
                    tokens.get(k).ok_or_else(|| anyhow!("all {} consent tokens minted are spent", tokens.len()))?;
                Ok(pb::GetScoreRequest {
                    subject_id: subject.clone(),
                    purpose: pb::Purpose::DepositWaiver as i32,
                    consent_reference: token.clone(),
                })
            }
        }
    }
}
