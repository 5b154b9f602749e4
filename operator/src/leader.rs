//! Leader election on a `coordination.k8s.io/v1` Lease, so that two operator replicas never
//! reconcile at once. Updates carry the Lease's resourceVersion: of two racing candidates the
//! API server accepts one and refuses the other with a conflict.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Settings of the election.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub duration: Duration,
}

/// What a campaign round found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// This replica holds the lease.
    Leading,
    /// Another replica holds a valid lease.
    Following,
}

/// Decides, from the current Lease, whether this replica may take or keep it.
pub fn may_hold(lease: &Lease, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return true;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(holder) if holder == identity => true,
        Some(_) => {
            let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(15));
            let renewed = spec
                .renew_time
                .as_ref()
                .or(spec.acquire_time.as_ref())
                .map(|t| t.0);
            match renewed {
                Some(t) => t + SignedDuration::from_secs(seconds) < now,
                None => true,
            }
        }
    }
}

/// One try to acquire or renew the lease.
pub async fn campaign(api: &Api<Lease>, settings: &LeaseSettings) -> Result<Round, kube::Error> {
    let now = Timestamp::now();
    let seconds = i32::try_from(settings.duration.as_secs()).unwrap_or(15);
    match api.get_opt(&settings.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(settings.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(settings.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Round::Leading),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Round::Following),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            if !may_hold(&lease, &settings.identity, now) {
                return Ok(Round::Following);
            }
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(settings.identity.as_str()) {
                spec.holder_identity = Some(settings.identity.clone());
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(seconds);
            // `replace` sends the resourceVersion we read: a concurrent change makes it a 409.
            match api
                .replace(&settings.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => Ok(Round::Leading),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Round::Following),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until this replica leads, then keeps renewing in the background; `lost` fires when the
/// lease could not be renewed within its duration (the caller then stops reconciling).
pub async fn acquire(
    api: Api<Lease>,
    settings: LeaseSettings,
    shutdown: CancellationToken,
) -> Option<CancellationToken> {
    let retry = settings.duration / 3;
    loop {
        match campaign(&api, &settings).await {
            Ok(Round::Leading) => break,
            Ok(Round::Following) => {}
            Err(e) => warn!(lease = %settings.name, error = %e, "leader election failed; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(retry) => {}
        }
    }
    info!(lease = %settings.name, identity = %settings.identity, "became leader");
    let lost = CancellationToken::new();
    let lost_signal = lost.clone();
    tokio::spawn(async move {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(retry) => {}
            }
            match campaign(&api, &settings).await {
                Ok(Round::Leading) => last_renewal = tokio::time::Instant::now(),
                Ok(Round::Following) => {
                    warn!(lease = %settings.name, "another replica took the lease");
                    lost_signal.cancel();
                    return;
                }
                Err(e) => {
                    warn!(lease = %settings.name, error = %e, "renewing the lease failed");
                    if last_renewal.elapsed() >= settings.duration {
                        lost_signal.cancel();
                        return;
                    }
                }
            }
        }
    });
    Some(lost)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: i64) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).expect("valid"))),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_valid_lease_of_another_replica_is_respected() {
        let now = Timestamp::from_second(1_010).expect("valid");
        assert!(!may_hold(&lease("other", 1_000), "me", now));
        assert!(may_hold(&lease("me", 1_000), "me", now));
    }

    #[test]
    fn an_expired_lease_may_be_taken_over() {
        let now = Timestamp::from_second(1_016).expect("valid");
        assert!(may_hold(&lease("other", 1_000), "me", now));
    }
}
