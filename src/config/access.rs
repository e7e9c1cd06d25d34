//! The configuration sections about who may do what: consent tokens and the person's free
//! reports, the metrics listener's allow-list, the administrator applications.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
};

use serde::{Deserialize, Serialize};

/// `[consent]`: what a query's consent must be, and the person's free reports a year.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentSection {
    /// `required` (the default): a purpose that needs consent needs a consent token signed by
    /// the asking institution's application, and any consent given is verified. `legacy`: any
    /// non-empty reference string is taken on the caller's word (old test federations only;
    /// the node warns at start).
    pub tokens: ConsentTokens,
    /// The person's own reports one institution may ask for them in `report_window_days`.
    pub reports_per_window: u32,
    /// The window of the report allowance, in days (PBC: two free reports a year).
    pub report_window_days: u32,
}

/// See [`ConsentSection::tokens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentTokens {
    /// Signed consent tokens, verified at every answering node.
    #[default]
    Required,
    /// Reference strings, unverified.
    Legacy,
}

impl Default for ConsentSection {
    fn default() -> Self {
        Self { tokens: ConsentTokens::Required, reports_per_window: 2, report_window_days: 365 }
    }
}

impl ConsentSection {
    /// Reference strings on the caller's word: for test federations written before tokens.
    pub fn legacy() -> Self {
        Self { tokens: ConsentTokens::Legacy, ..Self::default() }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Where to serve `GET /metrics` (Prometheus text format, plain HTTP); off when unset. An
    /// address other than loopback needs `allow`.
    pub listen: Option<SocketAddr>,
    /// Source addresses or networks (`10.0.0.0/8`, `::1`) whose scrapes are answered; any other
    /// connection is closed unanswered. Loopback is always allowed.
    #[serde(default)]
    pub allow: Vec<IpNet>,
}

/// An address or network, `10.1.2.3` or `10.0.0.0/8` (IPv4 or IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpNet {
    /// The network's address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
}

impl IpNet {
    /// True when `ip` is inside this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (a >> shift) == (b >> shift)
    }
}

impl TryFrom<String> for IpNet {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an address or network (10.0.0.0/8, 192.0.2.7, fd00::/8)");
        let (addr, prefix) = s.split_once('/').map_or((s.as_str(), None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Self { addr, prefix })
    }
}

impl From<IpNet> for String {
    fn from(n: IpNet) -> String {
        format!("{}/{}", n.addr, n.prefix)
    }
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// The institution's applications (their certificate's `app/<name>`) that may take a
    /// backup; any other application is refused with `NOT_ADMINISTRATOR`.
    #[serde(default = "AdminSection::default_applications")]
    pub applications: Vec<String>,
    /// An age recipients file (`age1…`, one a line) `bureau backup --config` encrypts to.
    #[serde(default)]
    pub backup_recipients: Option<PathBuf>,
    /// Applications (by `app/<name>`) that may only ask for threshold attestations: a rental
    /// kiosk or an operator's app that must never see a score. GetScore, Decide, WhatIf and the
    /// SubjectsService refuse them with `ATTEST_ONLY`.
    #[serde(default)]
    pub attest_only: Vec<String>,
}

impl AdminSection {
    fn default_applications() -> Vec<String> {
        vec![crate::net::pki::DEFAULT_APP.to_owned()]
    }
}

impl Default for AdminSection {
    fn default() -> Self {
        Self { applications: Self::default_applications(), backup_recipients: None, attest_only: Vec::new() }
    }
}
