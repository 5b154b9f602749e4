//! The election's pure core: what a candidate saw of the Lease and when, on its own monotonic
//! clock, whether that lets it take the lease, and the Lease it writes. No I/O here. The holder's
//! `renewTime` is written for people to read and never compared with our clock: replicas' wall
//! clocks disagree, but each one's monotonic clock measures how long the record stood still.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

/// The parts of a Lease that its holder changes with every write: any change is a sign of life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// False while the Lease does not exist.
    pub exists: bool,
    /// `holderIdentity`, `None` when empty.
    pub holder: Option<String>,
    /// `renewTime`, compared only for equality.
    pub renew_time: Option<Timestamp>,
    /// `leaseTransitions`.
    pub transitions: Option<i32>,
    /// `leaseDurationSeconds`, when positive.
    pub duration: Option<Duration>,
    /// `metadata.resourceVersion`: changes on every write, even one that repeats the values.
    pub resource_version: Option<String>,
}

impl Record {
    /// The record of `lease`, or of a missing Lease.
    pub fn of(lease: Option<&Lease>) -> Record {
        let Some(lease) = lease else {
            return Record {
                exists: false,
                holder: None,
                renew_time: None,
                transitions: None,
                duration: None,
                resource_version: None,
            };
        };
        let spec = lease.spec.as_ref();
        Record {
            exists: true,
            holder: holder(lease).map(str::to_owned),
            renew_time: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
            transitions: spec.and_then(|s| s.lease_transitions),
            duration: spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            resource_version: lease.metadata.resource_version.clone(),
        }
    }
}

/// `holderIdentity` of `lease`, `None` when empty.
pub(crate) fn holder(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

/// A record and the instant this candidate first saw it.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    /// What was seen.
    pub record: Record,
    /// When it was first seen (after the read returned, so never before the write it shows).
    pub at: Instant,
}

impl Observed {
    /// Notes `record`, read at `now`: the clock restarts only when the record changed.
    pub fn update(previous: Option<Observed>, record: Record, now: Instant) -> Observed {
        match previous {
            Some(previous) if previous.record == record => previous,
            _ => Observed { record, at: now },
        }
    }
}

/// What a candidate that does not lead may do, given what it observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The lease is free (released, or its holder stopped renewing): try to take it.
    Take,
    /// Someone may still hold the lease until `until`, on this candidate's clock.
    Wait {
        /// The holder named by the record (`None`: the Lease is missing).
        holder: Option<String>,
        /// When the record, if it stays unchanged, expires.
        until: Instant,
    },
}

/// May a candidate that does not lead take the lease, having observed `observed`, at `now`?
///
/// An existing Lease that names no holder was released and is free at once. Otherwise the
/// record must have stood still for the lease duration it names (`lease_duration` when it names
/// none) since this candidate first saw it: its holder stops leading after its renew deadline,
/// which is shorter. That holds for a holder that names this candidate's identity too (an earlier
/// life of this process, or a replica misconfigured with the same identity), and for a missing
/// Lease: one deleted under a live leader must not make a second leader before the first stops.
pub(crate) fn verdict(observed: &Observed, lease_duration: Duration, now: Instant) -> Verdict {
    let record = &observed.record;
    if record.exists && record.holder.is_none() {
        return Verdict::Take;
    }
    let until = observed.at + record.duration.unwrap_or(lease_duration);
    if until <= now {
        Verdict::Take
    } else {
        Verdict::Wait {
            holder: record.holder.clone(),
            until,
        }
    }
}

/// The Lease a candidate writes to take the lease: `current` with this holder (so the update
/// carries the resourceVersion that was read), or a new Lease named `name`.
pub(crate) fn taken(
    current: Option<&Lease>,
    name: &str,
    identity: &str,
    lease_seconds: i32,
    now: Timestamp,
) -> Lease {
    let mut lease = current.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    let existed = current.is_some();
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(identity) {
        spec.holder_identity = Some(identity.to_owned());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(if existed {
            spec.lease_transitions.unwrap_or(0).saturating_add(1)
        } else {
            0
        });
    }
    spec.lease_duration_seconds = Some(lease_seconds);
    spec.renew_time = Some(MicroTime(now));
    lease
}

/// `current` (held by this candidate) renewed at `now`.
pub(crate) fn renewed(current: &Lease, lease_seconds: i32, now: Timestamp) -> Lease {
    let mut lease = current.clone();
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.lease_duration_seconds = Some(lease_seconds);
    spec.renew_time = Some(MicroTime(now));
    lease
}

/// `current` handed back: no holder and a one-second duration, so that a successor takes it at
/// its next try instead of waiting out the lease (client-go's `ReleaseOnCancel`).
pub(crate) fn released(current: &Lease, now: Timestamp) -> Lease {
    let mut lease = current.clone();
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(now));
    lease
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    fn lease(holder: &str, renewed: i64, version: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("kamera-operator".into()),
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed).expect("valid"))),
                ..LeaseSpec::default()
            }),
        }
    }

    fn seen(lease: &Lease, at: Instant) -> Observed {
        Observed::update(None, Record::of(Some(lease)), at)
    }

    #[test]
    fn a_lease_of_another_replica_is_respected_until_it_stood_still_for_its_duration() {
        let t0 = Instant::now();
        let observed = seen(&lease("other", 1_000, "7"), t0);
        let until = t0 + LEASE;
        let wait = Verdict::Wait {
            holder: Some("other".into()),
            until,
        };
        assert_eq!(verdict(&observed, LEASE, t0), wait);
        assert_eq!(
            verdict(&observed, LEASE, until - Duration::from_millis(1)),
            wait
        );
        assert_eq!(verdict(&observed, LEASE, until), Verdict::Take);
    }

    #[test]
    fn any_change_of_the_record_restarts_the_wait() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(14);
        let changes = [
            lease("other", 1_002, "7"),
            lease("other", 1_000, "8"),
            lease("third", 1_000, "7"),
        ];
        for changed in changes {
            let observed = Observed::update(
                Some(seen(&lease("other", 1_000, "7"), t0)),
                Record::of(Some(&changed)),
                later,
            );
            assert_eq!(observed.at, later, "{changed:?}");
            assert_eq!(
                verdict(&observed, LEASE, t0 + Duration::from_secs(16)),
                Verdict::Wait {
                    holder: changed
                        .spec
                        .as_ref()
                        .and_then(|s| s.holder_identity.clone()),
                    until: later + LEASE
                }
            );
        }
        let same = Observed::update(
            Some(seen(&lease("other", 1_000, "7"), t0)),
            Record::of(Some(&lease("other", 1_000, "7"))),
            later,
        );
        assert_eq!(same.at, t0);
    }

    #[test]
    fn renew_time_in_the_past_or_future_does_not_matter() {
        let t0 = Instant::now();
        for renewed in [0, 4_102_444_800] {
            let observed = seen(&lease("other", renewed, "7"), t0);
            assert!(matches!(
                verdict(&observed, LEASE, t0 + Duration::from_secs(14)),
                Verdict::Wait { .. }
            ));
            assert_eq!(verdict(&observed, LEASE, t0 + LEASE), Verdict::Take);
        }
    }

    #[test]
    fn the_duration_the_record_names_wins_over_our_own() {
        let t0 = Instant::now();
        let mut long = lease("other", 1_000, "7");
        if let Some(spec) = long.spec.as_mut() {
            spec.lease_duration_seconds = Some(60);
        }
        let observed = seen(&long, t0);
        assert!(matches!(
            verdict(&observed, LEASE, t0 + Duration::from_secs(59)),
            Verdict::Wait { .. }
        ));
        assert_eq!(
            verdict(&observed, LEASE, t0 + Duration::from_secs(60)),
            Verdict::Take
        );
    }

    #[test]
    fn a_released_lease_is_free_at_once() {
        let t0 = Instant::now();
        let released = released(
            &lease("other", 1_000, "7"),
            Timestamp::from_second(1_001).expect("valid"),
        );
        assert_eq!(holder(&released), None);
        assert_eq!(
            released
                .spec
                .as_ref()
                .and_then(|s| s.lease_duration_seconds),
            Some(1)
        );
        assert_eq!(verdict(&seen(&released, t0), LEASE, t0), Verdict::Take);
    }

    #[test]
    fn our_own_identity_in_a_record_we_did_not_write_is_waited_out_like_any_other() {
        let t0 = Instant::now();
        let observed = seen(&lease("me", 1_000, "7"), t0);
        assert!(matches!(
            verdict(&observed, LEASE, t0 + Duration::from_secs(1)),
            Verdict::Wait { .. }
        ));
    }

    #[test]
    fn a_missing_lease_is_created_only_after_it_stayed_missing_for_the_lease_duration() {
        let t0 = Instant::now();
        let missing = Observed::update(
            Some(seen(&lease("other", 1_000, "7"), t0)),
            Record::of(None),
            t0 + Duration::from_secs(3),
        );
        assert_eq!(
            verdict(&missing, LEASE, t0 + Duration::from_secs(17)),
            Verdict::Wait {
                holder: None,
                until: t0 + Duration::from_secs(18)
            }
        );
        assert_eq!(
            verdict(&missing, LEASE, t0 + Duration::from_secs(18)),
            Verdict::Take
        );
    }

    #[test]
    fn taking_keeps_the_resource_version_and_counts_a_transition() {
        let now = Timestamp::from_second(2_000).expect("valid");
        let mut current = lease("other", 1_000, "7");
        if let Some(spec) = current.spec.as_mut() {
            spec.lease_transitions = Some(3);
        }
        let took = taken(Some(&current), "kamera-operator", "me", 15, now);
        assert_eq!(took.metadata.resource_version.as_deref(), Some("7"));
        let spec = took.spec.expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));

        let new = taken(None, "kamera-operator", "me", 15, now);
        assert_eq!(new.metadata.name.as_deref(), Some("kamera-operator"));
        assert_eq!(new.metadata.resource_version, None);
        assert_eq!(new.spec.and_then(|s| s.lease_transitions), Some(0));
    }
}
