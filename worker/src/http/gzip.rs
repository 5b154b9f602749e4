//! gzip for playlists: a client that sends `Accept-Encoding: gzip` gets M3U8 responses
//! compressed (they repeat the same tags and URIs hundreds of times, and are refetched several
//! times a second by every low-latency viewer). Media (init, segments, parts, JPEG, MP4) is
//! already compressed and passes through untouched. It wraps the viewer-auth layer, so a token
//! is carried into the playlist before it is compressed.
//!
//! Playlists are a few kilobytes (bounded by `MAX_PLAYLIST_BYTES`); compressing one takes
//! microseconds, so it runs inline rather than on a blocking thread.

use std::io::Write;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use flate2::write::GzEncoder;
use flate2::Compression;
use tracing::warn;

use super::json_error;

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// Larger bodies are not playlists this worker writes; refuse rather than buffer them.
const MAX_PLAYLIST_BYTES: usize = 4 << 20;

/// Whether `Accept-Encoding` admits gzip (`gzip`, `x-gzip` or `*`, with a non-zero q-value).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut fields = item.split(';').map(str::trim);
            let coding = fields.next().unwrap_or_default().to_ascii_lowercase();
            let q_zero = fields.any(|f| {
                f.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            matches!(coding.as_str(), "gzip" | "x-gzip" | "*") && !q_zero
        })
}

fn is_playlist(response: &Response) -> bool {
    response.status().is_success()
        && !response.headers().contains_key(header::CONTENT_ENCODING)
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(PLAYLIST_TYPE))
}

/// gzip-compresses `data` (level 6, the usual balance for text served live).
pub fn compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), Compression::new(6));
    encoder.write_all(data)?;
    encoder.finish()
}

/// Middleware: compresses playlist responses for clients that accept gzip; every playlist
/// response says `Vary: Accept-Encoding`, so a cache keeps the two forms apart.
pub async fn playlists(request: Request, next: Next) -> Response {
    let gzip = accepts_gzip(request.headers());
    let response = next.run(request).await;
    if !is_playlist(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    parts
        .headers
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if !gzip {
        return Response::from_parts(parts, body);
    }
    let compressed = match axum::body::to_bytes(body, MAX_PLAYLIST_BYTES).await {
        Ok(bytes) => compress(&bytes),
        Err(e) => Err(std::io::Error::other(e)),
    };
    match compressed {
        Ok(data) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            parts
                .headers
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            Response::from_parts(parts, Body::from(data))
        }
        Err(e) => {
            warn!(error = %e, "cannot compress a playlist");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "playlist unavailable")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;
    use axum::http::{header, HeaderMap, HeaderValue};

    fn accepts(value: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("header"),
        );
        accepts_gzip(&h)
    }

    #[test]
    fn accept_encoding_is_read_as_rfc_9110_says() {
        assert!(accepts("gzip"));
        assert!(accepts("br, gzip;q=0.5"));
        assert!(accepts("GZIP"));
        assert!(accepts("*"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("br, deflate"));
        assert!(!accepts("identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
