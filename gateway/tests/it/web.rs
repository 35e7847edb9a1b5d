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
