//! Leader election on a `coordination.k8s.io/v1` Lease, so that two operator replicas never
//! reconcile at once. Followers time the record on their own monotonic clock (`decide`), every
//! write carries the resourceVersion it read (`store`), and a leader that cannot renew within its
//! renew deadline stops leading before any follower's wait of a full lease duration is over.

mod decide;
#[cfg(test)]
mod memory;
mod store;
#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use decide::{holder, released, renewed, taken, verdict, Observed, Record, Verdict};
pub use store::{LeaseStore, StoreError};

/// How long a lease lasts, how long its leader keeps trying to renew it, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
}

impl Default for Timings {
    /// client-go's defaults: a 15 s lease, renewed every 2 s, given up after 10 s.
    fn default() -> Self {
        Timings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl Timings {
    /// Followers wait `lease_duration` after the record last changed; the leader stops leading
    /// when it could not renew for `renew_deadline`, trying every `retry_period` (which also
    /// bounds each API call). So: `retry_period < renew_deadline < lease_duration`.
    pub fn new(
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<Self, TimingError> {
        if lease_duration < Duration::from_secs(1) {
            return Err(TimingError::LeaseTooShort { lease_duration });
        }
        if i32::try_from(lease_duration.as_secs()).is_err() {
            return Err(TimingError::LeaseTooLong { lease_duration });
        }
        if renew_deadline >= lease_duration {
            return Err(TimingError::RenewDeadline {
                renew_deadline,
                lease_duration,
            });
        }
        if retry_period.is_zero() || retry_period >= renew_deadline {
            return Err(TimingError::RetryPeriod {
                retry_period,
                renew_deadline,
            });
        }
        Ok(Timings {
            lease_duration,
            renew_deadline,
            retry_period,
        })
    }

    /// `leaseDurationSeconds` as written: whole seconds, rounded up so no follower waits less.
    fn lease_seconds(&self) -> i32 {
        let secs =
            self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }
}

/// Election timings that cannot keep two leaders apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// Leases are written in whole seconds.
    #[error("the lease duration ({lease_duration:?}) must be at least 1s")]
    LeaseTooShort {
        /// The duration asked for.
        lease_duration: Duration,
    },
    /// `leaseDurationSeconds` is a 32-bit number.
    #[error("the lease duration ({lease_duration:?}) does not fit in a Lease")]
    LeaseTooLong {
        /// The duration asked for.
        lease_duration: Duration,
    },
    /// A leader must stop before followers may take over.
    #[error(
        "the renew deadline ({renew_deadline:?}) must be shorter than the lease duration \
         ({lease_duration:?}): a leader that cannot renew must stop before another replica may \
         take over"
    )]
    RenewDeadline {
        /// The renew deadline asked for.
        renew_deadline: Duration,
        /// The lease duration asked for.
        lease_duration: Duration,
    },
    /// A leader must get several tries before its deadline.
    #[error(
        "the retry period ({retry_period:?}) must be above zero and shorter than the renew \
         deadline ({renew_deadline:?})"
    )]
    RetryPeriod {
        /// The retry period asked for.
        retry_period: Duration,
        /// The renew deadline asked for.
        renew_deadline: Duration,
    },
}

/// Why a leader stopped leading without being asked to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lost {
    /// No renewal succeeded for the renew deadline; a follower may take over soon.
    #[error("the lease could not be renewed for {renew_deadline:?} (last error: {last_error})")]
    RenewDeadline {
        /// The renew deadline.
        renew_deadline: Duration,
        /// The last failure, or a note that the last try did not finish in time.
        last_error: String,
    },
    /// The Lease names another holder (or none) though this replica did not release it.
    #[error("the lease now names {} as its holder", holder.as_deref().unwrap_or("nobody"))]
    Taken {
        /// The holder it names, `None` when it names none.
        holder: Option<String>,
    },
    /// The task that renews the lease ended without saying why (it panicked).
    #[error("the task renewing the lease ended unexpectedly")]
    RenewerGone,
}

/// A candidate for the lease `name`, as `identity`.
pub struct Candidate<S> {
    store: S,
    name: String,
    identity: String,
    timings: Timings,
    observed: Option<Observed>,
}

impl<S: LeaseStore + 'static> Candidate<S> {
    /// A candidate that has seen nothing yet: whatever record it first reads, it waits a full
    /// lease duration for it to change before taking the lease.
    pub fn new(store: S, name: &str, identity: &str, timings: Timings) -> Self {
        Candidate {
            store,
            name: name.to_owned(),
            identity: identity.to_owned(),
            timings,
            observed: None,
        }
    }

    /// Campaigns every retry period until this replica leads (`Some`, renewing in the
    /// background from then on) or `shutdown` fires (`None`).
    pub async fn acquire(mut self, shutdown: &CancellationToken) -> Option<Leadership> {
        loop {
            let round = tokio::select! {
                biased;
                () = shutdown.cancelled() => return None,
                round = self.try_acquire() => round,
            };
            let mut next = Instant::now() + self.timings.retry_period;
            match round {
                Ok(Round::Leads { sent }) => {
                    info!(lease = %self.name, identity = %self.identity, "became leader");
                    return Some(Leadership::start(self, sent));
                }
                // Look again the moment the lease would expire, if that comes before the retry.
                Ok(Round::Waits { until }) => next = until.map_or(next, |until| until.min(next)),
                Err(e) => warn!(lease = %self.name, error = %e, "campaigning for the lease failed"),
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return None,
                () = sleep_until(next) => {}
            }
        }
    }

    /// One round as a follower.
    async fn try_acquire(&mut self) -> Result<Round, CallError> {
        let current = match self.call(Call::Get, self.store.get(&self.name)).await {
            Ok(lease) => Some(lease),
            Err(e) if matches!(e.store_error(), Some(StoreError::NotFound)) => None,
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        let observed = Observed::update(self.observed.take(), Record::of(current.as_ref()), now);
        let verdict = verdict(&observed, self.timings.lease_duration, now);
        self.observed = Some(observed);
        if let Verdict::Wait { holder, until } = verdict {
            debug!(lease = %self.name, ?holder, free_in = ?(until - now), "lease is held");
            return Ok(Round::Waits { until: Some(until) });
        }
        let lease = taken(
            current.as_ref(),
            &self.name,
            &self.identity,
            self.timings.lease_seconds(),
            Timestamp::now(),
        );
        let sent = Instant::now();
        let written = match &current {
            None => self.call(Call::Create, self.store.create(&lease)).await,
            Some(_) => {
                let update = self.store.replace(&self.name, &lease);
                self.call(Call::Update, update).await
            }
        };
        match written {
            Ok(_) => Ok(Round::Leads { sent }),
            // Another candidate wrote first; the next read shows what it wrote.
            Err(e) if matches!(e.store_error(), Some(StoreError::Conflict)) => {
                Ok(Round::Waits { until: None })
            }
            Err(e) => Err(e),
        }
    }

    /// One renewal by the leader: `Ok(Some(lost))` when the record names someone else.
    async fn try_renew(&self) -> Result<Option<Lost>, CallError> {
        let current = self.call(Call::Get, self.store.get(&self.name)).await?;
        if holder(&current) != Some(self.identity.as_str()) {
            let holder = holder(&current).map(str::to_owned);
            return Ok(Some(Lost::Taken { holder }));
        }
        let lease = renewed(&current, self.timings.lease_seconds(), Timestamp::now());
        let update = self.store.replace(&self.name, &lease);
        self.call(Call::Update, update).await?;
        Ok(None)
    }

    /// Hands the lease back, if the record still names this replica.
    async fn release(&self) {
        let result = async {
            let current = self.call(Call::Get, self.store.get(&self.name)).await?;
            if holder(&current) != Some(self.identity.as_str()) {
                return Ok(false);
            }
            let release = released(&current, Timestamp::now());
            let update = self.store.replace(&self.name, &release);
            self.call(Call::Update, update).await.map(|_| true)
        };
        match result.await {
            Ok(true) => info!(lease = %self.name, "released the lease"),
            Ok(false) => warn!(lease = %self.name, "the lease names another holder; not releasing"),
            Err(e) => warn!(
                lease = %self.name, error = %e,
                "releasing the lease failed; a successor waits for it to expire"
            ),
        }
    }

    /// Runs one API call, giving up after a retry period: a hung call is a failed one.
    async fn call<T>(
        &self,
        call: Call,
        answer: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, CallError> {
        let timeout = self.timings.retry_period;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(CallError::Store {
                call,
                lease: self.name.clone(),
                source,
            }),
            Err(_) => Err(CallError::Timeout {
                call,
                lease: self.name.clone(),
                timeout,
            }),
        }
    }
}

/// How a follower's round ended.
enum Round {
    /// It took the lease with a write sent at `sent`: the lease counts from then, as the API
    /// server applied the write after it.
    Leads { sent: Instant },
    /// Someone else holds the lease, free at `until` (when known) unless the record changes.
    Waits { until: Option<Instant> },
}

/// This replica leads, and a background task renews the lease until `release` or loss.
/// Dropping it stops renewing without releasing (the lease then expires).
pub struct Leadership {
    lost: watch::Receiver<Option<Lost>>,
    stop: CancellationToken,
    renewer: Option<JoinHandle<()>>,
}

impl Leadership {
    fn start<S: LeaseStore + 'static>(candidate: Candidate<S>, renewed_at: Instant) -> Self {
        let (lost_tx, lost) = watch::channel(None);
        let stop = CancellationToken::new();
        let renewer = tokio::spawn(hold(candidate, renewed_at, stop.clone(), lost_tx));
        Leadership {
            lost,
            stop,
            renewer: Some(renewer),
        }
    }

    /// Resolves when this replica stopped leading without being asked to; reconciling must stop
    /// at once. Cancel safe.
    pub async fn lost(&mut self) -> Lost {
        match self.lost.wait_for(Option::is_some).await {
            Ok(lost) => lost.clone().unwrap_or(Lost::RenewerGone),
            Err(_) => Lost::RenewerGone,
        }
    }

    /// Stops renewing and hands the lease back, so a successor takes over at its next try.
    /// Call it only once reconciling has stopped.
    pub async fn release(mut self) {
        self.stop.cancel();
        if let Some(renewer) = self.renewer.take() {
            if let Err(e) = renewer.await {
                warn!(error = %e, "the task renewing the lease failed");
            }
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
    }
}

/// The leader's loop: renew every retry period; lose the lease when no renewal sent within the
/// last renew deadline succeeded, or the record names someone else; release it on `stop`.
async fn hold<S: LeaseStore + 'static>(
    candidate: Candidate<S>,
    mut renewed_at: Instant,
    stop: CancellationToken,
    lost: watch::Sender<Option<Lost>>,
) {
    let timings = candidate.timings;
    let mut last_error = String::from("none");
    let lose = |why: Lost| {
        warn!(lease = %candidate.name, reason = %why, "stopped leading");
        lost.send_replace(Some(why));
    };
    loop {
        // The deadline comes first: past it, this replica must not act as leader, release included.
        tokio::select! {
            biased;
            () = sleep_until(renewed_at + timings.renew_deadline) => break,
            () = stop.cancelled() => return candidate.release().await,
            () = sleep(timings.retry_period) => {}
        }
        let sent = Instant::now();
        let result = tokio::select! {
            biased;
            () = sleep_until(renewed_at + timings.renew_deadline) => {
                last_error = format!("the try sent {:?} ago had no answer", sent.elapsed());
                break;
            }
            () = stop.cancelled() => return candidate.release().await,
            result = candidate.try_renew() => result,
        };
        match result {
            Ok(None) => renewed_at = sent,
            Ok(Some(taken)) => return lose(taken),
            Err(e) => {
                warn!(lease = %candidate.name, error = %e, "renewing the lease failed");
                last_error = e.to_string();
            }
        }
    }
    lose(Lost::RenewDeadline {
        renew_deadline: timings.renew_deadline,
        last_error,
    });
}

/// The API call a failure came from.
#[derive(Debug, Clone, Copy)]
enum Call {
    Get,
    Create,
    Update,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Call::Get => "get",
            Call::Create => "create",
            Call::Update => "update",
        })
    }
}

/// One failed API call on the Lease.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("{call} of Lease {lease}: {source}")]
    Store {
        call: Call,
        lease: String,
        source: StoreError,
    },
    #[error("{call} of Lease {lease}: no answer within {timeout:?}")]
    Timeout {
        call: Call,
        lease: String,
        timeout: Duration,
    },
}

impl CallError {
    fn store_error(&self) -> Option<&StoreError> {
        match self {
            CallError::Store { source, .. } => Some(source),
            CallError::Timeout { .. } => None,
        }
    }
}
