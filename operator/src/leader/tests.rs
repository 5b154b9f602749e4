//! The election as a whole: candidates over one in-memory store, on tokio's paused clock, with an
//! observer told by each candidate the instant it starts or stops believing it leads.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

use super::memory::{Client, Entry, Fault, Memory, Rng};
use super::*;

const NAME: &str = "kamera-operator";
const LEASE: Duration = Duration::from_secs(15);
const DEADLINE: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(2);

fn candidate(client: Client, identity: &str) -> Candidate<Client> {
    Candidate::new(client, NAME, identity, Timings::default())
}

/// Who believes it leads, kept by the candidates themselves at each change.
#[derive(Clone, Default)]
struct Observer(Arc<Mutex<Seen>>);

#[derive(Default)]
struct Seen {
    leading: BTreeSet<String>,
    /// (instant, who, leads from now on).
    changes: Vec<(Instant, String, bool)>,
    overlaps: Vec<String>,
}

impl Observer {
    fn change(&self, who: &str, leads: bool) {
        let mut seen = self.0.lock().expect("observer lock");
        let now = Instant::now();
        if leads {
            let others = seen.leading.iter().cloned().collect::<Vec<_>>();
            // Leading again at the very instant another stopped is no better than overlapping.
            let same_instant = seen
                .changes
                .iter()
                .rev()
                .take_while(|c| c.0 == now)
                .any(|c| !c.2);
            if !others.is_empty() || same_instant {
                let overlap = format!("{who} leads while {others:?} lead (or just stopped)");
                seen.overlaps.push(overlap);
            }
            seen.leading.insert(who.to_owned());
        } else {
            seen.leading.remove(who);
        }
        seen.changes.push((now, who.to_owned(), leads));
    }

    fn changes(&self) -> Vec<(Instant, String, bool)> {
        self.0.lock().expect("observer lock").changes.clone()
    }

    fn overlaps(&self) -> Vec<String> {
        self.0.lock().expect("observer lock").overlaps.clone()
    }
}

/// How one life of a candidate in the long run ends its leadership.
enum Ending {
    Lost,
    Released,
}

/// A replica that campaigns, leads for a while, and restarts, for as long as `shutdown` allows.
/// Each life is a fresh process: a new candidate that has seen nothing, with its own faults.
async fn replica(
    memory: Memory,
    who: String,
    seed: u64,
    seen: Observer,
    shutdown: CancellationToken,
) -> (u32, u32) {
    let mut rng = Rng::new(seed);
    let (mut lost, mut released) = (0, 0);
    loop {
        let (client, faults) = memory.client(&who);
        let percent = [0, 10, 30, 60][usize::try_from(rng.below(4)).expect("small")];
        faults.set(Fault::Chaos {
            rng: Rng::new(rng.next()),
            percent,
        });
        let Some(mut leadership) = candidate(client, &who).acquire(&shutdown).await else {
            return (lost, released);
        };
        seen.change(&who, true);
        let hold = rng.upto(Duration::from_secs(120));
        // Sometimes the network goes away altogether while leading.
        let partition = (rng.below(3) == 0).then(|| rng.upto(Duration::from_secs(60)));
        let ending = tokio::select! {
            _ = leadership.lost() => Ending::Lost,
            () = sleep(hold) => Ending::Released,
            // Never completes: the partition shows through `lost`.
            () = async {
                if let Some(after) = partition {
                    sleep(after).await;
                    faults.set(if rng.below(2) == 0 { Fault::Hang } else { Fault::Fail });
                }
                std::future::pending::<()>().await;
            } => unreachable!("pending forever"),
            () = shutdown.cancelled() => Ending::Released,
        };
        seen.change(&who, false);
        match ending {
            Ending::Lost => lost += 1,
            Ending::Released => {
                released += 1;
                leadership.release().await;
            }
        }
        // The restart of the process.
        tokio::select! {
            () = sleep(rng.upto(Duration::from_secs(5))) => {}
            () = shutdown.cancelled() => return (lost, released),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn never_two_leaders_through_failures_hangs_and_restarts() {
    for seed in 1..=4u64 {
        let memory = Memory::default();
        let seen = Observer::default();
        let shutdown = CancellationToken::new();
        let replicas: Vec<JoinHandle<(u32, u32)>> = ["a", "b", "c"]
            .iter()
            .zip(0u64..)
            .map(|(who, n)| {
                let run = replica(
                    memory.clone(),
                    (*who).to_owned(),
                    seed * 10 + n,
                    seen.clone(),
                    shutdown.clone(),
                );
                tokio::spawn(run)
            })
            .collect();
        sleep(Duration::from_secs(4 * 3600)).await;
        shutdown.cancel();
        let (mut lost, mut released) = (0, 0);
        for replica in replicas {
            let (l, r) = replica.await.expect("replica task");
            lost += l;
            released += r;
        }

        assert_eq!(seen.overlaps(), Vec::<String>::new(), "seed {seed}");
        let changes = seen.changes();
        let leaders: BTreeSet<_> = changes
            .iter()
            .filter(|c| c.2)
            .map(|c| c.1.clone())
            .collect();
        // The run must have exercised both ways of stopping and handed over between replicas.
        assert!(
            changes.len() > 100,
            "seed {seed}: only {} changes",
            changes.len()
        );
        assert!(
            lost > 5 && released > 5,
            "seed {seed}: {lost} lost, {released} released"
        );
        assert_eq!(leaders.len(), 3, "seed {seed}");
    }
}

/// Starts `who` campaigning; the handle yields the instant it came to lead.
fn campaign(
    client: Client,
    who: &str,
    shutdown: &CancellationToken,
) -> JoinHandle<(Instant, Leadership)> {
    let (candidate, shutdown) = (candidate(client, who), shutdown.clone());
    tokio::spawn(async move {
        let leadership = candidate.acquire(&shutdown).await.expect("not shut down");
        (Instant::now(), leadership)
    })
}

/// When `reader` first read the last Lease `writer` wrote.
fn first_seen_by(log: &[Entry], reader: &str, writer: &str) -> Instant {
    let last = log
        .iter()
        .rev()
        .find(|e| e.write && e.client == writer)
        .and_then(|e| e.lease.as_ref())
        .and_then(|l| l.metadata.resource_version.clone())
        .expect("a write");
    log.iter()
        .find(|e| {
            !e.write
                && e.client == reader
                && e.lease
                    .as_ref()
                    .and_then(|l| l.metadata.resource_version.as_ref())
                    == Some(&last)
        })
        .map(|e| e.at)
        .expect("the reader saw the last write")
}

async fn leader_that_stops_renewing_is_succeeded_after_the_lease_duration(fault: Fault) {
    let memory = Memory::default();
    let shutdown = CancellationToken::new();
    let (a_client, a_faults) = memory.client("a");
    let mut a = campaign(a_client, "a", &shutdown).await.expect("a leads").1;
    let b = campaign(memory.client("b").0, "b", &shutdown);
    sleep(Duration::from_secs(60)).await;
    assert!(!b.is_finished(), "b took a lease that a renews");

    let broken_at = Instant::now();
    a_faults.set(fault);
    let lost = a.lost().await;
    let lost_at = Instant::now();
    assert!(matches!(lost, Lost::RenewDeadline { .. }), "{lost:?}");
    assert!(
        lost_at - broken_at <= DEADLINE,
        "a led {:?} after its store broke",
        lost_at - broken_at
    );

    let (gained_at, _b) = b.await.expect("b leads");
    let seen_at = first_seen_by(&memory.log(), "b", "a");
    assert!(gained_at > lost_at, "b led before a stopped");
    assert!(
        gained_at >= seen_at + LEASE,
        "b led {:?} after it last saw a change",
        gained_at - seen_at
    );
    assert!(
        gained_at <= seen_at + LEASE + RETRY,
        "b waited {:?}",
        gained_at - seen_at
    );
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_calls_fail_is_succeeded_only_after_it_stopped() {
    leader_that_stops_renewing_is_succeeded_after_the_lease_duration(Fault::Fail).await;
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_calls_hang_is_succeeded_only_after_it_stopped() {
    leader_that_stops_renewing_is_succeeded_after_the_lease_duration(Fault::Hang).await;
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_over_within_a_retry_period() {
    let memory = Memory::default();
    let shutdown = CancellationToken::new();
    let a = campaign(memory.client("a").0, "a", &shutdown)
        .await
        .expect("a leads")
        .1;
    let b = campaign(memory.client("b").0, "b", &shutdown);
    sleep(Duration::from_secs(60)).await;

    let released_at = Instant::now();
    a.release().await;
    let release = memory
        .log()
        .into_iter()
        .rev()
        .find(|e| e.write && e.client == "a")
        .and_then(|e| e.lease)
        .expect("a wrote");
    let spec = release.spec.expect("spec");
    assert_eq!(spec.holder_identity, None);
    assert_eq!(spec.lease_duration_seconds, Some(1));

    let (gained_at, _b) = b.await.expect("b leads");
    assert!(
        gained_at - released_at <= RETRY,
        "b took {:?}",
        gained_at - released_at
    );
}

/// Another replica holding the lease with its wall clock stuck at `clock`, renewing every retry
/// period until `until`, through the same store.
async fn skewed_holder(client: Client, clock: Timestamp, until: Instant) {
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("skewed".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(clock)),
            ..LeaseSpec::default()
        }),
    };
    client.create(&lease).await.expect("created");
    while Instant::now() < until {
        sleep(RETRY).await;
        let current = client.get(NAME).await.expect("read");
        // The same renewTime every time: only the resourceVersion shows the holder is alive.
        client.replace(NAME, &current).await.expect("renewed");
    }
}

#[tokio::test(start_paused = true)]
async fn a_holder_with_a_skewed_wall_clock_keeps_its_lease_while_it_renews() {
    let far_past = Timestamp::from_second(1).expect("valid");
    let far_future = Timestamp::from_second(7_258_118_400).expect("valid"); // 2200-01-01
    for clock in [far_past, far_future] {
        let memory = Memory::default();
        let shutdown = CancellationToken::new();
        let until = Instant::now() + Duration::from_secs(600);
        let holder = tokio::spawn(skewed_holder(memory.client("skewed").0, clock, until));
        let b = campaign(memory.client("b").0, "b", &shutdown);
        holder.await.expect("holder task");
        assert!(
            !b.is_finished(),
            "b took a lease renewed with renewTime {clock}"
        );

        let (gained_at, _b) = b.await.expect("b leads");
        let seen_at = first_seen_by(&memory.log(), "b", "skewed");
        assert!(
            gained_at >= seen_at + LEASE,
            "{clock}: b waited only {:?}",
            gained_at - seen_at
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_leader_stops_at_its_next_renewal_when_the_lease_names_someone_else() {
    let memory = Memory::default();
    let shutdown = CancellationToken::new();
    let mut a = campaign(memory.client("a").0, "a", &shutdown)
        .await
        .expect("a leads")
        .1;
    let (intruder, _) = memory.client("intruder");
    let mut lease = memory.lease().expect("a's lease");
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = Some("intruder".into());
    }
    intruder.replace(NAME, &lease).await.expect("overwritten");

    let written_at = Instant::now();
    assert_eq!(
        a.lost().await,
        Lost::Taken {
            holder: Some("intruder".into())
        }
    );
    assert!(Instant::now() - written_at <= RETRY);
}

#[tokio::test(start_paused = true)]
async fn a_shut_down_candidate_stops_campaigning() {
    let memory = Memory::default();
    let shutdown = CancellationToken::new();
    let (client, faults) = memory.client("a");
    faults.set(Fault::Hang);
    let campaign = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { candidate(client, "a").acquire(&shutdown).await.is_none() }
    });
    sleep(Duration::from_secs(30)).await;
    shutdown.cancel();
    assert!(
        campaign.await.expect("campaign task"),
        "acquire did not give up"
    );
}

#[tokio::test(start_paused = true)]
async fn updates_with_a_stale_resource_version_are_refused() {
    let memory = Memory::default();
    let (client, _) = memory.client("a");
    let a = campaign(client.clone(), "a", &CancellationToken::new())
        .await
        .expect("a leads")
        .1;
    let read = client.get(NAME).await.expect("read");
    sleep(RETRY * 2).await; // a renews meanwhile
    assert!(matches!(
        client.replace(NAME, &read).await,
        Err(StoreError::Conflict)
    ));
    drop(a);
}

#[test]
fn timings_that_could_let_two_replicas_lead_are_refused() {
    let s = Duration::from_secs;
    assert_eq!(Timings::new(s(15), s(10), s(2)), Ok(Timings::default()));
    assert_eq!(
        Timings::new(s(15), s(15), s(2)),
        Err(TimingError::RenewDeadline {
            renew_deadline: s(15),
            lease_duration: s(15)
        })
    );
    assert!(matches!(
        Timings::new(s(15), s(20), s(2)),
        Err(TimingError::RenewDeadline { .. })
    ));
    assert!(matches!(
        Timings::new(s(15), s(10), s(10)),
        Err(TimingError::RetryPeriod { .. })
    ));
    assert!(matches!(
        Timings::new(s(15), s(10), s(0)),
        Err(TimingError::RetryPeriod { .. })
    ));
    assert!(matches!(
        Timings::new(
            Duration::from_millis(900),
            Duration::from_millis(500),
            Duration::from_millis(100)
        ),
        Err(TimingError::LeaseTooShort { .. })
    ));
    let message = Timings::new(s(15), s(15), s(2))
        .expect_err("refused")
        .to_string();
    assert!(
        message.contains("renew deadline (15s) must be shorter than the lease duration (15s)"),
        "{message}"
    );
}

#[test]
fn a_fractional_lease_duration_is_written_rounded_up() {
    let ms = Duration::from_millis;
    let timings = Timings::new(ms(1_500), ms(1_000), ms(200)).expect("valid");
    assert_eq!(timings.lease_seconds(), 2);
    assert_eq!(Timings::default().lease_seconds(), 15);
}
