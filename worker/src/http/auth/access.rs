//! Which scope each HTTP path needs: the one table of the worker's access policy.
//!
//! The table reads the raw request path, as axum's router matches it. A path it does not know
//! is refused to every token ([`Access::Unlisted`]): a route added without a line here fails
//! closed, and its end-to-end test says so at once.

use super::tokens::Need;

/// What a request path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// Anyone: metrics, health, and the static shell of the index page and hls.js (plus
    /// `favicon.ico`, which browsers ask for on their own and which does not exist).
    Open,
    /// A token holding this scope.
    Scope(Need<'a>),
    /// No token opens it.
    Unlisted,
}

/// The access rule for `path` (without the query).
///
/// Camera names are compared as they appear in the path. A percent-encoded name (which axum
/// would decode) never equals a scope's camera, whose alphabet has no `%`, so an encoded path
/// can only be refused, never let through under another camera's scope.
pub fn access(path: &str) -> Access<'_> {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    match segments.as_slice() {
        ["metrics"] | ["healthz"] | ["readyz"] | [""] | ["favicon.ico"] => Access::Open,
        ["assets", "hls.min.js" | "kamera-live.js"] => Access::Open,
        ["hls", camera, file] if !file.is_empty() => live(camera),
        ["cameras", camera] => live(camera),
        ["frames", camera, file] if !file.is_empty() => live(camera),
        ["recordings"] | ["recordings", ""] => Access::Scope(Need::Recordings(None)),
        ["recordings", camera, ..] if !camera.is_empty() => {
            Access::Scope(Need::Recordings(Some(camera)))
        }
        ["api", ..] => Access::Scope(Need::Api),
        _ => Access::Unlisted,
    }
}

fn live(camera: &str) -> Access<'_> {
    if camera.is_empty() {
        Access::Unlisted
    } else {
        Access::Scope(Need::Live(camera))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_health_and_static_assets_are_open() {
        for path in [
            "/metrics",
            "/healthz",
            "/readyz",
            "/",
            "/assets/hls.min.js",
            "/assets/kamera-live.js",
            "/favicon.ico",
        ] {
            assert_eq!(access(path), Access::Open, "{path}");
        }
    }

    #[test]
    fn everything_a_viewer_of_one_camera_sees_needs_live_for_that_camera() {
        for path in [
            "/hls/lobby/index.m3u8",
            "/hls/lobby/stream.m3u8",
            "/hls/lobby/init-1.mp4",
            "/hls/lobby/seg4.m4s",
            "/hls/lobby/part4.2.m4s",
            "/cameras/lobby",
            "/frames/lobby/latest.jpg",
        ] {
            assert_eq!(access(path), Access::Scope(Need::Live("lobby")), "{path}");
        }
    }

    #[test]
    fn recordings_need_the_recordings_scope_of_their_camera() {
        assert_eq!(access("/recordings"), Access::Scope(Need::Recordings(None)));
        assert_eq!(
            access("/recordings/"),
            Access::Scope(Need::Recordings(None))
        );
        for path in [
            "/recordings/lobby",
            "/recordings/lobby/",
            "/recordings/lobby/2026-01-01/lobby-20260101T000000Z.mp4",
        ] {
            assert_eq!(
                access(path),
                Access::Scope(Need::Recordings(Some("lobby"))),
                "{path}"
            );
        }
    }

    #[test]
    fn the_api_needs_the_api_scope() {
        for path in [
            "/api/cameras",
            "/api/cameras/lobby",
            "/api/cameras/lobby/detections",
        ] {
            assert_eq!(access(path), Access::Scope(Need::Api), "{path}");
        }
    }

    #[test]
    fn unknown_and_odd_paths_are_unlisted() {
        for path in [
            "",
            "/nope",
            "/metrics/",
            "/hls/lobby",
            "/hls//index.m3u8",
            "/hls/lobby/",
            "/hls/lobby/../garage/index.m3u8",
            "/cameras/",
            "/cameras/lobby/x",
            "/frames/lobby",
            "/recordings//x",
            "/HLS/lobby/index.m3u8",
        ] {
            assert_eq!(access(path), Access::Unlisted, "{path}");
        }
    }

    #[test]
    fn an_encoded_camera_name_is_not_the_camera_it_decodes_to() {
        assert_eq!(
            access("/hls/l%6Fbby/index.m3u8"),
            Access::Scope(Need::Live("l%6Fbby"))
        );
        assert_ne!(
            access("/hls/l%6Fbby/index.m3u8"),
            Access::Scope(Need::Live("lobby"))
        );
    }
}
