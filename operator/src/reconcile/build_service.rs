//! The camera's two Services. `<camera>` carries RTMP (1935) only and may be exposed for cameras
//! outside the cluster; `<camera>-http` carries LL-HLS, frames, recordings, the API and metrics
//! (8080) and stays inside the cluster unless the Camera asks, with viewer tokens, to expose it.
//!
//! Both route to the worker pod whether or not the pod is Ready: a processor sidecar that crash
//! loops or is still pulling a large image makes the pod NotReady, and must not cut the
//! camera's publishers and viewers off. The worker only listens once it can take a stream.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::crd::camera::{Camera, ExposureSpec, ServiceType};
use crate::reconcile::names::{
    http_port_name, http_service_name, labels, selector_labels, workload_name, HTTP_PORT, RTMP_PORT,
};
use crate::reconcile::{owner_references, CameraRef};

/// The RTMP Service, named after the Camera.
pub fn build_ingest_service(camera: &Camera, at: &CameraRef) -> Service {
    let port = ServicePort {
        name: Some("rtmp".into()),
        port: RTMP_PORT,
        target_port: Some(IntOrString::String("rtmp".into())),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    build(
        camera,
        at,
        workload_name(&at.name),
        &camera.spec.ingest_exposure(),
        port,
    )
}

/// The HTTP Service, `<camera>-http`.
pub fn build_http_service(camera: &Camera, at: &CameraRef) -> Service {
    let tls = camera.spec.http.tls.is_some();
    let scheme = if tls { "https" } else { "http" };
    let port = ServicePort {
        name: Some(scheme.into()),
        port: HTTP_PORT,
        target_port: Some(IntOrString::String(http_port_name(tls).into())),
        protocol: Some("TCP".into()),
        app_protocol: Some(scheme.into()),
        ..Default::default()
    };
    build(
        camera,
        at,
        http_service_name(&at.name),
        &camera.spec.http_exposure(),
        port,
    )
}

fn build(
    camera: &Camera,
    at: &CameraRef,
    name: String,
    exposure: &ExposureSpec,
    mut port: ServicePort,
) -> Service {
    let external = exposure.type_ != ServiceType::ClusterIP;
    let load_balancer = exposure.type_ == ServiceType::LoadBalancer;
    port.node_port = exposure.node_port.filter(|_| external);
    let annotations = (!exposure.annotations.is_empty()).then(|| exposure.annotations.clone());
    Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(at.namespace.clone()),
            labels: Some(labels(&at.name)),
            annotations,
            owner_references: Some(owner_references(camera)),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(exposure.type_.as_str().to_string()),
            selector: Some(selector_labels(&at.name)),
            publish_not_ready_addresses: Some(true),
            ports: Some(vec![port]),
            load_balancer_source_ranges: (load_balancer
                && !exposure.load_balancer_source_ranges.is_empty())
            .then(|| exposure.load_balancer_source_ranges.clone()),
            load_balancer_class: exposure
                .load_balancer_class
                .clone()
                .filter(|_| load_balancer),
            external_traffic_policy: exposure
                .external_traffic_policy
                .filter(|_| external)
                .map(|p| p.as_str().to_string()),
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::camera::{HttpSpec, ServiceSpec as LegacyService, TrafficPolicy};
    use crate::reconcile::test_camera;

    fn ports(svc: &Service) -> Vec<(Option<String>, i32, Option<i32>)> {
        svc.spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default()
            .iter()
            .map(|p| (p.name.clone(), p.port, p.node_port))
            .collect()
    }

    fn type_of(svc: &Service) -> Option<String> {
        svc.spec.as_ref().and_then(|s| s.type_.clone())
    }

    #[test]
    fn by_default_both_services_stay_inside_the_cluster() {
        let cam = test_camera("front-door");
        let at = CameraRef::of(&cam).expect("named");
        let rtmp = build_ingest_service(&cam, &at);
        let http = build_http_service(&cam, &at);
        assert_eq!(rtmp.metadata.name.as_deref(), Some("front-door"));
        assert_eq!(http.metadata.name.as_deref(), Some("front-door-http"));
        assert_eq!(type_of(&rtmp).as_deref(), Some("ClusterIP"));
        assert_eq!(type_of(&http).as_deref(), Some("ClusterIP"));
        assert_eq!(ports(&rtmp), [(Some("rtmp".into()), 1935, None)]);
        assert_eq!(ports(&http), [(Some("http".into()), 8080, None)]);
        for svc in [&rtmp, &http] {
            let spec = svc.spec.as_ref().expect("spec");
            assert_eq!(spec.selector, Some(selector_labels("front-door")));
            assert_eq!(
                spec.publish_not_ready_addresses,
                Some(true),
                "a NotReady processor must not take the camera off its Service"
            );
        }
    }

    #[test]
    fn an_exposed_ingest_carries_only_rtmp_with_its_source_ranges() {
        let mut cam = test_camera("parking-lot");
        cam.spec.ingest.service = Some(ExposureSpec {
            type_: ServiceType::LoadBalancer,
            load_balancer_source_ranges: vec!["203.0.113.0/24".into()],
            load_balancer_class: Some("service.k8s.aws/nlb".into()),
            external_traffic_policy: Some(TrafficPolicy::Local),
            node_port: Some(31935),
            annotations: [("lb.example/internal".to_string(), "true".to_string())].into(),
        });
        let at = CameraRef::of(&cam).expect("named");
        let rtmp = build_ingest_service(&cam, &at);
        let spec = rtmp.spec.as_ref().expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(ports(&rtmp), [(Some("rtmp".into()), 1935, Some(31935))]);
        assert_eq!(
            spec.load_balancer_source_ranges,
            Some(vec!["203.0.113.0/24".to_string()])
        );
        assert_eq!(
            spec.load_balancer_class.as_deref(),
            Some("service.k8s.aws/nlb")
        );
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
        let http = build_http_service(&cam, &at);
        assert_eq!(
            type_of(&http).as_deref(),
            Some("ClusterIP"),
            "HTTP is not exposed with RTMP"
        );
    }

    #[test]
    fn the_deprecated_service_field_exposes_rtmp_only() {
        let mut cam = test_camera("front-door");
        cam.spec.service = Some(LegacyService {
            type_: ServiceType::NodePort,
            rtmp_node_port: Some(31000),
            ..Default::default()
        });
        let at = CameraRef::of(&cam).expect("named");
        let rtmp = build_ingest_service(&cam, &at);
        assert_eq!(type_of(&rtmp).as_deref(), Some("NodePort"));
        assert_eq!(ports(&rtmp), [(Some("rtmp".into()), 1935, Some(31000))]);
        assert_eq!(
            type_of(&build_http_service(&cam, &at)).as_deref(),
            Some("ClusterIP")
        );
    }

    #[test]
    fn the_parking_lot_example_exposes_rtmp_to_its_site_and_keeps_http_inside() {
        let text = include_str!("../../../examples/cameras/parking-lot.yaml");
        let cam: Camera = serde_saphyr::from_str(text).expect("the example parses");
        let mut cam = cam;
        cam.metadata.namespace = Some("cams".into());
        let at = CameraRef::of(&cam).expect("named");
        let rtmp = build_ingest_service(&cam, &at);
        assert_eq!(type_of(&rtmp).as_deref(), Some("LoadBalancer"));
        assert_eq!(ports(&rtmp).len(), 1, "RTMP only");
        assert!(rtmp
            .spec
            .as_ref()
            .and_then(|s| s.load_balancer_source_ranges.as_ref())
            .is_some_and(|r| !r.is_empty()));
        assert_eq!(
            type_of(&build_http_service(&cam, &at)).as_deref(),
            Some("ClusterIP"),
            "live video and recordings are not on the internet"
        );
        assert!(cam.spec.http.tokens_secret_ref.is_some());
    }

    #[test]
    fn http_is_exposed_only_when_asked() {
        let mut cam = test_camera("lobby");
        cam.spec.http = HttpSpec {
            service: Some(ExposureSpec {
                type_: ServiceType::LoadBalancer,
                ..Default::default()
            }),
            ..Default::default()
        };
        let at = CameraRef::of(&cam).expect("named");
        assert_eq!(
            type_of(&build_http_service(&cam, &at)).as_deref(),
            Some("LoadBalancer")
        );
        assert_eq!(
            type_of(&build_ingest_service(&cam, &at)).as_deref(),
            Some("ClusterIP")
        );
    }
}
