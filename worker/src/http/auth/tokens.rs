//! The viewer tokens file: its format, its parser, and what a token grants.
//!
//! ```text
//! # one token per line, then its scopes, separated by spaces; `#` starts a comment
//! 6f1c0e4b9a7d2e83f5a1 live:front-door live:lobby
//! 0b7e5d3c2a19f8e4d6c7 live:* recordings api   # the operations team
//! ```
//!
//! Pure: text in, [`Tokens`] out, so every rule is tested without a disk. Token values never
//! appear in an error or a `Debug` output, because both end up in logs.

use std::fmt;

use subtle::ConstantTimeEq;

use crate::config::is_valid_camera_name;

/// Shortest token accepted: guessing one must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest token accepted.
pub const MAX_TOKEN_LEN: usize = 256;

/// One permission a token can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `live:<camera>` (`Some`) or `live:*` (`None`): playlists, parts, segments, init
    /// segments, the player page and the latest frame of the camera.
    Live(Option<String>),
    /// `recordings:<camera>` (`Some`) or `recordings` (`None`, every camera and the list of
    /// cameras with recordings).
    Recordings(Option<String>),
    /// `api`: everything under `/api/`.
    Api,
}

/// What a request needs (see `access.rs` for which path needs what).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    Live(&'a str),
    /// `None`: the list of every camera with recordings.
    Recordings(Option<&'a str>),
    Api,
}

/// The scopes of one token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    scopes: Vec<Scope>,
}

impl Grant {
    /// Whether these scopes allow `need`.
    pub fn permits(&self, need: Need<'_>) -> bool {
        self.scopes.iter().any(|scope| match (scope, need) {
            (Scope::Live(None), Need::Live(_)) => true,
            (Scope::Live(Some(c)), Need::Live(camera)) => c == camera,
            (Scope::Recordings(None), Need::Recordings(_)) => true,
            (Scope::Recordings(Some(c)), Need::Recordings(Some(camera))) => c == camera,
            (Scope::Api, Need::Api) => true,
            _ => false,
        })
    }
}

/// Every token of a tokens file with its grant.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, Grant)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({} tokens)", self.entries.len())
    }
}

impl Tokens {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the file named no token (every protected URL then answers 401).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The grant of `presented`, if it is one of the tokens. Every token is compared, in
    /// constant time, so the answer's timing tells nothing about how much of a token matched
    /// or which one did.
    pub fn grant(&self, presented: &str) -> Option<&Grant> {
        let mut found = None;
        for (token, grant) in &self.entries {
            if same_token(token, presented) {
                found = Some(grant);
            }
        }
        found
    }
}

/// Constant-time equality of two tokens (`subtle`, as for publish keys). Only the length can
/// show, and the length of a valid token is no secret worth keeping.
pub fn same_token(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The characters a token may use: RFC 3986 "unreserved", so a token goes into a URL's query
/// as it is, and a token in the file is never mistaken for a scope or a comment.
pub fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

/// Why a line of the tokens file was refused. Never carries the token itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error(
        "the token must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters from A-Z a-z 0-9 - . _ ~"
    )]
    BadToken,
    #[error("the token has no scope; add at least one of live:<camera>, live:*, recordings, recordings:<camera>, api")]
    NoScope,
    #[error("scope {0:?} names an invalid camera")]
    BadCamera(String),
    /// The word is not echoed: a word that is no scope may well be a second token.
    #[error(
        "word {0} is not a scope (live:<camera>, live:*, recordings, recordings:<camera>, api)"
    )]
    UnknownScope(usize),
    #[error("the same token is already on line {0}")]
    Duplicate(usize),
}

/// A refused tokens file: every bad line, with its 1-based number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub problems: Vec<(usize, LineProblem)>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (line, problem)) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "line {line}: {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// Parses the text of a tokens file. Every bad line is reported, not only the first.
pub fn parse(text: &str) -> Result<Tokens, ParseError> {
    let mut entries: Vec<(String, Grant)> = Vec::new();
    let mut lines_of: Vec<usize> = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let content = line.split_once('#').map_or(line, |(before, _)| before);
        let mut words = content.split_whitespace();
        let Some(token) = words.next() else { continue };
        match parse_line(token, words) {
            Err(problem) => problems.push((number, problem)),
            Ok(grant) => match entries.iter().position(|(t, _)| same_token(t, token)) {
                Some(first) => problems.push((number, LineProblem::Duplicate(lines_of[first]))),
                None => {
                    entries.push((token.to_string(), grant));
                    lines_of.push(number);
                }
            },
        }
    }
    if problems.is_empty() {
        Ok(Tokens { entries })
    } else {
        Err(ParseError { problems })
    }
}

fn parse_line<'a>(
    token: &str,
    scopes: impl Iterator<Item = &'a str>,
) -> Result<Grant, LineProblem> {
    if !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&token.len()) || !token.chars().all(is_token_char)
    {
        return Err(LineProblem::BadToken);
    }
    let mut grant = Grant::default();
    for (i, word) in scopes.enumerate() {
        let scope = parse_scope(word, i + 2)?;
        if !grant.scopes.contains(&scope) {
            grant.scopes.push(scope);
        }
    }
    if grant.scopes.is_empty() {
        return Err(LineProblem::NoScope);
    }
    Ok(grant)
}

/// Parses one scope; `position` is the word's place on its line, for the error.
fn parse_scope(word: &str, position: usize) -> Result<Scope, LineProblem> {
    let camera = |name: &str| {
        if name == "*" {
            Ok(None)
        } else if is_valid_camera_name(name) {
            Ok(Some(name.to_string()))
        } else {
            Err(LineProblem::BadCamera(word.to_string()))
        }
    };
    match word.split_once(':') {
        None if word == "recordings" => Ok(Scope::Recordings(None)),
        None if word == "api" => Ok(Scope::Api),
        Some(("live", name)) => camera(name).map(Scope::Live),
        Some(("recordings", name)) => camera(name).map(Scope::Recordings),
        _ => Err(LineProblem::UnknownScope(position)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaa-1";
    const B: &str = "bbbbbbbbbbbbbbbb_2";

    fn problems(text: &str) -> Vec<(usize, LineProblem)> {
        parse(text).expect_err("the file must be refused").problems
    }

    #[test]
    fn a_file_with_comments_blank_lines_and_scopes_parses() {
        let text = format!(
            "# viewers\n\n{A} live:front-door live:lobby   # the lobby screen\n  {B}\tlive:* recordings api\n"
        );
        let tokens = parse(&text).unwrap();
        assert_eq!(tokens.len(), 2);
        let a = tokens.grant(A).unwrap();
        assert!(a.permits(Need::Live("front-door")));
        assert!(a.permits(Need::Live("lobby")));
        assert!(!a.permits(Need::Live("garage")));
        assert!(!a.permits(Need::Recordings(Some("front-door"))));
        assert!(!a.permits(Need::Api));
        let b = tokens.grant(B).unwrap();
        assert!(b.permits(Need::Live("garage")));
        assert!(b.permits(Need::Recordings(None)));
        assert!(b.permits(Need::Recordings(Some("garage"))));
        assert!(b.permits(Need::Api));
    }

    #[test]
    fn an_empty_file_has_no_tokens() {
        let tokens = parse("# nobody yet\n").unwrap();
        assert!(tokens.is_empty());
        assert!(tokens.grant(A).is_none());
    }

    #[test]
    fn recordings_of_one_camera_do_not_open_the_list_of_all_cameras() {
        let tokens = parse(&format!("{A} recordings:lobby")).unwrap();
        let grant = tokens.grant(A).unwrap();
        assert!(grant.permits(Need::Recordings(Some("lobby"))));
        assert!(!grant.permits(Need::Recordings(Some("garage"))));
        assert!(!grant.permits(Need::Recordings(None)));
        assert!(!grant.permits(Need::Live("lobby")));
    }

    #[test]
    fn only_exact_tokens_are_found() {
        let tokens = parse(&format!("{A} api")).unwrap();
        assert!(tokens.grant(A).is_some());
        assert!(tokens.grant(&A[..A.len() - 1]).is_none());
        assert!(tokens.grant(&format!("{A}x")).is_none());
        assert!(tokens.grant(&A.to_uppercase()).is_none());
        assert!(tokens.grant("").is_none());
    }

    #[test]
    fn tokens_are_compared_in_constant_time_with_subtle() {
        // `grant` goes through `same_token`, which is `subtle::ConstantTimeEq`; check that the
        // helper agrees with `==` on equal, unequal, prefix and different-length inputs.
        for (a, b) in [
            (A, A),
            (A, B),
            (A, &A[..4]),
            ("", ""),
            ("x", "y"),
            ("abc", "abd"),
        ] {
            assert_eq!(same_token(a, b), a == b, "{a:?} vs {b:?}");
            assert_eq!(
                same_token(a, b),
                bool::from(a.as_bytes().ct_eq(b.as_bytes()))
            );
        }
    }

    #[test]
    fn bad_lines_are_all_reported_with_their_numbers() {
        let text = format!(
            "# header\n\
             short live:a\n\
             {A}\n\
             {B} live:../etc\n\
             {B}x livestream\n\
             tok€nnnnnnnnnnnnnnnnnn api\n\
             {A} api recordings:\n"
        );
        assert_eq!(
            problems(&text),
            vec![
                (2, LineProblem::BadToken),
                (3, LineProblem::NoScope),
                (4, LineProblem::BadCamera("live:../etc".into())),
                (5, LineProblem::UnknownScope(2)),
                (6, LineProblem::BadToken),
                (7, LineProblem::BadCamera("recordings:".into())),
            ]
        );
    }

    #[test]
    fn a_duplicate_token_names_the_first_line() {
        let text = format!("{A} live:a\n{B} api\n\n{A} recordings\n");
        assert_eq!(problems(&text), vec![(4, LineProblem::Duplicate(1))]);
    }

    #[test]
    fn errors_never_contain_a_token() {
        // A forgotten newline puts a second token where a scope belongs.
        let text = format!("{A} {B}\n{B}\nshort-secret-x live:a\n{A} live:a\n{A} api\n");
        let error = parse(&text).unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(shown.contains("line 1: word 2 is not a scope"), "{shown}");
        for secret in [A, B, "short-secret-x"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let tokens = parse(&format!("{A} api")).unwrap();
        assert!(!format!("{tokens:?}").contains(A));
    }

    #[test]
    fn scopes_repeated_on_a_line_count_once() {
        let tokens = parse(&format!("{A} api api live:a live:a")).unwrap();
        assert_eq!(tokens.grant(A).unwrap().scopes.len(), 2);
    }

    #[test]
    fn garbage_never_panics_the_parser() {
        for text in [
            "\u{0}\u{1}\n\r\n#\n",
            "::::\n",
            "live:a api\n",
            "\u{feff}aaaaaaaaaaaaaaaaaa api",
        ] {
            let _ = parse(text);
        }
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(
            problems(&format!("{long} api")),
            vec![(1, LineProblem::BadToken)]
        );
    }
}
