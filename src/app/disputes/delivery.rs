//! Disputes as a user of the outbox: the notice each queued item becomes, what a receipt or a
//! refusal from the peer changes, and the deadline sweep after each delivery pass.

use super::*;

impl Disputes {
    /// A filing refused when delivered later: the dispute is REJECTED with the reason.
    async fn rejected(&self, outbox: &str, q: &Queued, r: &Refusal) -> Result<(), StoreError> {
        let (Some(_), entry) = self.outbox.entry(outbox).await? else { return Ok(()) };
        let (Some(mut d), version) = self.load(&q.about).await? else { return Ok(()) };
        d.status = DisputeStatus::Rejected;
        // What the application reads later tells no more than a refusal at filing would: a
        // miss is a miss (the log keeps the furnisher's exact code for the regulator).
        d.rejection = if refused_as_miss(r) {
            format!("NotFound: {NO_SUCH_RECORD}")
        } else {
            r.to_string().chars().take(500).collect()
        };
        let mut change =
            Change::logged(Entry::dispute_rejected(self.life.clock.now(), &d, &record(&d), r.reason.code()));
        change.expect::<Queued>(outbox, &entry).expect::<Dispute>(&q.about, &version);
        change.remove::<Queued>(outbox).put(&q.about, &d);
        self.state.write(change).await?;
        self.state.sync().await
    }

    /// One attempt of recording a peer's acknowledgement: the entry leaves the outbox; for a
    /// filing, this node's copy takes the furnisher's state (open, with its deadline).
    async fn take_receipt(
        &self,
        outbox: &str,
        q: &Queued,
        receipt: &pb::NoticeReceipt,
    ) -> Result<Step<Option<Dispute>>, StoreError> {
        let (Some(_), entry) = self.outbox.entry(outbox).await? else { return Ok(Step::Done(None)) };
        let (Some(mut d), version) = self.load(&q.about).await? else { return Ok(Step::Done(None)) };
        let filed = q.kind == Kind::Filed;
        if filed {
            if let Some(theirs) = receipt.dispute.as_ref().and_then(|p| convert::dispute_from_pb(p).ok()) {
                // The furnisher's times, checked: what this node's clock cannot believe is
                // left out.
                let window = Window::around(self.life.clock.now());
                if !d.status.is_final() {
                    d.status = theirs.status;
                    d.resolved = theirs.resolved.filter(|t| window.check(*t).is_ok() && *t >= d.filed);
                    d.corrected_version = theirs.corrected_version;
                }
                d.deadline = theirs.deadline.filter(|t| plausible_deadline(d.filed, *t));
            } else if d.status == DisputeStatus::PendingDelivery {
                d.status = DisputeStatus::Open;
            }
        }
        let now = self.life.clock.now();
        let logged = if filed {
            Entry::dispute_delivered(now, &d, &record(&d))
        } else {
            Entry::resolution_delivered(now, &d, &record(&d))
        };
        let mut change = Change::logged(logged);
        change.expect::<Queued>(outbox, &entry).expect::<Dispute>(&q.about, &version).remove::<Queued>(outbox);
        if filed {
            change.put(&q.about, &d);
        }
        Ok(Step::Write(change, Some(d)))
    }

    /// At the furnisher: logs once each dispute whose deadline passed unresolved (its record is
    /// suppressed from then on, by the read rules). Returns how many were logged.
    async fn sweep(&self) -> Result<usize, StoreError> {
        let now = self.life.clock.now();
        let mut logged = 0;
        for (key, mut d, version) in self.state.all::<Dispute>("").await? {
            if d.furnisher != self.me() || !d.overdue(now) || d.suppression_logged {
                continue;
            }
            d.suppression_logged = true;
            let mut change = Change::logged(Entry::dispute_suppressed(self.life.clock.now(), &d, &record(&d)));
            change.expect::<Dispute>(&key, &version).put(&key, &d);
            if self.state.write(change).await? {
                warn!(dispute = %d.id, record = %d.record_id, "dispute unresolved at its deadline: record suppressed until resolved");
                logged += 1;
            }
        }
        if logged > 0 {
            self.state.sync().await?;
        }
        Ok(logged)
    }
}

/// Disputes' notices: a filing to the furnisher, a resolution to the filer.
impl Courier for Disputes {
    async fn notice(&self, q: &Queued) -> Result<Option<pb::Notice>, StoreError> {
        // The dispute is gone (refused at once): nothing to deliver.
        let (Some(d), _) = self.load(&q.about).await? else { return Ok(None) };
        let body = convert::dispute_to_pb(&d, self.life.clock.now());
        let body = match q.kind {
            Kind::Filed => pb::notice::Body::DisputeFiled(body),
            Kind::Resolved => pb::notice::Body::DisputeResolved(body),
            Kind::Protection => return Ok(None), // not a dispute's notice; never routed here
        };
        Ok(Some(pb::Notice { body: Some(body) }))
    }

    fn ends(&self, _: &Refusal) -> bool {
        // Whatever the furnisher or filer refuses, it refuses again.
        true
    }

    async fn acknowledged(&self, outbox: &str, q: &Queued, receipt: &pb::NoticeReceipt) -> Result<(), StoreError> {
        if let Settled::Written(Some(d)) = self.state.compare_and_set(|| self.take_receipt(outbox, q, receipt)).await? {
            info!(dispute = %d.id, to = %q.to, kind = ?q.kind, "notice delivered");
        }
        Ok(())
    }

    async fn refused(&self, outbox: &str, q: &Queued, r: &Refusal) -> Result<(), StoreError> {
        if q.kind == Kind::Filed {
            return self.rejected(outbox, q, r).await;
        }
        // The filer no longer knows the dispute: nothing more to tell it.
        warn!(dispute = %q.about, to = %q.to, code = r.reason.code(), error = %r.message, "resolution notice refused; dropped");
        self.outbox.drop_entry(outbox).await
    }

    async fn after_pass(&self) {
        if let Err(e) = self.sweep().await {
            warn!(error = %e, "dispute deadline sweep failed; retrying");
        }
    }
}
