//! What `kubectl get cam` shows: the CRD's printer columns evaluated against a Camera status the
//! way kubectl does (JSONPath, priority 0 for the plain table, all for `-o wide`), rendered as
//! kubectl renders a table, and checked against the table the quick start shows.

use kamera_operator::crd::camera::{Camera, CameraSpec, CameraStatus};
use kamera_operator::crd::crds;
use serde_json::Value;

/// The value at a printer column's JSONPath: `.a.b` and `.a[?(@.k=="v")].b`.
fn at_path(object: &Value, path: &str) -> Option<Value> {
    let mut node = object.clone();
    let mut rest = path.trim_start_matches('.');
    while !rest.is_empty() {
        let (segment, tail) = match rest.find(['.', '[']) {
            Some(0) => ("", rest),
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !segment.is_empty() {
            node = node.get(segment)?.clone();
        }
        rest = tail;
        if let Some(filter) = rest.strip_prefix("[?(@.") {
            let end = filter.find(")]")?;
            let (key, value) = filter[..end].split_once("==")?;
            let value = value.trim_matches('"');
            node = node
                .as_array()?
                .iter()
                .find(|item| item.get(key).and_then(Value::as_str) == Some(value))?
                .clone();
            rest = &filter[end + 2..];
        }
        rest = rest.trim_start_matches('.');
    }
    Some(node)
}

/// kubectl's rendering of a cell.
fn cell(value: Option<Value>) -> String {
    match value {
        None | Some(Value::Null) => "<none>".into(),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

/// `kubectl get cam` (or `-o wide`) for these Cameras; `age` stands in for the Age column.
fn table(cameras: &[Camera], wide: bool, age: &str) -> String {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "Camera")
        .expect("Camera CRD");
    let columns: Vec<_> = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| wide || c.priority.unwrap_or(0) == 0)
        .collect();
    let mut rows = vec![std::iter::once("NAME".to_string())
        .chain(columns.iter().map(|c| c.name.to_uppercase()))
        .collect::<Vec<_>>()];
    for camera in cameras {
        let object = serde_json::to_value(camera).expect("json");
        let mut row = vec![camera.metadata.name.clone().unwrap_or_default()];
        for c in &columns {
            row.push(if c.type_ == "date" {
                age.to_string()
            } else {
                cell(at_path(&object, &c.json_path))
            });
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:<w$}"))
                .collect::<Vec<_>>()
                .join("   ")
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn live_front_door() -> Camera {
    let mut cam = Camera::new("front-door", CameraSpec::default());
    cam.metadata.namespace = Some("cams".into());
    let status: CameraStatus = serde_json::from_value(serde_json::json!({
        "live": true, "resolution": "1920x1080", "fps": 25.0, "bitrate": 4_012_000,
        "processorSummary": "0/0",
        "ingestUrl": "rtmp://front-door.cams.svc:1935/live/front-door",
        "conditions": [{"type": "Ready", "status": "True", "reason": "WorkerReady",
                        "message": "", "lastTransitionTime": "2026-12-01T10:00:00Z"}],
    }))
    .expect("fixture status");
    cam.status = Some(status);
    cam
}

#[test]
fn kubectl_get_cam_shows_live_resolution_fps_processors_and_ready() {
    let plain = table(&[live_front_door()], false, "2m");
    assert_eq!(
        plain,
        "NAME         LIVE   RESOLUTION   FPS   PROCESSORS   READY   AGE\n\
         front-door   true   1920x1080    25    0/0          True    2m"
    );
    let wide = table(&[live_front_door()], true, "2m");
    assert!(wide.starts_with("NAME         LIVE   RESOLUTION   FPS   PROCESSORS   READY   AGE   BITRATE   INGEST URL"), "{wide}");
    assert!(
        wide.ends_with("4012000   rtmp://front-door.cams.svc:1935/live/front-door"),
        "{wide}"
    );
}

#[test]
fn a_camera_without_status_shows_none_not_stale_values() {
    let mut cam = Camera::new("yard", CameraSpec::default());
    cam.metadata.namespace = Some("cams".into());
    let plain = table(&[cam], false, "5s");
    assert!(
        plain.ends_with("yard   <none>   <none>       <none>   <none>       <none>   5s"),
        "{plain}"
    );
}

#[test]
fn the_quick_start_shows_the_table_kubectl_prints() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/quickstart.md"),
    )
    .expect("quick start");
    for (wide, command) in [
        (false, "$ kubectl get cam\n"),
        (true, "$ kubectl get cam -o wide\n"),
    ] {
        let shown = doc.split(command).nth(1).expect("the command is shown");
        let shown: Vec<&str> = shown.lines().take(2).collect();
        let rendered = table(&[live_front_door()], wide, "2m");
        assert_eq!(
            shown.join("\n"),
            rendered,
            "docs/quickstart.md after {command:?}"
        );
    }
}
