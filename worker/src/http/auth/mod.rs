//! Viewer authentication (`--http-tokens-file`): who may watch, replay and query what.
//!
//! A request presents a token as `Authorization: Bearer <token>` or as a `token` query
//! parameter; [`access::access`] says what its path needs, the token's [`tokens::Grant`]
//! says whether it has it. A playlist fetched with `?token=` gets the token into every URI it
//! lists ([`playlist::with_token`]), so native players keep working. The tokens file is
//! re-read while the worker runs ([`TokensFile::watch`]); a broken file keeps the last good
//! tokens. Media stages know nothing of this: the middleware wraps the finished router.

pub(crate) mod access;
pub mod playlist;
pub mod tokens;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{IntCounterVec, IntGauge, Opts};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use self::access::Access;
use self::tokens::{Need, Tokens};
use super::json_error;
use crate::metrics::Families;

/// How often the tokens file is re-read. Reading a small file costs next to nothing, and
/// comparing contents (not mtimes) sees a Kubernetes Secret swapped in by symlink too.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// A tokens file larger than this is refused rather than read.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Playlists are a few kilobytes; this only guards the rewrite's buffer.
const MAX_PLAYLIST_BYTES: usize = 4 << 20;
const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const CHALLENGE: &str = "Bearer realm=\"kamera\"";

/// Why the tokens file cannot be used at start.
#[derive(Debug, thiserror::Error)]
pub enum TokensFileError {
    #[error("cannot read the viewer tokens file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("the viewer tokens file {path} is invalid: {source}")]
    Invalid {
        path: PathBuf,
        source: tokens::ParseError,
    },
    #[error("registering the viewer auth metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// `kamera_http_auth_denied_total` and `kamera_http_tokens_file_valid` (docs/metrics.md).
#[derive(Clone)]
struct AuthMetrics {
    denied: IntCounterVec,
    file_valid: IntGauge,
}

impl AuthMetrics {
    fn register(registry: &Families) -> Result<Self, prometheus::Error> {
        let m = Self {
            denied: IntCounterVec::new(
                Opts::new(
                    "kamera_http_auth_denied_total",
                    "HTTP requests refused by viewer authentication (missing_token, unknown_token, insufficient_scope)",
                ),
                &["reason"],
            )?,
            file_valid: IntGauge::new(
                "kamera_http_tokens_file_valid",
                "1 while the viewer tokens file as it is now is in use; 0 while it is unreadable or invalid and the last good tokens are kept",
            )?,
        };
        registry.register(Box::new(m.denied.clone()))?;
        registry.register(Box::new(m.file_valid.clone()))?;
        Ok(m)
    }
}

/// The tokens in force, shared by every request.
pub struct ViewerAuth {
    tokens: watch::Receiver<Arc<Tokens>>,
    metrics: AuthMetrics,
}

/// The tokens file and its reloading.
pub struct TokensFile {
    path: PathBuf,
    current: watch::Sender<Arc<Tokens>>,
    seen: Seen,
    metrics: AuthMetrics,
}

impl TokensFile {
    /// Reads and parses the file; there is no last good file to fall back on, so any problem
    /// is an error (the worker refuses to start rather than serve without the tokens).
    pub fn load(path: &Path, registry: &Families) -> Result<Self, TokensFileError> {
        let bytes = read_limited(path).map_err(|reason| TokensFileError::Read {
            path: path.to_path_buf(),
            reason,
        })?;
        let tokens = parse_bytes(&bytes).map_err(|source| match source {
            Parsed::NotText => TokensFileError::Read {
                path: path.to_path_buf(),
                reason: "not UTF-8 text".into(),
            },
            Parsed::Invalid(source) => TokensFileError::Invalid {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let metrics = AuthMetrics::register(registry)?;
        metrics.file_valid.set(1);
        Ok(Self {
            path: path.to_path_buf(),
            current: watch::channel(Arc::new(tokens)).0,
            seen: Seen::Content(bytes),
            metrics,
        })
    }

    /// Number of tokens in force.
    pub fn len(&self) -> usize {
        self.current.borrow().len()
    }

    /// True when no token is in force.
    pub fn is_empty(&self) -> bool {
        self.current.borrow().is_empty()
    }

    /// The view of the tokens the HTTP middleware checks against; follows every reload.
    pub fn viewer_auth(&self) -> Arc<ViewerAuth> {
        Arc::new(ViewerAuth {
            tokens: self.current.subscribe(),
            metrics: self.metrics.clone(),
        })
    }

    /// Re-reads the file every `every` until `shutdown`, applying each valid change.
    pub async fn watch(mut self, every: Duration, shutdown: CancellationToken) {
        let path = self.path.clone();
        super::reload::poll(every, shutdown, move || read_limited(&path), |read| {
            match self.seen.observe(read) {
                Change::None => {}
                Change::Apply(tokens) => {
                    info!(file = %self.path.display(), tokens = tokens.len(), "viewer tokens reloaded");
                    self.metrics.file_valid.set(1);
                    self.current.send_replace(Arc::new(tokens));
                }
                Change::Refuse(reason) => {
                    warn!(file = %self.path.display(), error = %reason, "viewer tokens file not applied; keeping the last good tokens");
                    self.metrics.file_valid.set(0);
                }
            }
        })
        .await;
    }
}

/// Reads at most [`MAX_FILE_BYTES`] of `path`; the error says why, without the path.
fn read_limited(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    Ok(bytes)
}

enum Parsed {
    NotText,
    Invalid(tokens::ParseError),
}

fn parse_bytes(bytes: &[u8]) -> Result<Tokens, Parsed> {
    let text = std::str::from_utf8(bytes).map_err(|_| Parsed::NotText)?;
    tokens::parse(text).map_err(Parsed::Invalid)
}

/// What the file looked like at the last look, good or bad: a change is acted on (and a
/// problem logged) once, not at every poll.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Content(Vec<u8>),
    Unreadable(String),
}

#[derive(Debug)]
enum Change {
    None,
    Apply(Tokens),
    Refuse(String),
}

impl Seen {
    /// The decision for one look at the file: `read` is its content or why it can't be read.
    fn observe(&mut self, read: Result<Vec<u8>, String>) -> Change {
        let now = match read {
            Ok(bytes) => Seen::Content(bytes),
            Err(reason) => Seen::Unreadable(reason),
        };
        if now == *self {
            return Change::None;
        }
        *self = now;
        match self {
            Seen::Unreadable(reason) => Change::Refuse(format!("cannot read it: {reason}")),
            Seen::Content(bytes) => match parse_bytes(bytes) {
                Ok(tokens) => Change::Apply(tokens),
                Err(Parsed::NotText) => Change::Refuse("it is not UTF-8 text".into()),
                Err(Parsed::Invalid(e)) => Change::Refuse(e.to_string()),
            },
        }
    }
}

/// Where the request's token came from: only a query token is carried into playlists.
pub(crate) enum Presented {
    Header(String),
    Query(String),
}

impl Presented {
    pub(crate) fn token(&self) -> &str {
        match self {
            Presented::Header(t) | Presented::Query(t) => t,
        }
    }
}

/// The request's token: a Bearer `Authorization` header wins over a `token` query parameter.
pub(crate) fn presented(request: &Request) -> Option<Presented> {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    if let Some(token) = bearer {
        return Some(Presented::Header(token.to_string()));
    }
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(request.uri()).ok()?;
    pairs
        .into_iter()
        .find(|(k, _)| k == playlist::TOKEN_PARAM)
        .map(|(_, v)| Presented::Query(v))
}

/// The middleware: lets open paths through, answers 401 without a known token and 403 without
/// the scope, and carries a query token into the playlists it serves.
pub async fn require_token(
    State(auth): State<Arc<ViewerAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let need = match access::access(&path) {
        Access::Open => return next.run(request).await,
        Access::Scope(need) => Some(need),
        Access::Unlisted => None,
    };
    let Some(presented) = presented(&request) else {
        return auth.deny(&path, Denied::MissingToken);
    };
    let allowed = {
        let tokens = auth.tokens.borrow();
        match tokens.grant(presented.token()) {
            None => Err(Denied::UnknownToken),
            Some(grant) => match need {
                Some(need) if grant.permits(need) => Ok(()),
                _ => Err(Denied::Scope(need.map(describe))),
            },
        }
    };
    if let Err(denied) = allowed {
        return auth.deny(&path, denied);
    }
    let mut response = next.run(request).await;
    make_private(response.headers_mut());
    match presented {
        Presented::Query(token) if is_playlist(&response) => carry_token(response, &token).await,
        _ => response,
    }
}

enum Denied {
    MissingToken,
    UnknownToken,
    /// What the path needs, or `None` when no token opens it.
    Scope(Option<String>),
}

impl ViewerAuth {
    fn deny(&self, path: &str, denied: Denied) -> Response {
        let (reason, status, message, challenge) = match denied {
            Denied::MissingToken => (
                "missing_token",
                StatusCode::UNAUTHORIZED,
                "a viewer token is required: send `Authorization: Bearer <token>` or add `?token=<token>`".to_string(),
                CHALLENGE.to_string(),
            ),
            Denied::UnknownToken => (
                "unknown_token",
                StatusCode::UNAUTHORIZED,
                "unknown viewer token".to_string(),
                format!("{CHALLENGE}, error=\"invalid_token\""),
            ),
            Denied::Scope(need) => (
                "insufficient_scope",
                StatusCode::FORBIDDEN,
                match need {
                    Some(scope) => format!("this token does not grant {scope}"),
                    None => "no viewer token opens this path".to_string(),
                },
                format!("{CHALLENGE}, error=\"insufficient_scope\""),
            ),
        };
        // The path only: a query may hold a token.
        debug!(path, reason, "viewer request refused");
        self.metrics.denied.with_label_values(&[reason]).inc();
        let mut response = json_error(status, message);
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// The scope a need asks for, as written in the tokens file.
fn describe(need: Need<'_>) -> String {
    match need {
        Need::Live(camera) => format!("live:{camera}"),
        Need::Recordings(Some(camera)) => format!("recordings:{camera}"),
        Need::Recordings(None) => "recordings".to_string(),
        Need::Api => "api".to_string(),
    }
}

fn is_playlist(response: &Response) -> bool {
    response.status().is_success()
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(PLAYLIST_TYPE))
}

/// Rewrites a playlist response so that every URI in it carries `token`.
async fn carry_token(response: Response, token: &str) -> Response {
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_PLAYLIST_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            warn!(error = %e, "cannot read a playlist to add its token");
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "playlist unavailable");
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(playlist::with_token(&text, token)))
}

/// A response to a token holder must not be stored by a shared cache (a CDN, a proxy) and
/// served to someone without one: `public` becomes `private`.
fn make_private(headers: &mut HeaderMap) {
    let Some(cache) = headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    let rewritten = private_cache_control(cache);
    if rewritten != cache {
        if let Ok(v) = HeaderValue::from_str(&rewritten) {
            headers.insert(header::CACHE_CONTROL, v);
        }
    }
}

fn private_cache_control(value: &str) -> String {
    value
        .split(',')
        .map(|d| {
            if d.trim().eq_ignore_ascii_case("public") {
                "private"
            } else {
                d.trim()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaa-1";

    fn good() -> Vec<u8> {
        format!("{A} api\n").into_bytes()
    }

    #[test]
    fn a_changed_valid_file_is_applied_once() {
        let mut seen = Seen::Content(b"# empty\n".to_vec());
        assert!(matches!(seen.observe(Ok(good())), Change::Apply(t) if t.len() == 1));
        assert!(matches!(seen.observe(Ok(good())), Change::None));
    }

    #[test]
    fn a_broken_file_is_refused_and_reported_once_per_change() {
        let mut seen = Seen::Content(good());
        assert!(
            matches!(seen.observe(Ok(b"nonsense\n".to_vec())), Change::Refuse(r) if r.contains("line 1"))
        );
        assert!(matches!(
            seen.observe(Ok(b"nonsense\n".to_vec())),
            Change::None
        ));
        assert!(matches!(
            seen.observe(Ok(b"other\n".to_vec())),
            Change::Refuse(_)
        ));
        assert!(
            matches!(seen.observe(Ok(vec![0xff, 0xfe])), Change::Refuse(r) if r.contains("UTF-8"))
        );
        assert!(
            matches!(seen.observe(Err("gone".into())), Change::Refuse(r) if r.contains("gone"))
        );
        assert!(matches!(seen.observe(Err("gone".into())), Change::None));
        // Back to the good file: applied again.
        assert!(matches!(seen.observe(Ok(good())), Change::Apply(_)));
    }

    #[test]
    fn public_caching_becomes_private() {
        assert_eq!(
            private_cache_control("public, max-age=60"),
            "private, max-age=60"
        );
        assert_eq!(private_cache_control("no-cache"), "no-cache");
        assert_eq!(
            private_cache_control("max-age=3600,PUBLIC"),
            "max-age=3600, private"
        );
    }

    #[test]
    fn a_refused_need_is_named_as_in_the_tokens_file() {
        assert_eq!(describe(Need::Live("lobby")), "live:lobby");
        assert_eq!(
            describe(Need::Recordings(Some("lobby"))),
            "recordings:lobby"
        );
        assert_eq!(describe(Need::Recordings(None)), "recordings");
        assert_eq!(describe(Need::Api), "api");
    }

    #[test]
    fn an_unreadable_or_invalid_file_refuses_to_start() {
        let registry = Families::new();
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let e = TokensFile::load(&missing, &registry).err().unwrap();
        assert!(e.to_string().contains("cannot read"), "{e}");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, format!("{A}\n")).unwrap();
        let e = TokensFile::load(&bad, &registry).err().unwrap();
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(!e.to_string().contains(A), "{e}");
        let ok = dir.path().join("ok");
        std::fs::write(&ok, good()).unwrap();
        let file = TokensFile::load(&ok, &registry).unwrap();
        assert_eq!(file.len(), 1);
    }
}
