//! The API's wire format: the code generated from `proto/` (kept in this one place) and the
//! conversions between its messages and the domain types. Storage reuses the record message as
//! its on-disk codec, so this floor sits below storage.

pub(crate) mod attestation;
pub(crate) mod convert;

/// Code generated from `proto/bureau/v1` and the Google types it uses.
#[allow(missing_docs, unreachable_pub)]
pub mod pb {
    /// `google.*` types.
    pub mod google {
        /// `google.type`.
        pub mod r#type {
            tonic::include_proto!("google.r#type");
        }
    }
    /// `bureau.*` packages.
    pub mod bureau {
        /// `bureau.v1`, the API.
        pub mod v1 {
            tonic::include_proto!("bureau.v1");
        }
    }
}
