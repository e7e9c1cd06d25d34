//! Who is calling: the SPIFFE-style URI SAN of a verified certificate, and nothing else.
//!
//! `spiffe://<federation>/institution/<id>` or `spiffe://<federation>/regulator/<id>`. A request
//! field never overrides it, so a furnisher cannot furnish in another's name.

use std::fmt;

use x509_parser::{extensions::GeneralName, prelude::FromDer};

/// What a certificate's holder may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A licensed institution: furnishes, queries and scores.
    Institution,
    /// The licensing regulator: reads audit logs.
    Regulator,
}

impl Role {
    /// The path segment naming the role in a SPIFFE id.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Institution => "institution",
            Self::Regulator => "regulator",
        }
    }
}

/// A federation member, as proven by its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The federation's name (the SPIFFE trust domain).
    pub federation: String,
    /// The holder's role.
    pub role: Role,
    /// The institution or regulator id.
    pub id: String,
}

/// Why a certificate names no usable identity.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// The certificate could not be parsed.
    #[error("certificate is not valid DER X.509")]
    BadCertificate,
    /// No `spiffe://` URI SAN.
    #[error("certificate has no spiffe:// URI SAN")]
    NoSpiffeId,
    /// More than one `spiffe://` URI SAN: ambiguous, refused.
    #[error("certificate has more than one spiffe:// URI SAN")]
    ManySpiffeIds,
    /// A SPIFFE id that is not `spiffe://<federation>/<role>/<id>`.
    #[error("malformed spiffe id {0:?}")]
    Malformed(String),
}

/// True when `id` can name an institution or regulator: 1–63 of `[a-z0-9-]`, not starting
/// with `-`. Kept narrow so ids are safe in storage keys, file names and log lines.
pub fn is_valid_member_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && !id.starts_with('-')
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Identity {
    /// An institution of `federation`.
    pub fn institution(federation: &str, id: &str) -> Self {
        Self { federation: federation.to_owned(), role: Role::Institution, id: id.to_owned() }
    }

    /// A regulator of `federation`.
    pub fn regulator(federation: &str, id: &str) -> Self {
        Self { federation: federation.to_owned(), role: Role::Regulator, id: id.to_owned() }
    }

    /// The SPIFFE URI for this identity.
    pub fn spiffe_uri(&self) -> String {
        format!("spiffe://{}/{}/{}", self.federation, self.role.as_str(), self.id)
    }

    /// Parses `spiffe://<federation>/<role>/<id>`.
    pub fn parse_spiffe(uri: &str) -> Result<Self, IdentityError> {
        let malformed = || IdentityError::Malformed(uri.chars().take(200).collect());
        let rest = uri.strip_prefix("spiffe://").ok_or_else(malformed)?;
        let mut parts = rest.split('/');
        let (Some(federation), Some(role), Some(id), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let role = match role {
            "institution" => Role::Institution,
            "regulator" => Role::Regulator,
            _ => return Err(malformed()),
        };
        if federation.is_empty() || !is_valid_member_id(id) {
            return Err(malformed());
        }
        Ok(Self { federation: federation.to_owned(), role, id: id.to_owned() })
    }

    /// Reads the identity from a DER certificate (already verified by the TLS layer).
    pub fn from_cert_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) =
            x509_parser::certificate::X509Certificate::from_der(der).map_err(|_| IdentityError::BadCertificate)?;
        let san = cert.subject_alternative_name().map_err(|_| IdentityError::BadCertificate)?;
        let mut found = None;
        for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
            if let GeneralName::URI(uri) = name {
                if uri.starts_with("spiffe://") {
                    if found.is_some() {
                        return Err(IdentityError::ManySpiffeIds);
                    }
                    found = Some(Self::parse_spiffe(uri)?);
                }
            }
        }
        found.ok_or(IdentityError::NoSpiffeId)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.role.as_str(), self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_roles_and_rejects_the_rest() {
        let i = Identity::parse_spiffe("spiffe://fed.example/institution/pay-app").unwrap();
        assert_eq!(i, Identity::institution("fed.example", "pay-app"));
        assert_eq!(i.spiffe_uri(), "spiffe://fed.example/institution/pay-app");
        assert_eq!(Identity::parse_spiffe("spiffe://fed/regulator/pbc").unwrap().role, Role::Regulator);
        for bad in [
            "https://fed/institution/a",
            "spiffe://fed/admin/a",
            "spiffe://fed/institution/A",
            "spiffe://fed/institution/a/b",
            "spiffe:///institution/a",
            "spiffe://fed/institution/",
        ] {
            assert!(Identity::parse_spiffe(bad).is_err(), "{bad}");
        }
    }
}
