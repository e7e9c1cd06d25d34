//! One member's (or locator's) node set as the peer client holds it: a lazy mTLS channel per
//! address, and the latency estimators behind hedged requests over its replicas.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::time::Instant;
use tonic::{transport::Channel, Code};
use tracing::debug;

use crate::{
    net::tls::{self, Revocation, TlsError, TlsMaterial},
    wire::pb::bureau::v1::{
        federation_service_client::FederationServiceClient, locator_service_client::LocatorServiceClient,
    },
};

/// One member (or locator) node set: a lazy channel per address, and its recent latency.
pub(super) struct Peer {
    pub(super) id: String,
    pub(super) addresses: Vec<String>,
    /// One channel per address of the peer.
    channels: Vec<Channel>,
    max_message: usize,
    /// Where the next call starts (round robin over the addresses).
    next: AtomicUsize,
    /// Smoothed latency of its answers and its mean deviation, microseconds (RFC 6298's
    /// estimators): a hedge goes out after `srtt + 4 × rttvar`.
    srtt_us: AtomicU64,
    rttvar_us: AtomicU64,
}

/// First hedge delay, before a peer has answered at all.
const HEDGE_UNKNOWN: Duration = Duration::from_millis(50);
/// Bounds of the hedge delay.
const HEDGE_MIN: Duration = Duration::from_millis(2);
const HEDGE_MAX: Duration = Duration::from_millis(500);

/// What makes a [`Peer`]: the TLS material, the federation, the message limit and the CRL.
pub(super) struct Connector {
    pub(super) material: TlsMaterial,
    pub(super) federation: String,
    pub(super) max_message: usize,
    pub(super) revocation: Arc<Revocation>,
}

impl Connector {
    /// A peer `id` at `addresses`; its certificate must name `id`. Nothing connects yet.
    pub(super) fn peer(&self, id: &str, addresses: &[String]) -> Result<Peer, TlsError> {
        let cfg = self.material.client_config_with(&self.federation, Some(id), self.revocation.clone())?;
        let mut channels = Vec::new();
        for address in addresses {
            let channel =
                tls::channel_tracked(address, cfg.clone(), Duration::from_secs(2), Some(self.revocation.clone()))
                    .map_err(|e| {
                        TlsError::Rustls(rustls::Error::General(format!("peer {id} address {address}: {e}")))
                    })?;
            channels.push(channel);
        }
        Ok(Peer {
            id: id.to_owned(),
            addresses: addresses.to_vec(),
            channels,
            max_message: self.max_message,
            next: AtomicUsize::new(0),
            srtt_us: AtomicU64::new(0),
            rttvar_us: AtomicU64::new(0),
        })
    }
}

impl Peer {
    /// A FederationService client over `channel`.
    pub(super) fn federation(&self, channel: Channel) -> FederationServiceClient<Channel> {
        FederationServiceClient::new(channel).max_decoding_message_size(self.max_message)
    }

    /// A LocatorService client over `channel`.
    pub(super) fn locator(&self, channel: Channel) -> LocatorServiceClient<Channel> {
        LocatorServiceClient::new(channel).max_decoding_message_size(self.max_message)
    }

    /// Calls the peer at one of its addresses, starting at the next in turn; an address that
    /// cannot be reached (UNAVAILABLE) passes the call to the next. The caller bounds the time.
    pub(super) async fn each_address<T, F, Fut>(&self, mut call: F) -> Result<T, tonic::Status>
    where
        F: FnMut(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let n = self.channels.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let mut k = 0;
        loop {
            let result = call(self.channels[(first + k) % n].clone()).await;
            k += 1;
            match result {
                Err(s) if s.code() == Code::Unavailable && k < n => {
                    debug!(peer = %self.id, error = %s.message(), "peer address unreachable; trying the next");
                }
                result => return result,
            }
        }
    }

    /// Calls the peer at one address and, when it has several and no answer came within the
    /// hedge delay, at a second one too; the first answer wins and the other call is dropped.
    /// One address: as [`Peer::each_address`].
    pub(super) async fn hedged<T, F, Fut>(&self, call: F) -> Result<T, tonic::Status>
    where
        F: Fn(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let n = self.channels.len();
        if n < 2 {
            return self.each_address(call).await;
        }
        let first = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let second = || call(self.channels[(first + 1) % n].clone());
        let started = Instant::now();
        let primary = call(self.channels[first].clone());
        tokio::pin!(primary);
        tokio::select! {
            r = &mut primary => {
                return match r {
                    Err(s) if s.code() == Code::Unavailable => second().await,
                    r => r.inspect(|_| self.observe(started.elapsed())),
                };
            }
            () = tokio::time::sleep(self.hedge_delay()) => {}
        }
        metrics::counter!("bureau_peer_hedged_total", "peer" => self.id.clone()).increment(1);
        let hedged_at = Instant::now();
        let backup = second();
        tokio::pin!(backup);
        // Only an answer's own time feeds the estimators: a replica that hangs must not raise
        // the delay before the next hedge (which would make every hedge come late).
        tokio::select! {
            r = &mut primary => match r {
                Ok(v) => Ok(v).inspect(|_| self.observe(started.elapsed())),
                Err(_) => backup.await.inspect(|_| self.observe(hedged_at.elapsed())),
            },
            r = &mut backup => match r {
                Ok(v) => Ok(v).inspect(|_| self.observe(hedged_at.elapsed())),
                Err(_) => primary.await,
            },
        }
    }

    /// The wait before a hedge: `srtt + 4 × rttvar` of its recent answers, within bounds.
    fn hedge_delay(&self) -> Duration {
        let srtt = self.srtt_us.load(Ordering::Relaxed);
        if srtt == 0 {
            return HEDGE_UNKNOWN;
        }
        let us = srtt + 4 * self.rttvar_us.load(Ordering::Relaxed);
        Duration::from_micros(us).clamp(HEDGE_MIN, HEDGE_MAX)
    }

    /// Takes one answer's latency into the estimators (RFC 6298: α = 1/8, β = 1/4). Racing
    /// updates may lose a sample, which only makes the estimate a little older.
    fn observe(&self, latency: Duration) {
        let r = latency.as_micros().min(u128::from(u32::MAX)) as u64;
        let srtt = self.srtt_us.load(Ordering::Relaxed);
        if srtt == 0 {
            self.srtt_us.store(r.max(1), Ordering::Relaxed);
            self.rttvar_us.store(r / 2, Ordering::Relaxed);
            return;
        }
        let var = self.rttvar_us.load(Ordering::Relaxed);
        self.rttvar_us.store((3 * var + srtt.abs_diff(r)) / 4, Ordering::Relaxed);
        self.srtt_us.store(((7 * srtt + r) / 8).max(1), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::{sleep, Instant};
    use tonic::Status;

    use super::Peer;

    /// A peer with `replicas` addresses that nothing listens on (the calls below never use them).
    fn peer(replicas: usize) -> Peer {
        let channel = || tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        Peer {
            id: "holder".into(),
            addresses: (0..replicas).map(|i| format!("127.0.0.1:{i}")).collect(),
            channels: (0..replicas).map(|_| channel()).collect(),
            max_message: 1 << 20,
            next: Default::default(),
            srtt_us: Default::default(),
            rttvar_us: Default::default(),
        }
    }

    /// A hung replica does not hold up the answer: after the hedge delay (srtt + 4 rttvar of
    /// the peer's recent answers) the second replica is asked and its answer wins. Paused time.
    #[tokio::test(start_paused = true)]
    async fn a_hung_replica_is_hedged_after_the_peers_own_latency() {
        let p = peer(2);
        for _ in 0..20 {
            p.observe(Duration::from_millis(4));
        }
        let delay = p.hedge_delay();
        assert!(delay >= Duration::from_millis(4) && delay <= Duration::from_millis(8), "{delay:?}");
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let started = Instant::now();
        let answer = p
            .hedged(|_| {
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    // The first replica is hung; the second answers in 4 ms.
                    sleep(Duration::from_millis(if n == 0 { 60_000 } else { 4 })).await;
                    Ok::<_, Status>(n)
                }
            })
            .await
            .unwrap();
        assert_eq!(answer, 1, "the second replica's answer");
        assert!(
            p.hedge_delay() <= delay + Duration::from_millis(3),
            "a hung replica does not raise the next delay much"
        );
        // (the timer rounds each sleep up to its millisecond)
        let took = started.elapsed();
        assert!(took >= delay + Duration::from_millis(4) && took <= delay + Duration::from_millis(6), "{took:?}");
        // One address: no hedge, the call is waited for.
        let single = peer(1);
        let started = Instant::now();
        let r = single
            .hedged(|_| async {
                sleep(Duration::from_millis(300)).await;
                Ok::<_, Status>(7)
            })
            .await;
        assert_eq!((r.unwrap(), started.elapsed()), (7, Duration::from_millis(300)));
    }
}
