//! Test fixtures: a mock API server (`tower-test`) that expects an exact script of requests,
//! answers each like the API server would, and hands back what it received.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::Client;
use serde_json::Value;
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

use crate::controller::{Context, Settings};
use crate::crd::camera::Camera;
use crate::crd::processor::FrameProcessor;
use crate::metrics::Metrics;

/// How the mock answers one request.
pub enum Reply {
    /// Returns the request body (what an apply or create returns, near enough).
    Echo,
    /// Returns this object.
    Json(Value),
    /// Fails with this HTTP status.
    Status(StatusCode),
}

/// One request the reconciler must send next.
pub struct Expect {
    /// HTTP method.
    pub method: Method,
    /// URL path, without the query.
    pub path: String,
    /// The answer.
    pub reply: Reply,
}

impl Expect {
    /// A server-side apply (PATCH) to `path`, echoed back.
    pub fn apply(path: &str) -> Self {
        Expect {
            method: Method::PATCH,
            path: path.into(),
            reply: Reply::Echo,
        }
    }

    /// An Event created in `namespace`.
    pub fn event(namespace: &str) -> Self {
        Expect {
            method: Method::POST,
            path: format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events"),
            reply: Reply::Echo,
        }
    }

    /// A status patch answered with `object`.
    pub fn status(path: &str, object: Value) -> Self {
        Expect {
            method: Method::PATCH,
            path: path.into(),
            reply: Reply::Json(object),
        }
    }
}

/// A request as the mock received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// HTTP method.
    pub method: Method,
    /// URL path.
    pub path: String,
    /// URL query.
    pub query: String,
    /// Content type.
    pub content_type: String,
    /// JSON body (`Null` when empty).
    pub body: Value,
}

/// The API server side of a mocked client.
pub struct ApiServerVerifier(Handle<Request<Body>, Response<Body>>);

impl ApiServerVerifier {
    /// Serves `script` in order, asserting each request's method and path.
    pub fn run(self, script: Vec<Expect>) -> JoinHandle<Vec<Received>> {
        let mut handle = self.0;
        tokio::spawn(async move {
            let mut received = Vec::new();
            for expect in script {
                let (request, send) = handle.next_request().await.unwrap_or_else(|| {
                    panic!(
                        "expected {} {} but nothing came",
                        expect.method, expect.path
                    )
                });
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                let content_type = request
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                assert_eq!(
                    (&method, path.as_str()),
                    (&expect.method, expect.path.as_str()),
                    "unexpected request"
                );
                let bytes = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .expect("request body");
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).expect("JSON body")
                };
                let response = match expect.reply {
                    Reply::Echo => Response::builder().body(Body::from(bytes.to_vec())),
                    Reply::Json(v) => Response::builder().body(Body::from(serde_json::to_vec(&v).expect("json"))),
                    Reply::Status(code) => Response::builder().status(code).body(Body::from(
                        serde_json::to_vec(&serde_json::json!({
                            "kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "message": "mock failure", "reason": "InternalError", "code": code.as_u16()
                        }))
                        .expect("json"),
                    )),
                };
                send.send_response(response.expect("response"));
                received.push(Received {
                    method,
                    path,
                    query,
                    content_type,
                    body,
                });
            }
            received
        })
    }
}

/// A store holding `objects`, as a watch would have filled it.
pub fn store_of<K>(objects: Vec<K>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(o));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    reader
}

impl Context {
    /// A context whose client talks to the returned mock API server.
    pub fn test(
        cameras: Vec<Camera>,
        processors: Vec<FrameProcessor>,
    ) -> (Arc<Context>, ApiServerVerifier) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let reporter = Reporter {
            controller: "kamera-operator".into(),
            instance: Some("test".into()),
        };
        let ctx = Context {
            client: client.clone(),
            recorder: Recorder::new(client, reporter),
            metrics: Metrics::new().expect("metrics"),
            processors: store_of(processors),
            cameras: store_of(cameras),
            settings: Settings {
                worker_image: "kamera-worker:test".into(),
            },
        };
        (Arc::new(ctx), ApiServerVerifier(handle))
    }
}
