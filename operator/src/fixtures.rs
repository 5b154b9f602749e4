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
                rbac::assert_permitted(&method, &path, &query);
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

/// A client that talks to the returned mock API server.
pub fn mock_client(namespace: &str) -> (Client, ApiServerVerifier) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, namespace), ApiServerVerifier(handle))
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

/// Every request the operator makes in these tests must be allowed by the chart's RBAC table
/// (`charts/kamera/files/rbac.yaml`), the one list the chart renders its roles from.
pub mod rbac {
    use http::Method;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Rule {
        #[serde(rename = "apiGroups")]
        api_groups: Vec<String>,
        resources: Vec<String>,
        verbs: Vec<String>,
    }

    #[derive(Deserialize)]
    struct Table {
        watched: Vec<Rule>,
        #[serde(rename = "leaderElection")]
        leader_election: Vec<Rule>,
    }

    const TABLE: &str = include_str!("../../charts/kamera/files/rbac.yaml");

    /// (API group, resource[/subresource], verb) of a request to the Kubernetes API.
    pub fn request_rule(method: &Method, path: &str, query: &str) -> (String, String, String) {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, rest) = match parts.as_slice() {
            ["api", _version, rest @ ..] => (String::new(), rest),
            ["apis", group, _version, rest @ ..] => ((*group).to_string(), rest),
            _ => panic!("not a Kubernetes API path: {path}"),
        };
        let rest = match rest {
            ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
            other => other,
        };
        let (resource, named) = match rest {
            [resource] => ((*resource).to_string(), false),
            [resource, _name] => ((*resource).to_string(), true),
            [resource, _name, sub] => (format!("{resource}/{sub}"), true),
            _ => panic!("unexpected API path {path}"),
        };
        let verb = match (method.as_str(), named) {
            ("GET", true) => "get",
            ("GET", false) if query.contains("watch=true") => "watch",
            ("GET", false) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            (other, _) => panic!("unexpected method {other}"),
        };
        (group, resource, verb.to_string())
    }

    pub fn assert_permitted(method: &Method, path: &str, query: &str) {
        let table: Table =
            serde_saphyr::from_str(TABLE).expect("charts/kamera/files/rbac.yaml parses");
        let (group, resource, verb) = request_rule(method, path, query);
        let allowed = table.watched.iter().chain(&table.leader_election).any(|r| {
            r.api_groups.contains(&group)
                && r.resources.contains(&resource)
                && r.verbs.contains(&verb)
        });
        assert!(
            allowed,
            "{method} {path} needs {verb} on {group:?}/{resource}, which charts/kamera/files/rbac.yaml does not grant"
        );
    }

    #[test]
    fn request_paths_map_to_rbac_rules() {
        let rule = |m: Method, p: &str, q: &str| request_rule(&m, p, q);
        assert_eq!(
            rule(
                Method::PATCH,
                "/apis/apps/v1/namespaces/cams/deployments/front-door",
                ""
            ),
            ("apps".into(), "deployments".into(), "patch".into())
        );
        assert_eq!(
            rule(
                Method::PATCH,
                "/apis/kamera.dev/v1alpha1/namespaces/cams/cameras/a/status",
                ""
            ),
            ("kamera.dev".into(), "cameras/status".into(), "patch".into())
        );
        assert_eq!(
            rule(
                Method::GET,
                "/api/v1/secrets",
                "watch=true&resourceVersion=1"
            ),
            (String::new(), "secrets".into(), "watch".into())
        );
        assert_eq!(
            rule(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/cams/events",
                ""
            ),
            ("events.k8s.io".into(), "events".into(), "create".into())
        );
    }
}
