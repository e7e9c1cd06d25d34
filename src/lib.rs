//! bureau: a federated credit bureau node.
//!
//! Each licensed institution runs a node; nodes exchange credit records over gRPC with mutual
//! TLS, score subjects locally and log every query for regulators. See `README.md` for a tour.

#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod client;
pub mod config;
pub mod convert;
pub mod demo;
pub mod error;
pub mod federated;
pub mod federation;
pub mod furnish;
pub mod gen;
pub mod identity;
pub mod inquiry;
pub mod local;
pub mod merkle;
pub mod node;
pub mod peer_query;
pub mod pki;
pub mod record;
pub mod regulator;
pub mod scoring;
pub mod server;
pub mod service;
pub mod store;
pub mod subject;
pub mod tls;
pub mod writeset;

/// Code generated from `proto/` (kept in one place).
#[allow(missing_docs)]
pub mod pb {
    pub mod google {
        pub mod r#type {
            tonic::include_proto!("google.r#type");
        }
    }
    pub mod bureau {
        pub mod v1 {
            tonic::include_proto!("bureau.v1");
        }
    }
}
