//! Status of Cameras and FrameProcessors: `metav1.Condition`s that keep their transition time
//! while unchanged, so that a reconcile with nothing new writes nothing new.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// The Camera's worker is running (or scaled to zero on purpose).
pub const READY: &str = "Ready";
/// Every attached processor runs as a sidecar.
pub const PROCESSORS_READY: &str = "ProcessorsReady";
/// A publisher is connected and sends a stream Kamera can use.
pub const INGESTING: &str = "Ingesting";
/// The recordings claim is there and bound (or recording is off).
pub const RECORDING: &str = "Recording";

/// A condition as the reconciler computes it, before transition times are settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    /// Condition type, e.g. `Ready`.
    pub type_: &'static str,
    /// `True` or `False`.
    pub ok: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human message.
    pub message: String,
}

impl Cond {
    /// A condition that holds.
    pub fn yes(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Cond {
            type_,
            ok: true,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// A condition that does not hold.
    pub fn no(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Cond {
            type_,
            ok: false,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Turns computed conditions into `metav1.Condition`s, keeping `lastTransitionTime` from
/// `previous` where the status did not flip.
pub fn settle_conditions(
    previous: &[Condition],
    computed: &[Cond],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    computed
        .iter()
        .map(|c| {
            let status = if c.ok { "True" } else { "False" };
            let since = previous
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: c.type_.to_string(),
                status: status.to_string(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// The condition of a type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let t0 = Timestamp::from_second(1_000).expect("valid");
        let t1 = Timestamp::from_second(2_000).expect("valid");
        let first = settle_conditions(
            &[],
            &[Cond::yes(READY, "WorkerAvailable", "up")],
            Some(1),
            t0,
        );
        let again = settle_conditions(
            &first,
            &[Cond::yes(READY, "WorkerAvailable", "up")],
            Some(1),
            t1,
        );
        assert_eq!(first, again);
        let flipped = settle_conditions(
            &again,
            &[Cond::no(READY, "WorkerStarting", "down")],
            Some(1),
            t1,
        );
        assert_eq!(flipped[0].last_transition_time, Time(t1));
        assert_eq!(flipped[0].status, "False");
    }
}
