//! Where the Lease lives: the three calls the election makes (get, create, update: exactly the
//! verbs the chart's RBAC grants), behind a trait so the election can run against an in-memory
//! store in tests. Timeouts are the caller's business, not the store's.

use std::future::Future;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};

/// What a Lease store answered instead of a Lease.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// There is no Lease of that name.
    #[error("no such Lease")]
    NotFound,
    /// The write lost a race: the Lease exists already (create) or changed since it was read
    /// (update with a stale resourceVersion).
    #[error("the Lease changed since it was read (conflict)")]
    Conflict,
    /// Anything else: the API server refused or could not be reached.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// The calls the election makes on its Lease.
pub trait LeaseStore: Send + Sync {
    /// Reads the Lease `name`.
    fn get(&self, name: &str) -> impl Future<Output = Result<Lease, StoreError>> + Send;
    /// Creates `lease` (named in its metadata); `Conflict` when it exists already.
    fn create(&self, lease: &Lease) -> impl Future<Output = Result<Lease, StoreError>> + Send;
    /// Replaces the Lease `name` with `lease`, whose metadata carries the resourceVersion that
    /// was read: `Conflict` when the Lease changed since.
    fn replace(
        &self,
        name: &str,
        lease: &Lease,
    ) -> impl Future<Output = Result<Lease, StoreError>> + Send;
}

impl From<kube::Error> for StoreError {
    fn from(error: kube::Error) -> Self {
        match &error {
            kube::Error::Api(status) if status.code == 404 || status.is_not_found() => {
                StoreError::NotFound
            }
            // 409 is both AlreadyExists (create) and Conflict (stale update): someone else wrote.
            kube::Error::Api(status)
                if status.code == 409 || status.is_conflict() || status.is_already_exists() =>
            {
                StoreError::Conflict
            }
            _ => StoreError::Other(Box::new(error)),
        }
    }
}

impl LeaseStore for Api<Lease> {
    async fn get(&self, name: &str) -> Result<Lease, StoreError> {
        Ok(Api::get(self, name).await?)
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, StoreError> {
        Ok(Api::create(self, &PostParams::default(), lease).await?)
    }

    async fn replace(&self, name: &str, lease: &Lease) -> Result<Lease, StoreError> {
        // A PUT that carries `metadata.resourceVersion` is refused with 409 when it is stale.
        Ok(Api::replace(self, name, &PostParams::default(), lease).await?)
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, StatusCode};
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::core::Status;
    use serde_json::{json, Value};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::fixtures::{mock_client, Expect, Reply};
    use crate::leader::{Candidate, Timings};

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/kamera/leases/kamera-operator";

    fn api_error(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Status::failure("mock", reason).with_code(code).boxed())
    }

    #[test]
    fn api_answers_map_to_store_errors() {
        assert!(matches!(
            api_error(404, "NotFound").into(),
            StoreError::NotFound
        ));
        assert!(matches!(
            api_error(409, "Conflict").into(),
            StoreError::Conflict
        ));
        assert!(matches!(
            api_error(409, "AlreadyExists").into(),
            StoreError::Conflict
        ));
        assert!(matches!(
            api_error(500, "InternalError").into(),
            StoreError::Other(_)
        ));
    }

    fn lease(holder: Option<&str>, version: &str) -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "kamera-operator", "namespace": "kamera", "resourceVersion": version},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 1, "leaseTransitions": 2},
        })
    }

    fn expect(method: Method, reply: Reply) -> Expect {
        Expect {
            method,
            path: PATH.into(),
            reply,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn against_the_api_every_write_is_a_conditional_update_the_chart_allows() {
        let (client, server) = mock_client("kamera");
        let server = server.run(vec![
            expect(Method::GET, Reply::Json(lease(None, "41"))),
            expect(Method::PUT, Reply::Status(StatusCode::CONFLICT)),
            expect(Method::GET, Reply::Json(lease(None, "42"))),
            expect(Method::PUT, Reply::Echo),
            expect(Method::GET, Reply::Json(lease(Some("me"), "43"))),
            expect(Method::PUT, Reply::Echo),
        ]);
        let leases: Api<Lease> = Api::namespaced(client, "kamera");
        let candidate = Candidate::new(leases, "kamera-operator", "me", Timings::default());
        let leadership = candidate
            .acquire(&CancellationToken::new())
            .await
            .expect("leads");
        leadership.release().await;

        let received = server.await.expect("mock API server");
        let (lost_race, took, released) = (&received[1].body, &received[3].body, &received[5].body);
        assert_eq!(lost_race["metadata"]["resourceVersion"], "41");
        assert_eq!(took["metadata"]["resourceVersion"], "42");
        assert_eq!(took["spec"]["holderIdentity"], "me");
        assert_eq!(took["spec"]["leaseDurationSeconds"], 15);
        assert_eq!(took["spec"]["leaseTransitions"], 3);
        assert_eq!(released["metadata"]["resourceVersion"], "43");
        assert_eq!(released["spec"]["holderIdentity"], Value::Null);
        assert_eq!(released["spec"]["leaseDurationSeconds"], 1);
    }
}
