//! Carries a query token into every URI of an M3U8 playlist, so that a player that cannot set
//! headers (Safari, ffmpeg, a TV) keeps presenting the token it opened the playlist with.
//!
//! This rewrites the rendered text instead of passing the token to the playlist renderer: the
//! renderer stays a pure function of the media window that knows nothing of HTTP or
//! credentials (STYLE: media stages are not HTTP routers), every playlist the worker serves is
//! covered by one function in the one module that decides about tokens, and the cost is one
//! pass over a few kilobytes per playlist response.

/// The query parameter that carries a token.
pub const TOKEN_PARAM: &str = "token";

/// `playlist` with `token=<token>` added to every relative URI: each URI line and each quoted
/// `URI="…"` attribute of a tag (`EXT-X-MAP`, `EXT-X-PART`, `EXT-X-PRELOAD-HINT`,
/// `EXT-X-RENDITION-REPORT`, `EXT-X-MEDIA`, …). An existing query is extended with `&`.
/// Absolute URIs (another host) are left alone, so a token never leaves for another origin.
///
/// `token` must need no escaping in a URL; tokens are restricted to such characters
/// (`tokens::is_token_char`).
pub fn with_token(playlist: &str, token: &str) -> String {
    let mut out = String::with_capacity(playlist.len() + 64 * (TOKEN_PARAM.len() + token.len()));
    for line in playlist.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let ending = &line[body.len()..];
        if body.starts_with("#EXT") {
            tag_with_token(body, token, &mut out);
        } else if body.starts_with('#') || body.trim().is_empty() {
            out.push_str(body);
        } else {
            out.push_str(&uri_with_token(body, token));
        }
        out.push_str(ending);
    }
    out
}

/// Copies a tag line to `out`, adding the token to its `URI` attribute. The attribute list is
/// scanned per RFC 8216 4.2 (quoted values may hold commas); the scan stops, copying the rest
/// as it is, at the first thing that is no attribute (`#EXTINF:2.0,`, a date).
fn tag_with_token(line: &str, token: &str, out: &mut String) {
    let Some((tag, mut rest)) = line.split_once(':') else {
        out.push_str(line);
        return;
    };
    out.push_str(tag);
    out.push(':');
    while let Some((name, after)) = rest.split_once('=') {
        let is_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        if !is_name {
            break;
        }
        let (value, quoted, remainder) = match after.strip_prefix('"') {
            Some(q) => match q.split_once('"') {
                Some((value, remainder)) => (value, true, remainder),
                None => break,
            },
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (&after[..end], false, &after[end..])
            }
        };
        out.push_str(name);
        out.push('=');
        if quoted {
            out.push('"');
            if name == "URI" {
                out.push_str(&uri_with_token(value, token));
            } else {
                out.push_str(value);
            }
            out.push('"');
        } else {
            out.push_str(value);
        }
        match remainder.strip_prefix(',') {
            Some(next) => {
                out.push(',');
                rest = next;
            }
            None => {
                rest = remainder;
                break;
            }
        }
    }
    out.push_str(rest);
}

/// `uri` with the token added to its query, unless it is absolute or already has a token.
pub fn uri_with_token(uri: &str, token: &str) -> String {
    if is_absolute(uri) {
        return uri.to_string();
    }
    let (before_fragment, fragment) = match uri.find('#') {
        Some(i) => uri.split_at(i),
        None => (uri, ""),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (before_fragment, None),
    };
    let param = format!("{TOKEN_PARAM}={token}");
    let query = match query {
        None | Some("") => param,
        Some(q)
            if q.split('&')
                .any(|kv| kv.split('=').next() == Some(TOKEN_PARAM)) =>
        {
            return uri.to_string();
        }
        Some(q) if q.ends_with('&') => format!("{q}{param}"),
        Some(q) => format!("{q}&{param}"),
    };
    format!("{path}?{query}{fragment}")
}

/// A URI with a scheme (`https:`, `data:`) or a network path (`//host/…`).
fn is_absolute(uri: &str) -> bool {
    if uri.starts_with("//") {
        return true;
    }
    let end = uri.find(['/', '?', '#']).unwrap_or(uri.len());
    match uri[..end].split_once(':') {
        Some((scheme, _)) => {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: &str = "t0ken-t0ken-t0ken";

    /// The quoted URI attributes and the URI lines of a playlist.
    fn all_uris(text: &str) -> Vec<String> {
        let mut uris = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                let mut rest = line;
                while let Some(i) = rest.find("URI=\"") {
                    rest = &rest[i + 5..];
                    if let Some((uri, after)) = rest.split_once('"') {
                        uris.push(uri.to_string());
                        rest = after;
                    }
                }
            } else if !line.trim().is_empty() {
                uris.push(line.to_string());
            }
        }
        uris
    }

    /// A media playlist as the worker renders it, with a delta-update skip and a rendition
    /// report beside the usual tags.
    const MEDIA: &str = "#EXTM3U\n\
        #EXT-X-VERSION:9\n\
        #EXT-X-TARGETDURATION:1\n\
        #EXT-X-PART-INF:PART-TARGET=0.200\n\
        #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,CAN-SKIP-UNTIL=6.000\n\
        #EXT-X-MEDIA-SEQUENCE:4\n\
        #EXT-X-DISCONTINUITY-SEQUENCE:0\n\
        #EXT-X-SKIP:SKIPPED-SEGMENTS=1\n\
        #EXT-X-MAP:URI=\"init-1.mp4\"\n\
        #EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:05.000Z\n\
        #EXT-X-PART:DURATION=0.200,URI=\"part5.0.m4s\",INDEPENDENT=YES\n\
        #EXT-X-PART:DURATION=0.200,URI=\"part5.1.m4s\"\n\
        #EXTINF:1.000,\n\
        seg5.m4s\n\
        #EXT-X-DISCONTINUITY\n\
        #EXT-X-MAP:URI=\"init-2.mp4\"\n\
        #EXT-X-PART:DURATION=0.200,URI=\"part6.0.m4s\",INDEPENDENT=YES\n\
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part6.1.m4s\"\n\
        #EXT-X-RENDITION-REPORT:URI=\"../other/stream.m3u8\",LAST-MSN=6,LAST-PART=0\n";

    #[test]
    fn every_uri_of_a_media_playlist_gets_the_token() {
        let out = with_token(MEDIA, T);
        let before = all_uris(MEDIA);
        let after = all_uris(&out);
        assert_eq!(before.len(), 8, "{before:?}");
        assert_eq!(after.len(), before.len());
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(a, &format!("{b}?token={T}"));
        }
        // Nothing but the URIs changed.
        assert_eq!(out.replace(&format!("?token={T}"), ""), MEDIA);
        // And a real HLS parser still reads it, URIs and all.
        let parsed = match m3u8_rs::parse_playlist_res(out.as_bytes()) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(m)) => m,
            other => panic!("not a media playlist: {other:?}"),
        };
        assert_eq!(parsed.segments[0].uri, format!("seg5.m4s?token={T}"));
        let map = parsed.segments[0].map.as_ref().unwrap();
        assert_eq!(map.uri, format!("init-1.mp4?token={T}"));
    }

    #[test]
    fn the_variant_and_rendition_uris_of_a_multivariant_playlist_get_the_token() {
        let text = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x,y\",URI=\"audio.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360\n\
            stream.m3u8\n";
        let out = with_token(text, T);
        assert!(out.contains(&format!("\nstream.m3u8?token={T}\n")), "{out}");
        assert!(
            out.contains(&format!("URI=\"audio.m3u8?token={T}\"")),
            "{out}"
        );
        assert!(
            out.contains("CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360\n"),
            "{out}"
        );
        assert!(out.contains("NAME=\"x,y\""), "{out}");
        match m3u8_rs::parse_playlist_res(out.as_bytes()) {
            Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => {
                assert_eq!(m.variants[0].uri, format!("stream.m3u8?token={T}"));
            }
            other => panic!("not a multivariant playlist: {other:?}"),
        }
    }

    #[test]
    fn an_existing_query_is_extended_with_an_ampersand() {
        assert_eq!(
            uri_with_token("stream.m3u8?_HLS_msn=5", T),
            format!("stream.m3u8?_HLS_msn=5&token={T}")
        );
        assert_eq!(uri_with_token("a.m4s?", T), format!("a.m4s?token={T}"));
        assert_eq!(
            uri_with_token("a.m4s?x=1&", T),
            format!("a.m4s?x=1&token={T}")
        );
        assert_eq!(
            uri_with_token("a.mp4#t=1", T),
            format!("a.mp4?token={T}#t=1")
        );
        let text = "#EXT-X-MAP:URI=\"init.mp4?v=2\"\nseg1.m4s?v=2\n";
        assert_eq!(
            with_token(text, T),
            format!("#EXT-X-MAP:URI=\"init.mp4?v=2&token={T}\"\nseg1.m4s?v=2&token={T}\n")
        );
    }

    #[test]
    fn a_uri_that_has_a_token_keeps_it() {
        assert_eq!(uri_with_token("a.m4s?token=other", T), "a.m4s?token=other");
        assert_eq!(uri_with_token("a.m4s?x=1&token=", T), "a.m4s?x=1&token=");
        // `tokens=` is another parameter.
        assert_eq!(
            uri_with_token("a.m4s?tokens=1", T),
            format!("a.m4s?tokens=1&token={T}")
        );
    }

    #[test]
    fn the_token_never_goes_to_another_host() {
        for uri in [
            "https://cdn.example.com/seg1.m4s",
            "http://x/y",
            "//cdn.example.com/seg1.m4s",
            "data:application/octet-stream;base64,AAAA",
        ] {
            assert_eq!(uri_with_token(uri, T), uri);
        }
        // A colon after the first slash is no scheme.
        assert_eq!(
            uri_with_token("seg/a:b.m4s", T),
            format!("seg/a:b.m4s?token={T}")
        );
    }

    #[test]
    fn line_endings_comments_and_odd_tags_are_kept() {
        let text = "#EXTM3U\r\n# a comment URI=\"x\"\r\n#EXTINF:1.0,title URI=\"x\"\r\n\r\nseg1.m4s\r\nseg2.m4s";
        assert_eq!(
            with_token(text, T),
            format!(
                "#EXTM3U\r\n# a comment URI=\"x\"\r\n#EXTINF:1.0,title URI=\"x\"\r\n\r\nseg1.m4s?token={T}\r\nseg2.m4s?token={T}"
            )
        );
        // An unterminated quote leaves the rest of the line as it was.
        assert_eq!(
            with_token("#EXT-X-MAP:URI=\"init.mp4\n", T),
            "#EXT-X-MAP:URI=\"init.mp4\n"
        );
    }

    proptest! {
        /// Whatever the text, the rewrite only ever inserts the token parameter.
        #[test]
        fn rewriting_only_adds_the_token(
            lines in proptest::collection::vec(
                "(#EXT-X-[A-Z]{1,4}:)?([A-Z]{1,3}=(\"[a-z.,?&=/:]{0,8}\"|[0-9.]{0,3}),?){0,3}|[a-z0-9./?&=:#]{0,12}|URI=\"x\"",
                0..12,
            ),
            crlf in any::<bool>(),
        ) {
            let text = lines.join(if crlf { "\r\n" } else { "\n" });
            prop_assume!(!text.contains("token"));
            let out = with_token(&text, T);
            // Separators: `a?` and `a&` gain `token=` without a separator of their own.
            let bare = |s: &str| s.replace(&format!("token={T}"), "").replace(['?', '&'], "");
            prop_assert_eq!(bare(&out), bare(&text));
            prop_assert_eq!(out.lines().count(), text.lines().count());
        }
    }
}
