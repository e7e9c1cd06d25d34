//! The use cases, over the storage trait and the peer client: furnishing, answering a peer,
//! a federated score. No gRPC server types; storage only through [`crate::storage::Storage`].

pub(crate) mod answer;
pub(crate) mod disputes;
pub(crate) mod furnish;
pub(crate) mod lifecycle;
pub(crate) mod protection;
pub(crate) mod report;
pub(crate) mod score;
