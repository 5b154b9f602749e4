//! The worker's Service: RTMP for publishers, HTTP for players and Prometheus.
//!
//! It routes to the worker pod whether or not the pod is Ready: a processor sidecar that crash
//! loops or is still pulling a large image makes the pod NotReady, and must not cut the
//! camera's publishers off. The worker only listens once it can take a stream.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::camera::{Camera, ServiceType};
use crate::reconcile::names::{labels, selector_labels, workload_name, HTTP_PORT, RTMP_PORT};
use crate::reconcile::{owner_references, CameraRef};

/// The Service named after the Camera.
pub fn build_service(camera: &Camera, at: &CameraRef) -> Service {
    let spec = &camera.spec.service;
    let annotations = (!spec.annotations.is_empty()).then(|| spec.annotations.clone());
    let node_port = match spec.type_ {
        ServiceType::ClusterIP => None,
        _ => spec.rtmp_node_port,
    };
    Service {
        metadata: ObjectMeta {
            name: Some(workload_name(&at.name)),
            namespace: Some(at.namespace.clone()),
            labels: Some(labels(&at.name)),
            annotations,
            owner_references: Some(owner_references(camera)),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(spec.type_.as_str().to_string()),
            selector: Some(selector_labels(&at.name)),
            publish_not_ready_addresses: Some(true),
            ports: Some(vec![
                ServicePort {
                    name: Some("rtmp".into()),
                    port: RTMP_PORT,
                    target_port: Some(IntOrString::String("rtmp".into())),
                    protocol: Some("TCP".into()),
                    node_port,
                    ..Default::default()
                },
                ServicePort {
                    name: Some("http".into()),
                    port: HTTP_PORT,
                    target_port: Some(IntOrString::String("http-metrics".into())),
                    protocol: Some("TCP".into()),
                    app_protocol: Some("http".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::test_camera;

    #[test]
    fn service_exposes_rtmp_and_http_for_the_camera_pod() {
        let cam = test_camera("front-door");
        let svc = build_service(&cam, &CameraRef::of(&cam).expect("named"));
        assert_eq!(svc.metadata.name.as_deref(), Some("front-door"));
        let spec = svc.spec.expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(spec.selector, Some(selector_labels("front-door")));
        assert_eq!(
            spec.publish_not_ready_addresses,
            Some(true),
            "a NotReady processor must not take the camera off its Service"
        );
        let ports: Vec<_> = spec
            .ports
            .expect("ports")
            .iter()
            .map(|p| (p.name.clone(), p.port, p.node_port))
            .collect();
        assert_eq!(
            ports,
            [
                (Some("rtmp".into()), 1935, None),
                (Some("http".into()), 8080, None)
            ]
        );
    }

    #[test]
    fn load_balancer_keeps_annotations_and_node_port() {
        let mut cam = test_camera("front-door");
        cam.spec.service.type_ = ServiceType::LoadBalancer;
        cam.spec.service.rtmp_node_port = Some(31935);
        cam.spec
            .service
            .annotations
            .insert("lb.example/internal".into(), "true".into());
        let svc = build_service(&cam, &CameraRef::of(&cam).expect("named"));
        assert_eq!(
            svc.metadata.annotations.expect("annotations")["lb.example/internal"],
            "true"
        );
        let spec = svc.spec.expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(spec.ports.expect("ports")[0].node_port, Some(31935));
    }
}
