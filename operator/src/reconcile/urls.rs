//! Where publishers and viewers connect, from the real Services: the load balancer's address
//! once the cloud assigned one, a node port (with a placeholder for the node's address), or the
//! in-cluster `.svc` name.

use k8s_openapi::api::core::v1::Service;

use crate::reconcile::names::{http_service_name, workload_name, HTTP_PORT, RTMP_PORT};
use crate::reconcile::CameraRef;

/// `rtmp://…/live/<camera>` (a publish key goes after it as `?key=…`).
pub fn ingest_url(at: &CameraRef, service: Option<&Service>) -> String {
    let host_port = reach(at, &workload_name(&at.name), service, RTMP_PORT);
    format!("rtmp://{host_port}/live/{}", at.name)
}

/// `http://…/hls/<camera>/index.m3u8`, or `https://` when the worker serves TLS.
pub fn playback_url(at: &CameraRef, service: Option<&Service>, tls: bool) -> String {
    let host_port = reach(at, &http_service_name(&at.name), service, HTTP_PORT);
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host_port}/hls/{}/index.m3u8", at.name)
}

/// `host:port` to reach `port` of the Service `name`.
fn reach(at: &CameraRef, name: &str, service: Option<&Service>, port: i32) -> String {
    let in_cluster = format!("{name}.{}.svc:{port}", at.namespace);
    let Some(service) = service else {
        return in_cluster;
    };
    let kind = service
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP");
    let node_port = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.port == port))
        .and_then(|p| p.node_port);
    let ingress = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|i| i.first())
        .and_then(|i| i.ip.clone().or_else(|| i.hostname.clone()));
    match (kind, ingress, node_port) {
        ("LoadBalancer", Some(address), _) if address.contains(':') => {
            format!("[{address}]:{port}")
        }
        ("LoadBalancer", Some(address), _) => format!("{address}:{port}"),
        ("NodePort", _, Some(node_port)) => format!("<node-address>:{node_port}"),
        // A load balancer not yet assigned: the in-cluster address works meanwhile.
        _ => in_cluster,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServicePort, ServiceSpec, ServiceStatus,
    };

    fn at() -> CameraRef {
        CameraRef {
            name: "gate".into(),
            namespace: "cams".into(),
        }
    }

    fn service(
        kind: &str,
        port: i32,
        node_port: Option<i32>,
        ingress: Option<LoadBalancerIngress>,
    ) -> Service {
        Service {
            spec: Some(ServiceSpec {
                type_: Some(kind.into()),
                ports: Some(vec![ServicePort {
                    port,
                    node_port,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: ingress.map(|i| ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![i]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_cluster_ip_service_is_reached_by_its_svc_name() {
        let svc = service("ClusterIP", 1935, None, None);
        assert_eq!(
            ingest_url(&at(), Some(&svc)),
            "rtmp://gate.cams.svc:1935/live/gate"
        );
        assert_eq!(
            playback_url(&at(), None, false),
            "http://gate-http.cams.svc:8080/hls/gate/index.m3u8"
        );
    }

    #[test]
    fn a_load_balancer_is_reached_by_its_assigned_address_once_there_is_one() {
        let pending = service("LoadBalancer", 1935, Some(31000), None);
        assert_eq!(
            ingest_url(&at(), Some(&pending)),
            "rtmp://gate.cams.svc:1935/live/gate"
        );
        let ip = service(
            "LoadBalancer",
            1935,
            Some(31000),
            Some(LoadBalancerIngress {
                ip: Some("203.0.113.7".into()),
                ..Default::default()
            }),
        );
        assert_eq!(
            ingest_url(&at(), Some(&ip)),
            "rtmp://203.0.113.7:1935/live/gate"
        );
        let name = service(
            "LoadBalancer",
            8080,
            None,
            Some(LoadBalancerIngress {
                hostname: Some("lb.example.com".into()),
                ..Default::default()
            }),
        );
        assert_eq!(
            playback_url(&at(), Some(&name), false),
            "http://lb.example.com:8080/hls/gate/index.m3u8"
        );
        assert_eq!(
            playback_url(&at(), Some(&name), true),
            "https://lb.example.com:8080/hls/gate/index.m3u8",
            "a worker with http.tls is played over HTTPS"
        );
    }

    #[test]
    fn a_node_port_says_which_port_and_that_any_node_address_will_do() {
        let svc = service("NodePort", 1935, Some(31935), None);
        assert_eq!(
            ingest_url(&at(), Some(&svc)),
            "rtmp://<node-address>:31935/live/gate"
        );
    }
}
