//! bureau: a federated credit bureau node.
//!
//! Each licensed institution runs a node; nodes exchange credit records over gRPC with mutual
//! TLS, score subjects locally and log every query for regulators. See `README.md` for a tour.
//!
//! The modules are floors, each importing only from the floors below it (the imports are the
//! proof; `farm-studio look` draws them):
//! 1. `domain` (records, subjects, purposes, disputes, the clock) and `telemetry`: nothing of ours;
//! 2. `scoring` and `audit` (log entries, Merkle tree, checkpoints): `domain`;
//! 3. `wire`, the protobuf types and their conversions: `domain`, `audit`;
//! 4. `storage` (the store trait and its backends) and `net` (TLS, identities, PKI, the peer
//!    client): beside each other, neither imports the other;
//! 5. `app`, the use cases (`storage`, `net`'s peer client, `scoring`), and beside it `config`
//!    (`net`'s peer entries, `domain`);
//! 6. `grpc`, the handlers over `app` (with `config` and `net`'s identities);
//! 7. `server`, the wiring: all of the above.
//!
//! Beside them, client-side: `regulator` (`wire`, `audit`), `report` (`wire`, `scoring`) and
//! `backup` (`wire`, `audit`, and `storage` to restore).
//!
//! What is public is chosen, not whole modules: what a partner's Rust code needs to start and
//! configure a node, call one, derive subject ids, check a node's log as a regulator, and speak
//! the protobuf API. Use cases, handlers, storage backends and wiring stay private. The command
//! line is the binary's own; the local federation, generator and storage conformance suite are
//! in [`testkit`] (feature `testkit`, never in the default build; `lab` turns it on for the
//! binary's demo and benchmarks).

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod app;
mod audit;
mod backup;
pub mod config;
mod domain;
mod grpc;
mod http;
mod net;
mod notice;
pub mod regulator;
mod report;
mod scoring;
mod server;
// Its types are re-exported by `testkit::store`; without that feature they are crate-internal
// (and a few methods only the conformance suite calls are unused).
#[cfg_attr(not(feature = "testkit"), allow(unreachable_pub, dead_code))]
mod storage;
mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
mod wire;

// Starting a node, and its configuration (the whole file format is `config`).
pub use config::{read_hex_key, NodeConfig};
pub use domain::clock::Clock;
pub use server::{bind_loopback, start, start_on, RunningNode, ServeError};
/// The health entries beside the services': the store's two paths (reads stay SERVING while
/// writes cannot be taken) and the record locator as this node sees it.
pub mod health {
    pub use crate::server::{LOCATOR, READS, WRITES};
}

// Calling a node: the client side of mutual TLS, the federation's roles and its authority.
pub use net::client::{ClientConfig, ClientError};
pub use net::crl::CrlRejection;
pub use net::identity::{Identity, IdentityError, Role};
pub use net::tlog_client::{TlogAnswer, TlogClient, TlogClientError};
pub use net::tls::{TlsError, TlsFiles, TlsMaterial};
pub use net::{consent_token, directory, pki};

// Subjects and their records.
pub use domain::inquiry::{Inquiry, Purpose};
pub use domain::record::{merge_records, today, AccountStatus, CreditRecord, PaymentStatus, RecordKind, Violation};
pub use domain::subject::{derive_subject_id, is_valid_subject_id};

// The protobuf API.
pub use wire::pb;

/// Conversions between records and their protobuf form, and the API's resource names.
pub mod convert {
    pub use crate::wire::attestation::bundle_from_pb;
    pub use crate::wire::convert::{
        from_timestamp, parse_record_name, parse_subject_name, purpose_from_pb, purpose_to_pb, record_from_pb,
        record_from_stored, record_name, record_to_pb, record_to_stored, timestamp,
    };
}

// What a regulator reads: log entries and the Merkle proofs over them (checks in `regulator`).
pub use audit::{attestation, merkle, Action, Entry};

// Scores: the scorecard model a node runs.
pub use scoring::{Band, Model, ModelError};

// An operator's tools: backups of the embedded store, and a person's report as a web page.
pub use backup::{backup_to_file, read_identities, read_recipients, restore_from_file, BackupError, BackupSummary};
pub use notice::{render as render_notice, write as write_notice};
pub use report::{render as render_report, write as write_report};
