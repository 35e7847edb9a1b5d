//! The web app: files of `web/dist` built into the binary, SPA fallback, and a
//! placeholder page when the app was not built before the gateway.
//!
//! Rules for a GET outside `/v1`:
//! - an existing file is served with its content type; files under `/assets/`
//!   (Vite's content-hashed output) are cached for a year as immutable,
//!   everything else (index.html, favicon, …) with `no-cache` + ETag;
//! - `/` and paths whose last segment has no file extension get `index.html`
//!   (client-side routes), or the placeholder page. Only extensions of static
//!   files count (see `content_type`), so `/u/alice@kez.lat` is a client route;
//! - anything else is `404 not_found` in the JSON error shape.
//!
//! Precompressed copies written by the web build (`x.js.br`, `x.js.gz`) are
//! served in place of `x.js` when the request's `Accept-Encoding` allows
//! (brotli first), with `Content-Encoding` and `Vary: Accept-Encoding`.
//! Every response here carries the app's Content-Security-Policy: scripts,
//! styles and workers from this origin only, connections to this origin and
//! the NATS WebSocket origin, no plugins, no framing, no inline code.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

use crate::error::ApiError;

/// `web/dist` at compile time. `allow_missing`: the gateway builds before
/// the web app exists; `debug-embed` makes debug builds embed too.
#[derive(Embed)]
#[folder = "../web/dist"]
#[allow_missing = true]
struct Dist;

/// Where the web app's files come from.
#[derive(Clone)]
pub struct WebAssets {
    source: Source,
}

#[derive(Clone)]
enum Source {
    Embedded,
    Memory(Arc<BTreeMap<String, Bytes>>),
}

impl std::fmt::Debug for WebAssets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Embedded => f.write_str("WebAssets::Embedded"),
            Source::Memory(files) => write!(f, "WebAssets::Memory({} files)", files.len()),
        }
    }
}

impl WebAssets {
    /// The files embedded from `web/dist` at build time (possibly none).
    pub fn embedded() -> Self {
        Self { source: Source::Embedded }
    }

    /// Files given by path relative to the app root (`index.html`,
    /// `assets/app-1a2b.js`); for tests and for serving a different build.
    pub fn from_files<I, P, B>(files: I) -> Self
    where
        I: IntoIterator<Item = (P, B)>,
        P: Into<String>,
        B: Into<Bytes>,
    {
        let files = files.into_iter().map(|(p, b)| (p.into(), b.into())).collect();
        Self { source: Source::Memory(Arc::new(files)) }
    }

    /// Whether the app is present (has an `index.html`).
    pub fn is_built(&self) -> bool {
        self.get("index.html").is_some()
    }

    /// A file's bytes and its strong ETag.
    fn get(&self, path: &str) -> Option<(Bytes, String)> {
        match &self.source {
            Source::Embedded => Dist::get(path).map(|f| {
                // rust-embed hashes each file at build time.
                let etag = format!("\"{}\"", hex32(&f.metadata.sha256_hash()));
                let data = match f.data {
                    Cow::Borrowed(s) => Bytes::from_static(s),
                    Cow::Owned(v) => Bytes::from(v),
                };
                (data, etag)
            }),
            Source::Memory(files) => {
                files.get(path).map(|b| (b.clone(), format!("\"{}\"", hex32(blake3::hash(b).as_bytes()))))
            }
        }
    }
}

fn hex32(hash: &[u8; 32]) -> String {
    hash[..16].iter().map(|b| format!("{b:02x}")).collect()
}

const PLACEHOLDER: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>kez-chat</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
code,pre{background:#f3f3f3;padding:.1rem .3rem;border-radius:4px}pre{padding:.8rem}</style></head>
<body>
<h1>kez-chat is running</h1>
<p>The API answers under <a href="/v1/config"><code>/v1</code></a>
(<a href="/v1/openapi.json">OpenAPI</a>, <a href="/v1/healthz">health</a>),
but this server was built without the web app.</p>
<p>Build the web app, then rebuild the server so it is embedded:</p>
<pre>cd web &amp;&amp; npm ci &amp;&amp; npm run build
cd .. &amp;&amp; cargo build --release</pre>
</body>
</html>
"#;

/// Serves a GET or HEAD outside `/v1` per the rules in the module docs;
/// `ws_url` is the public NATS WebSocket URL (allowed by the CSP).
pub(crate) fn serve(assets: &WebAssets, method: &Method, uri: &Uri, headers: &HeaderMap, ws_url: &str) -> Response {
    let mut response = serve_file(assets, method, uri, headers);
    if let Ok(v) = HeaderValue::from_str(&csp(ws_url)) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

/// The Content-Security-Policy of the app. Only the origin of `ws_url` is
/// allowed besides `'self'` (a URL that is not ws(s):// adds nothing).
pub(crate) fn csp(ws_url: &str) -> String {
    let ws = ws_url
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "ws" | "wss"))
        .map(|(scheme, rest)| (scheme, rest.split(['/', '?', '#']).next().unwrap_or("")))
        // Only host[:port] characters: nothing that could end the directive or add a source.
        .filter(|(_, host)| {
            !host.is_empty()
                && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .map(|(scheme, host)| format!(" {scheme}://{host}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; \
         connect-src 'self'{ws}; worker-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'; object-src 'none'"
    )
}

fn serve_file(assets: &WebAssets, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::not_found("no such route").into_response();
    }
    let path = uri.path();
    let Some(rel) = clean_path(path) else {
        return ApiError::not_found("no such file").into_response();
    };

    if !rel.is_empty()
        && rel != "index.html"
        && let Some(file) = assets.negotiate(rel, headers)
    {
        let cache = if rel.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
        return file_response(file, content_type(rel).unwrap_or("application/octet-stream"), cache, headers);
    }

    let last = rel.rsplit('/').next().unwrap_or("");
    if rel.is_empty() || rel == "index.html" || content_type(last).is_none() {
        return match assets.negotiate("index.html", headers) {
            Some(file) => file_response(file, "text/html; charset=utf-8", "no-cache", headers),
            None => {
                let mut r = (StatusCode::OK, PLACEHOLDER).into_response();
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
                r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                r
            }
        };
    }
    ApiError::not_found("no such file").into_response()
}

/// The path relative to the app root, or `None` for anything that could
/// escape it or is not a plain file path.
fn clean_path(path: &str) -> Option<&str> {
    let rel = path.strip_prefix('/')?;
    if rel.starts_with('/') || rel.contains('\\') || rel.contains('\0') || rel.contains('%') {
        return None;
    }
    // One trailing slash is fine (`/chat/`); empty segments elsewhere are not.
    let body = rel.strip_suffix('/').unwrap_or(rel);
    if !body.is_empty() && body.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return None;
    }
    Some(rel)
}

/// One file as it will be sent: the bytes of the chosen encoding and that copy's ETag.
struct Negotiated {
    data: Bytes,
    etag: String,
    encoding: Option<&'static str>,
    /// Precompressed copies exist, so caches must key on `Accept-Encoding`.
    varies: bool,
}

/// The encodings the build writes, best first, with the file suffix of each.
const ENCODINGS: [(&str, &str); 2] = [("br", ".br"), ("gzip", ".gz")];

impl WebAssets {
    /// `rel` in the best encoding the request accepts among the copies present.
    fn negotiate(&self, rel: &str, req: &HeaderMap) -> Option<Negotiated> {
        let (data, etag) = self.get(rel)?;
        let mut varies = false;
        for (coding, suffix) in ENCODINGS {
            if let Some((data, etag)) = self.get(&format!("{rel}{suffix}")) {
                varies = true;
                if accepts(req, coding) {
                    return Some(Negotiated { data, etag, encoding: Some(coding), varies });
                }
            }
        }
        Some(Negotiated { data, etag, encoding: None, varies })
    }
}

/// Whether `Accept-Encoding` allows `coding` (listed by name or `*`, with a q-value above 0).
fn accepts(req: &HeaderMap, coding: &str) -> bool {
    let mut named = None;
    let mut star = None;
    for v in req.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()) {
        for item in v.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if name.eq_ignore_ascii_case(coding) {
                named = Some(q > 0.0);
            } else if name == "*" {
                star = Some(q > 0.0);
            }
        }
    }
    named.or(star).unwrap_or(false)
}

fn file_response(file: Negotiated, content_type: &'static str, cache: &'static str, req: &HeaderMap) -> Response {
    let Negotiated { data, etag, encoding, varies } = file;
    let matches = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if matches { StatusCode::NOT_MODIFIED.into_response() } else { data.into_response() };
    let h = response.headers_mut();
    if !matches {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Some(coding) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    if varies {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// Content types of static files by extension (what a Vite build emits and
/// a little more); `None` when the name has no such extension.
fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    Some(match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "bin" | "gz" | "br" | "zip" => "application/octet-stream",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_refuses_escapes() {
        assert_eq!(clean_path("/"), Some(""));
        assert_eq!(clean_path("/assets/a-1.js"), Some("assets/a-1.js"));
        assert_eq!(clean_path("/chat/"), Some("chat/"));
        for bad in
            ["/../etc/passwd", "/assets/../x", "/a//b", "//", "/a//", "/a/./b", "/a%2e%2e/b", "/a\\b", "relative"]
        {
            assert_eq!(clean_path(bad), None, "{bad}");
        }
    }

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn accept_encoding_with_q_values() {
        assert!(accepts(&accept("gzip, deflate, br, zstd"), "br"));
        assert!(accepts(&accept("gzip"), "gzip"));
        assert!(!accepts(&accept("gzip"), "br"));
        assert!(!accepts(&accept("br;q=0, gzip"), "br"));
        assert!(accepts(&accept("br;q=0.5"), "br"));
        assert!(accepts(&accept("*"), "br"));
        assert!(!accepts(&accept("*, br;q=0"), "br"));
        assert!(!accepts(&accept("identity"), "gzip"));
        assert!(!accepts(&HeaderMap::new(), "gzip"));
    }

    #[test]
    fn csp_allows_only_the_websocket_origin() {
        let p = csp("ws://127.0.0.1:4223/path?x=1");
        assert!(p.contains("connect-src 'self' ws://127.0.0.1:4223;"), "{p}");
        assert!(p.contains("script-src 'self';"));
        assert!(!p.contains("unsafe"));
        assert!(p.contains("frame-ancestors 'none'"));
        assert!(csp("wss://chat.example").contains("connect-src 'self' wss://chat.example;"));
        for bad in ["", "http://x.example", "ws://", "ws://a.example; script-src *", "ws://a b"] {
            assert!(csp(bad).contains("connect-src 'self';"), "{bad}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("assets/index-Ab12.js"), Some("text/javascript; charset=utf-8"));
        assert_eq!(content_type("assets/index-Ab12.CSS"), Some("text/css; charset=utf-8"));
        assert_eq!(content_type("favicon.ico"), Some("image/x-icon"));
        assert_eq!(content_type("LICENSE"), None);
        assert_eq!(content_type("alice@kez.lat"), None);
    }
}
