//! Who is calling: the SPIFFE-style URI SAN of a verified certificate, and nothing else.
//!
//! - `spiffe://<federation>/institution/<id>/node`: an institution's node. Only nodes call
//!   peers' `FederationService`, so every peer query is logged by the asking node too.
//! - `spiffe://<federation>/institution/<id>/app/<name>`: one of that institution's
//!   applications. Only these use their own node's records, scoring and subjects services;
//!   the node's private key never has to leave the node.
//! - `spiffe://<federation>/regulator/<id>`: a regulator, which reads audit logs.
//!
//! A request field never overrides it, so a furnisher cannot furnish in another's name.

use std::fmt;

use x509_parser::{extensions::GeneralName, prelude::FromDer};

/// What a certificate's holder may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// An institution's node: answers and asks its peers.
    Node,
    /// One of an institution's applications: furnishes, reads and scores at its own node.
    Application,
    /// The licensing regulator: reads audit logs.
    Regulator,
}

impl Role {
    /// The role's name, as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Application => "application",
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
    /// The application's name (applications only; empty otherwise).
    pub app: String,
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
    /// A SPIFFE id of none of the three shapes.
    #[error("malformed spiffe id {0:?}")]
    Malformed(String),
}

/// True when `id` can name an institution or regulator: 1–63 of `[a-z0-9-]`, not starting
/// with `-`. Kept narrow so ids are safe in storage keys, file names and log lines.
pub(crate) fn is_valid_member_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && !id.starts_with('-')
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Identity {
    /// The node of institution `id` of `federation`.
    pub fn node(federation: &str, id: &str) -> Self {
        Self { federation: federation.to_owned(), role: Role::Node, id: id.to_owned(), app: String::new() }
    }

    /// Application `app` of institution `id` of `federation`.
    pub fn application(federation: &str, id: &str, app: &str) -> Self {
        Self { federation: federation.to_owned(), role: Role::Application, id: id.to_owned(), app: app.to_owned() }
    }

    /// A regulator of `federation`.
    pub fn regulator(federation: &str, id: &str) -> Self {
        Self { federation: federation.to_owned(), role: Role::Regulator, id: id.to_owned(), app: String::new() }
    }

    /// The SPIFFE URI for this identity.
    pub fn spiffe_uri(&self) -> String {
        format!("spiffe://{}/{self}", self.federation)
    }

    /// Parses one of the three SPIFFE id shapes (see the module header).
    pub fn parse_spiffe(uri: &str) -> Result<Self, IdentityError> {
        let malformed = || IdentityError::Malformed(uri.chars().take(200).collect());
        let rest = uri.strip_prefix("spiffe://").ok_or_else(malformed)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let identity = match parts.as_slice() {
            [federation, "institution", id, "node"] => Self::node(federation, id),
            [federation, "institution", id, "app", app] if is_valid_member_id(app) => {
                Self::application(federation, id, app)
            }
            [federation, "regulator", id] => Self::regulator(federation, id),
            _ => return Err(malformed()),
        };
        if identity.federation.is_empty() || !is_valid_member_id(&identity.id) {
            return Err(malformed());
        }
        Ok(identity)
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
    /// The SPIFFE path: `institution/bank/node`, `institution/bank/app/mobile`, `regulator/pbc`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.role {
            Role::Node => write!(f, "institution/{}/node", self.id),
            Role::Application => write!(f, "institution/{}/app/{}", self.id, self.app),
            Role::Regulator => write!(f, "regulator/{}", self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_shapes_and_rejects_the_rest() {
        let n = Identity::parse_spiffe("spiffe://fed.example/institution/pay-app/node").unwrap();
        assert_eq!(n, Identity::node("fed.example", "pay-app"));
        assert_eq!(n.spiffe_uri(), "spiffe://fed.example/institution/pay-app/node");
        let a = Identity::parse_spiffe("spiffe://fed/institution/bank/app/mobile").unwrap();
        assert_eq!((a.role, a.id.as_str(), a.app.as_str()), (Role::Application, "bank", "mobile"));
        assert_eq!(a.spiffe_uri(), "spiffe://fed/institution/bank/app/mobile");
        assert_eq!(Identity::parse_spiffe("spiffe://fed/regulator/pbc").unwrap().role, Role::Regulator);
        for bad in [
            "https://fed/institution/a/node",
            "spiffe://fed/institution/a",
            "spiffe://fed/admin/a",
            "spiffe://fed/institution/A/node",
            "spiffe://fed/institution/a/app",
            "spiffe://fed/institution/a/app/",
            "spiffe://fed/institution/a/app/Mobile",
            "spiffe://fed/institution/a/node/x",
            "spiffe://fed/regulator/pbc/node",
            "spiffe:///institution/a/node",
            "spiffe://fed/institution//node",
        ] {
            assert!(Identity::parse_spiffe(bad).is_err(), "{bad}");
        }
    }
}
