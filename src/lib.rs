//! bureau: a federated credit bureau node.
//!
//! Each licensed institution runs a node; nodes exchange credit records over gRPC with mutual
//! TLS, score subjects locally and log every query for regulators. See `README.md` for a tour.
//!
//! The modules are floors, each importing only from those listed before it:
//! `domain` → `scoring` → `audit` → `wire` → `storage` → `app` → `net` → `config` → `grpc` →
//! `server`, with `regulator` (a client-side library) beside `server`. What is public is what a
//! partner's Rust code needs: the API's protobuf types and their conversions, subject-id
//! derivation, records and purposes, client and TLS configuration, the regulator's verifier,
//! and starting a node. Use cases, gRPC handlers and storage backends are private. The command
//! line, demo and benchmarks are the binary's own modules; the local federation, generator and
//! storage conformance suite live in [`testkit`] (feature `testkit`, on by default through `cli`;
//! build with `default-features = false` for the library alone).

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod app;
pub mod audit;
pub mod backup;
pub mod config;
pub mod domain;
mod grpc;
pub mod net;
pub mod regulator;
pub mod report;
pub mod scoring;
pub mod server;
pub mod telemetry;
// Its types are re-exported by `testkit::store`; without that feature they are crate-internal
// (and a few methods only the conformance suite calls are unused).
#[cfg_attr(not(feature = "testkit"), allow(unreachable_pub, dead_code))]
mod storage;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod wire;

pub use wire::pb;
