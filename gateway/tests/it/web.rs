//! The web app: embedded files, SPA fallback, cache headers, the placeholder page.

use axum::Router;
use axum::http::{Method, StatusCode};
use kez_gateway::{AppState, WebAssets};

use crate::common::*;

const INDEX: &str = "<!doctype html><title>kez</title><script src=\"/assets/index-AbC123.js\"></script>";
const JS: &str = "console.log('kez')";

fn built_app(env: &Env) -> Router {
    let assets = WebAssets::from_files([
        ("index.html", INDEX),
        ("assets/index-AbC123.js", JS),
        ("assets/index-Zz9.css", "body{}"),
        ("assets/logo-1.svg", "<svg/>"),
        ("favicon.ico", "ico"),
    ]);
    kez_gateway::app(AppState::with_assets(config(), env.nats.clone(), assets).unwrap())
}

#[tokio::test]
async fn spa_routes_get_index_html_without_caching() {
    let env = Env::start().await;
    let app = built_app(&env);
    for path in ["/", "/index.html", "/chat", "/chat/alice", "/u/bob@kez.test", "/settings/keys/"] {
        let res = send(&app, get(path)).await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
        assert_eq!(res.body, INDEX, "{path}");
        assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"), "{path}");
        assert_eq!(res.header("cache-control"), Some("no-cache"), "{path}");
        assert!(res.header("etag").is_some());
        assert_eq!(res.header("x-frame-options"), Some("DENY"), "{path}");
    }
}

#[tokio::test]
async fn hashed_assets_are_immutable_with_their_content_type() {
    let env = Env::start().await;
    let app = built_app(&env);
    let cases = [
        ("/assets/index-AbC123.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"),
        ("/assets/index-Zz9.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable"),
        ("/assets/logo-1.svg", "image/svg+xml", "public, max-age=31536000, immutable"),
        ("/favicon.ico", "image/x-icon", "no-cache"),
    ];
    for (path, content_type, cache) in cases {
        let res = send(&app, get(path)).await;
        assert_eq!(res.status, StatusCode::OK, "{path}");
        assert_eq!(res.header("content-type"), Some(content_type), "{path}");
        assert_eq!(res.header("cache-control"), Some(cache), "{path}");
        assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
    }
    let res = send(&app, get("/assets/index-AbC123.js")).await;
    assert_eq!(res.body, JS);

    // Revalidation.
    let etag = res.header("etag").unwrap().to_string();
    let mut req = get("/assets/index-AbC123.js");
    req.headers_mut().insert("if-none-match", etag.parse().unwrap());
    let res = send(&app, req).await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);
    assert!(res.body.is_empty());

    // HEAD works like GET without a body.
    let res = send(&app, request(Method::HEAD, "/assets/index-AbC123.js", "")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body.is_empty());
}

#[tokio::test]
async fn missing_files_and_escapes_are_json_404() {
    let env = Env::start().await;
    let app = built_app(&env);
    for path in [
        "/assets/missing-1.js",
        "/robots.txt",
        "/x/y.png",
        "/../Cargo.toml",
        "/assets/..%2F..%2FCargo.toml",
        "/assets//index-AbC123.js",
    ] {
        let res = send(&app, get(path)).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(res.error_code(), "not_found", "{path}");
    }
    // /v1 never falls back to the app.
    let res = send(&app, get("/v1/chat")).await;
    assert_eq!(res.error_code(), "not_found");
}

#[tokio::test]
async fn placeholder_page_when_the_app_is_not_built() {
    let env = Env::start().await;
    let app = env.app(); // no files
    for path in ["/", "/chat/alice"] {
        let res = send(&app, get(path)).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(res.header("cache-control"), Some("no-cache"));
        let html = String::from_utf8(res.body.to_vec()).unwrap();
        assert!(html.contains("built without the web app"), "{html}");
        assert!(html.contains("npm run build"), "{html}");
    }
}

#[tokio::test]
async fn embedded_assets_serve_the_build_or_the_placeholder() {
    let env = Env::start().await;
    let app = kez_gateway::app(AppState::new(config(), env.nats.clone()).unwrap());
    let res = send(&app, get("/")).await;
    assert_eq!(res.status, StatusCode::OK);
    let html = String::from_utf8(res.body.to_vec()).unwrap();
    if WebAssets::embedded().is_built() {
        assert!(!html.contains("built without the web app"));
    } else {
        assert!(html.contains("built without the web app"));
    }
}

#[tokio::test]
async fn precompressed_copies_by_accept_encoding() {
    let env = Env::start().await;
    let assets = WebAssets::from_files([
        ("index.html", INDEX),
        ("index.html.gz", "gz-index"),
        ("assets/index-AbC123.js", JS),
        ("assets/index-AbC123.js.br", "br-js"),
        ("assets/index-AbC123.js.gz", "gz-js"),
        ("assets/plain-1.css", "body{}"),
    ]);
    let app = kez_gateway::app(AppState::with_assets(config(), env.nats.clone(), assets).unwrap());
    let with = |path: &str, ae: Option<&str>| {
        let mut req = get(path);
        if let Some(ae) = ae {
            req.headers_mut().insert("accept-encoding", ae.parse().unwrap());
        }
        req
    };
    let cases = [
        (Some("gzip, deflate, br"), "br-js", Some("br")),
        (Some("gzip"), "gz-js", Some("gzip")),
        (Some("br;q=0, gzip;q=0.8"), "gz-js", Some("gzip")),
        (Some("identity"), JS, None),
        (None, JS, None),
    ];
    let mut etags = Vec::new();
    for (ae, body, encoding) in cases {
        let res = send(&app, with("/assets/index-AbC123.js", ae)).await;
        assert_eq!(res.status, StatusCode::OK, "{ae:?}");
        assert_eq!(res.body, body, "{ae:?}");
        assert_eq!(res.header("content-encoding"), encoding, "{ae:?}");
        assert_eq!(res.header("content-type"), Some("text/javascript; charset=utf-8"), "{ae:?}");
        assert_eq!(res.header("vary"), Some("accept-encoding"), "{ae:?}");
        etags.push(res.header("etag").unwrap().to_string());
    }
    // Each encoding is its own representation.
    assert_ne!(etags[0], etags[1]);
    assert_ne!(etags[1], etags[3]);
    // The SPA fallback negotiates too; a file without copies does not vary.
    let res = send(&app, with("/chat/alice", Some("gzip"))).await;
    assert_eq!((res.body.as_ref(), res.header("content-encoding")), (&b"gz-index"[..], Some("gzip")));
    let res = send(&app, with("/assets/plain-1.css", Some("br, gzip"))).await;
    assert_eq!((res.header("content-encoding"), res.header("vary")), (None, None));
    // Revalidation of the compressed copy.
    let mut req = with("/assets/index-AbC123.js", Some("br"));
    req.headers_mut().insert("if-none-match", etags[0].parse().unwrap());
    assert_eq!(send(&app, req).await.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn app_responses_carry_a_strict_csp() {
    let env = Env::start().await;
    let app = built_app(&env);
    for path in ["/", "/chat/alice", "/assets/index-AbC123.js"] {
        let res = send(&app, get(path)).await;
        let csp = res.header("content-security-policy").unwrap_or_else(|| panic!("no CSP on {path}"));
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains(&format!("connect-src 'self' {};", config().nats_ws_url_public)), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    }
    let res = send(&app, get("/v1/config")).await;
    assert!(res.header("content-security-policy").is_none(), "the API is not a page");
}
