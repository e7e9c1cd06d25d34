//! The use cases, over the storage trait and the peer client: furnishing, answering a peer,
//! a federated score, disputes and protections with the outbox that carries their notices to
//! peers. No gRPC types; storage only through [`crate::storage::Storage`], its state spaces
//! only through [`state`].

pub(crate) mod answer;
pub(crate) mod disputes;
pub(crate) mod furnish;
pub(crate) mod lifecycle;
pub(crate) mod outbox;
pub(crate) mod protection;
pub(crate) mod report;
pub(crate) mod score;
pub(crate) mod state;
