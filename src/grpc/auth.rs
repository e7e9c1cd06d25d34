//! Authorisation: who the caller is (from the verified client certificate only) and what its
//! role lets it do on this node.

use tonic::Request;

use crate::{
    grpc::error::{ApiError, Reason},
    net::identity::{Identity, Role},
    net::peers::{Peers, Standing},
};

/// The caller's identity, read from the client certificate the TLS layer verified.
pub(crate) fn caller<T>(req: &Request<T>, federation: &str) -> Result<Identity, ApiError> {
    let certs = req.peer_certs().ok_or_else(|| ApiError::PermissionDenied {
        reason: Reason::NoClientCertificate,
        message: "a client certificate is required".into(),
    })?;
    let leaf = certs.first().ok_or_else(|| ApiError::PermissionDenied {
        reason: Reason::NoClientCertificate,
        message: "a client certificate is required".into(),
    })?;
    let id = Identity::from_cert_der(leaf).map_err(|e| ApiError::PermissionDenied {
        reason: Reason::BadIdentity,
        message: format!("client certificate identity: {e}"),
    })?;
    if id.federation != federation {
        return Err(ApiError::PermissionDenied {
            reason: Reason::WrongFederation,
            message: format!("caller belongs to federation {:?}, this node to {federation:?}", id.federation),
        });
    }
    Ok(id)
}

/// Only this node's own institution's applications may furnish and read its records, score,
/// or read its subjects' inquiries: never another institution, a peer node (not even this
/// institution's own node identity) or a regulator.
pub(crate) fn require_own_application(id: &Identity, institution: &str) -> Result<(), ApiError> {
    match id.role {
        Role::Application if id.id == institution => Ok(()),
        Role::Application => Err(ApiError::PermissionDenied {
            reason: Reason::NotOwnInstitution,
            message: format!("only {institution}'s own applications may use this service; caller is {id}"),
        }),
        Role::Node | Role::Regulator => Err(ApiError::PermissionDenied {
            reason: Reason::WrongRole,
            message: format!("only {institution}'s applications may use this service; caller is {id}"),
        }),
    }
}

/// [`require_own_application`], and not one the configuration allows only attestations: what
/// every call that returns a score or a person's file needs.
pub(crate) fn require_scoring_application(id: &Identity, node: &super::node::Node) -> Result<(), ApiError> {
    require_own_application(id, &node.institution)?;
    if node.admin.is_attest_only(&id.app) {
        return Err(ApiError::PermissionDenied {
            reason: Reason::AttestOnly,
            message: format!("{id} may only ask for threshold attestations (admin.attest_only): never a score"),
        });
    }
    Ok(())
}

/// Only an institution's node may query a peer (so the asking node logs every query too).
pub(crate) fn require_node(id: &Identity) -> Result<(), ApiError> {
    match id.role {
        Role::Node => Ok(()),
        Role::Application | Role::Regulator => Err(ApiError::PermissionDenied {
            reason: Reason::WrongRole,
            message: format!("only institutions' nodes may query peers; caller is {id}"),
        }),
    }
}

/// Only a member node the federation's directory lists as active (any licensed node when the
/// node follows no directory): a suspended or unlisted member is refused like a revoked one.
pub(crate) fn require_member(id: &Identity, peers: &Peers) -> Result<(), ApiError> {
    require_node(id)?;
    match peers.standing(&id.id) {
        Standing::Licensed | Standing::Member => Ok(()),
        Standing::Suspended => Err(ApiError::PermissionDenied {
            reason: Reason::MemberSuspended,
            message: format!("{id} is suspended in the federation's directory"),
        }),
        Standing::NotListed | Standing::Locator => Err(ApiError::PermissionDenied {
            reason: Reason::NotAMember,
            message: format!("{id} is not a member in the federation's directory"),
        }),
    }
}

/// Only a regulator.
pub(crate) fn require_regulator(id: &Identity) -> Result<(), ApiError> {
    match id.role {
        Role::Regulator => Ok(()),
        Role::Node | Role::Application => Err(ApiError::PermissionDenied {
            reason: Reason::WrongRole,
            message: format!("only a regulator may read the audit log; caller is {id}"),
        }),
    }
}
