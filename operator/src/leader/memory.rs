//! An in-memory Lease store for the election tests: one Lease shared by every client, with a
//! resourceVersion that refuses stale and unversioned updates like the API server does, faults
//! per client (fail, hang, or seeded chaos with delays, lost answers and late writes), and a log
//! of every read answered and every write applied, with its instant.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use tokio::time::{sleep, Instant};

use super::{LeaseStore, StoreError};

/// A small seeded generator (xorshift64*), so chaos is random-ish and reproducible.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A duration in `0..max`, in whole milliseconds.
    pub fn upto(&mut self, max: Duration) -> Duration {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(self.below(ms))
    }
}

/// How a client's calls go wrong.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// They don't.
    None,
    /// Every call fails at once.
    Fail,
    /// Every call hangs forever, unapplied.
    Hang,
    /// Each call draws its fate; `percent` of calls go wrong one way or another.
    Chaos { rng: Rng, percent: u64 },
}

/// What the store saw, in order.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// When.
    pub at: Instant,
    /// Which client.
    pub client: String,
    /// A read (`write: false`, with the Lease it returned) or an applied write.
    pub write: bool,
    /// The Lease read or written (`None`: read of a missing Lease).
    pub lease: Option<Lease>,
}

#[derive(Default)]
struct State {
    lease: Option<Lease>,
    version: u64,
    log: Vec<Entry>,
}

/// The shared store.
#[derive(Clone, Default)]
pub(crate) struct Memory(Arc<Mutex<State>>);

/// One replica's connection to the store, with its own faults.
#[derive(Clone)]
pub(crate) struct Client {
    state: Memory,
    name: String,
    fault: Arc<Mutex<Fault>>,
}

/// Switches a client's faults.
#[derive(Clone)]
pub(crate) struct Faults(Arc<Mutex<Fault>>);

impl Faults {
    pub fn set(&self, fault: Fault) {
        *self.0.lock().expect("faults lock") = fault;
    }
}

/// What one call does.
#[derive(Debug, Default)]
struct Plan {
    before: Duration,
    after: Duration,
    fail: bool,
    hang_before: bool,
    hang_after: bool,
    late: Option<Duration>,
}

impl Memory {
    /// A client named `name` and the switch of its faults.
    pub fn client(&self, name: &str) -> (Client, Faults) {
        let fault = Arc::new(Mutex::new(Fault::None));
        let client = Client {
            state: self.clone(),
            name: name.to_owned(),
            fault: fault.clone(),
        };
        (client, Faults(fault))
    }

    /// Everything read and written so far.
    pub fn log(&self) -> Vec<Entry> {
        self.lock().log.clone()
    }

    /// The Lease as stored now.
    pub fn lease(&self) -> Option<Lease> {
        self.lock().lease.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().expect("store lock")
    }

    fn apply(&self, client: &str, op: &Op) -> Result<Lease, StoreError> {
        let mut state = self.lock();
        let at = Instant::now();
        let result = match op {
            Op::Get => {
                let lease = state.lease.clone();
                state.log.push(Entry {
                    at,
                    client: client.to_owned(),
                    write: false,
                    lease: lease.clone(),
                });
                return lease.ok_or(StoreError::NotFound);
            }
            Op::Create(lease) => {
                if lease.metadata.resource_version.is_some() {
                    Err(other(
                        "resourceVersion should not be set on objects to be created",
                    ))
                } else if state.lease.is_some() {
                    Err(StoreError::Conflict)
                } else {
                    Ok(lease)
                }
            }
            Op::Replace(name, lease) => match &state.lease {
                None => Err(StoreError::NotFound),
                Some(_) if lease.metadata.name.as_deref() != Some(name.as_str()) => {
                    Err(other("the name in the body differs from the URL"))
                }
                // The operator's updates must always be conditional.
                Some(_) if lease.metadata.resource_version.is_none() => {
                    Err(other("update without a resourceVersion"))
                }
                Some(current)
                    if current.metadata.resource_version != lease.metadata.resource_version =>
                {
                    Err(StoreError::Conflict)
                }
                Some(_) => Ok(lease),
            },
        };
        let mut stored = result?.clone();
        state.version += 1;
        stored.metadata.resource_version = Some(state.version.to_string());
        state.lease = Some(stored.clone());
        state.log.push(Entry {
            at,
            client: client.to_owned(),
            write: true,
            lease: Some(stored.clone()),
        });
        Ok(stored)
    }
}

fn other(message: &str) -> StoreError {
    StoreError::Other(message.into())
}

enum Op {
    Get,
    Create(Lease),
    Replace(String, Lease),
}

impl Client {
    fn plan(&self) -> Plan {
        let mut fault = self.fault.lock().expect("faults lock");
        match &mut *fault {
            Fault::None => Plan::default(),
            Fault::Fail => Plan {
                fail: true,
                ..Plan::default()
            },
            Fault::Hang => Plan {
                hang_before: true,
                ..Plan::default()
            },
            Fault::Chaos { rng, percent } => {
                let mut plan = Plan {
                    before: rng.upto(Duration::from_millis(400)),
                    after: rng.upto(Duration::from_millis(400)),
                    ..Plan::default()
                };
                if rng.below(100) < *percent {
                    match rng.below(5) {
                        0 => plan.fail = true,
                        1 => plan.hang_before = true,
                        // Applied, but the answer never comes.
                        2 => plan.hang_after = true,
                        // Slow: answered after the caller may have given up (then never applied).
                        3 => plan.before = Duration::from_millis(1_000 + rng.below(3_000)),
                        // The server applies it long after the caller gave up.
                        _ => plan.late = Some(Duration::from_millis(2_000 + rng.below(6_000))),
                    }
                }
                plan
            }
        }
    }

    async fn call(&self, op: Op) -> Result<Lease, StoreError> {
        let plan = self.plan();
        sleep(plan.before).await;
        if plan.fail {
            return Err(other("injected failure"));
        }
        if plan.hang_before {
            return std::future::pending().await;
        }
        if let Some(delay) = plan.late {
            let (state, name) = (self.state.clone(), self.name.clone());
            tokio::spawn(async move {
                sleep(delay).await;
                let _ = state.apply(&name, &op);
            });
            return std::future::pending().await;
        }
        let result = self.state.apply(&self.name, &op);
        if plan.hang_after {
            return std::future::pending().await;
        }
        sleep(plan.after).await;
        result
    }
}

impl LeaseStore for Client {
    async fn get(&self, _name: &str) -> Result<Lease, StoreError> {
        self.call(Op::Get).await
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, StoreError> {
        self.call(Op::Create(lease.clone())).await
    }

    async fn replace(&self, name: &str, lease: &Lease) -> Result<Lease, StoreError> {
        self.call(Op::Replace(name.to_owned(), lease.clone())).await
    }
}
