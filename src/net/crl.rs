//! The authority's revocation list as a node accepts it — fail closed: a CRL file is taken only
//! if it holds at least one CRL, every CRL in it parses, is issued and signed by the federation
//! authority, and (on a reload) is not older than the list in force. Anything else is refused
//! by name: at start the node does not start, on a reload the last good list stays in force
//! (with a WARN and `bureau_crl_rejected_total{reason}`).
//!
//! A list past its `nextUpdate` is still enforced (it revokes everything it names) and reported:
//! `bureau_crl_next_update_timestamp_seconds`, `bureau_crl_expired` (1 once `nextUpdate` plus
//! the configured grace has passed) and an ERROR at each check. Refusing every handshake instead
//! would turn one late publication by the authority into an outage of every member at once; the
//! README's security section argues the choice, and `bureau pki crl refresh` re-signs in time.

use std::path::Path;

use rustls::pki_types::{pem::PemObject, CertificateDer, CertificateRevocationListDer};

/// Why a CRL file was refused: the `reason` label of `bureau_crl_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlRejection {
    /// The file cannot be read.
    Unreadable,
    /// The file holds no PEM `X509 CRL` block (empty, text, random bytes).
    NoCrl,
    /// A CRL block that does not parse as a CRL.
    Unparsable,
    /// Not issued or not signed by the federation authority.
    BadSignature,
    /// Older than the list in force (a lower CRL number, or an earlier `thisUpdate`).
    Older,
}

impl CrlRejection {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreadable => "unreadable",
            Self::NoCrl => "no_crl",
            Self::Unparsable => "unparsable",
            Self::BadSignature => "bad_signature",
            Self::Older => "older",
        }
    }
}

/// Where a list stands in the authority's sequence, and when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CrlStanding {
    /// The highest CRL number in the file (0 when none carries one).
    pub number: u64,
    /// The latest `thisUpdate`, seconds since the epoch.
    pub this_update: i64,
    /// The earliest `nextUpdate`, seconds since the epoch, if any CRL names one.
    pub next_update: Option<i64>,
}

impl CrlStanding {
    /// True when `self` comes before `current` in the authority's sequence: installing it would
    /// take back revocations (a rollback).
    pub(crate) fn is_older_than(&self, current: &CrlStanding) -> bool {
        (self.number, self.this_update) < (current.number, current.this_update)
    }
}

/// A CRL file that passed every check.
#[derive(Debug, Clone)]
pub(crate) struct CheckedCrl {
    /// The CRLs, DER.
    pub ders: Vec<CertificateRevocationListDer<'static>>,
    /// Its place in the sequence and its expiry.
    pub standing: CrlStanding,
}

/// A CRL file refused: why, and the metric's reason (the caller names the file).
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    /// The `reason` label of `bureau_crl_rejected_total`.
    pub reason: CrlRejection,
    /// What is wrong.
    pub why: String,
}

/// Reads `path` and checks every CRL in it against the authority's certificates `ca`.
pub(crate) fn read_checked(path: &Path, ca: &[CertificateDer<'_>]) -> Result<CheckedCrl, Refused> {
    let refuse = |reason: CrlRejection, why: String| Refused { reason, why };
    let bytes = std::fs::read(path).map_err(|e| refuse(CrlRejection::Unreadable, e.to_string()))?;
    let ders: Vec<CertificateRevocationListDer<'static>> = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| refuse(CrlRejection::NoCrl, format!("not a PEM file of CRLs: {e}")))?;
    if ders.is_empty() {
        return Err(refuse(CrlRejection::NoCrl, "holds no X509 CRL block".into()));
    }
    let authorities: Vec<x509_parser::certificate::X509Certificate<'_>> =
        ca.iter().filter_map(|c| x509_parser::parse_x509_certificate(c).ok().map(|(_, c)| c)).collect();
    let mut standing = CrlStanding::default();
    for (i, der) in ders.iter().enumerate() {
        let (_, crl) = x509_parser::parse_x509_crl(der)
            .map_err(|e| refuse(CrlRejection::Unparsable, format!("CRL #{i} does not parse: {e}")))?;
        webpki::OwnedCertRevocationList::from_der(der)
            .map_err(|e| refuse(CrlRejection::Unparsable, format!("CRL #{i} is not a usable CRL: {e}")))?;
        let signed =
            authorities.iter().any(|a| a.subject() == crl.issuer() && crl.verify_signature(a.public_key()).is_ok());
        if !signed {
            return Err(refuse(
                CrlRejection::BadSignature,
                format!("CRL #{i} (issuer {}) is not signed by the federation authority", crl.issuer()),
            ));
        }
        let number = crl.crl_number().and_then(|n| n.to_u64_digits().first().copied()).unwrap_or(0);
        standing.number = standing.number.max(number);
        standing.this_update = standing.this_update.max(crl.last_update().timestamp());
        if let Some(next) = crl.next_update() {
            let next = next.timestamp();
            standing.next_update = Some(standing.next_update.map_or(next, |n| n.min(next)));
        }
    }
    Ok(CheckedCrl { ders, standing })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lower_number_or_an_earlier_issue_is_older() {
        let current = CrlStanding { number: 5, this_update: 1_000, next_update: None };
        assert!(CrlStanding { number: 4, this_update: 2_000, next_update: None }.is_older_than(&current));
        assert!(CrlStanding { number: 5, this_update: 999, next_update: None }.is_older_than(&current));
        assert!(!current.is_older_than(&current), "the same list again is not a rollback");
        assert!(!CrlStanding { number: 6, this_update: 1_000, next_update: None }.is_older_than(&current));
    }
}
