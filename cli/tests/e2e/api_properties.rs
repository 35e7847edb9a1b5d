//! The `/v1` API under a property-based tester driven by its own `/v1/openapi.json`
//! (schemathesis, installed into the repository's `.venv` by `scripts/ensure-schemathesis`),
//! against the real stack. Checked:
//! - schemathesis with every check but `positive_data_acceptance` (a schema-valid body is still
//!   unsigned, so the server rightly refuses it) and `ignored_auth` (no route has auth): no 5xx,
//!   no undocumented status, no response breaking its schema, content types and headers as
//!   documented, wrong methods refused;
//! - the gateway's own request counters (`/v1/metrics`, by route template, method and status)
//!   after the run: every status a route documents was answered at least once, and no status it
//!   does not document. Signed requests (which no schema-driven generator can make) are sent
//!   first, so 200/201/304/409 are reached too, and so are the body-size limits (413). 503 and 504 need a broken backend and are
//!   reached by `gateway/tests/it/errors.rs` (no responders, broker down, slow service).
//!
//! Bounded for `./kez test`: `KEZ_API_EXAMPLES` examples per operation (default 25) with a fixed
//! seed (`KEZ_API_SEED`). docs/fuzzing.md has the long run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::Command;

use ed25519_dalek::SigningKey;
use kv_schemas::sigchain::{Endpoint, Op, SharedFiles, build_link};
use kv_schemas::subjects::legacy_inbox_subject;
use kv_schemas::{Handle, PublicKey, manifest, now_ms, register};
use serde_json::Value;

use crate::harness::{DOMAIN, Stack};

/// Statuses only a broken backend produces (see the module comment).
const BACKEND_DOWN: &[u16] = &[503, 504];

fn schemathesis() -> PathBuf {
    let bin = std::env::var_os("SCHEMATHESIS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/st"));
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/ensure-schemathesis (./kez test does) or set SCHEMATHESIS_BIN",
        bin.display()
    );
    bin
}

struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

fn http(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += &format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    Resp { status: head[9..12].parse().unwrap(), head, body: out[split + 4..].to_vec() }
}

fn expect(r: Resp, status: u16, what: &str) -> Resp {
    assert_eq!(r.status, status, "{what}: {}\n{}", r.head, String::from_utf8_lossy(&r.body));
    r
}

/// The requests that need signatures or stored state.
fn signed_requests(base: &str) {
    let now = now_ms();
    let alice = SigningKey::from_bytes(&[0x41; 32]);
    let pk = PublicKey::of(&alice);
    let handle = Handle::new("alice", DOMAIN).unwrap();
    let reg = register::build(&alice, &handle, now, [1; 16]).unwrap();
    expect(http(base, "POST", "/v1/register", &[], &reg), 201, "register");
    let again = register::build(&alice, &handle, now, [2; 16]).unwrap();
    expect(http(base, "POST", "/v1/register", &[], &again), 200, "idempotent register");
    let mallory = SigningKey::from_bytes(&[0x4d; 32]);
    expect(
        http(base, "POST", "/v1/register", &[], &register::build(&mallory, &handle, now, [3; 16]).unwrap()),
        409,
        "taken",
    );

    let events = format!("/v1/sigchains/ed25519/{}/events", pk.hex());
    let op =
        Op::AddEndpoint(Endpoint::Nats { subject: legacy_inbox_subject(&pk), url: "nats://127.0.0.1:4222".into() });
    let link1 = build_link(&alice, 1, None, now, &op).unwrap();
    expect(http(base, "POST", &events, &[], &link1), 201, "append");
    // The same bytes again are answered like the first time (PROTOCOL.md §9.7); another link 1 conflicts.
    expect(http(base, "POST", &events, &[], &link1), 201, "resent link");
    let other1 = build_link(&alice, 1, None, now + 1, &op).unwrap();
    expect(http(base, "POST", &events, &[], &other1), 409, "seqno conflict");
    let stranger = PublicKey::of(&mallory);
    let theirs = Op::AddEndpoint(Endpoint::Nats {
        subject: legacy_inbox_subject(&stranger),
        url: "nats://127.0.0.1:4222".into(),
    });
    let foreign = build_link(&mallory, 1, None, now, &theirs).unwrap();
    let path = format!("/v1/sigchains/ed25519/{}/events", stranger.hex());
    expect(http(base, "POST", &path, &[], &foreign), 404, "unregistered chain");

    expect(http(base, "POST", &events, &[], b"{\"chain\":"), 400, "append of no JSON");
    let big = vec![b' '; 300 * 1024];
    for (method, path, bound) in
        [("POST", "/v1/register", 4096), ("POST", events.as_str(), 8192), ("PUT", "/v1/manifests", 262_144)]
    {
        expect(http(base, method, path, &[], &big[..bound + 1]), 413, path);
    }
    let unregistered = manifest::build(&mallory, 1, now, &[]).unwrap();
    expect(http(base, "PUT", "/v1/manifests", &[], &unregistered), 404, "manifest of an unregistered owner");
    let m = manifest::build(&alice, 1, now, &[]).unwrap();
    let hash = manifest::manifest_hash(&m);
    expect(http(base, "PUT", "/v1/manifests", &[], &m), 201, "manifest put");
    let kp = kv_schemas::sigchain::parse_link(&link1).unwrap();
    let shared = Op::SetSharedFiles(SharedFiles { manifest: hash.clone(), manifest_seq: 1, size: m.len() as u64 });
    expect(
        http(base, "POST", &events, &[], &build_link(&alice, 2, Some(&kp.link_id), now, &shared).unwrap()),
        201,
        "share",
    );
    let etag = format!("\"{hash}\"");
    for path in [format!("/v1/manifests/{hash}"), format!("/v1/manifests/by-owner/ed25519/{}", pk.hex())] {
        expect(http(base, "GET", &path, &[], b""), 200, &path);
        expect(http(base, "GET", &path, &[("If-None-Match", &etag)], b""), 304, &path);
    }
    for path in [
        format!("/v1/u/{handle}"),
        format!("/v1/keys/ed25519/{}", pk.hex()),
        format!("/v1/sigchains/ed25519/{}", pk.hex()),
        format!("/v1/sigchains/ed25519/{}/state", pk.hex()),
        format!("/.well-known/webfinger?resource=acct:{handle}"),
    ] {
        expect(http(base, "GET", &path, &[], b""), 200, &path);
    }
    // A `since` that is no seqno (the generator only makes valid ones from the schema).
    let bad_since = format!("/v1/sigchains/ed25519/{}?since=x", pk.hex());
    expect(http(base, "GET", &bad_since, &[], b""), 400, &bad_since);
}

/// `(route, method, status) → count` from the Prometheus text.
fn answered(base: &str) -> BTreeMap<(String, String, u16), u64> {
    let r = expect(http(base, "GET", "/v1/metrics", &[], b""), 200, "metrics");
    let text = String::from_utf8(r.body).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("kez_gateway_http_requests_total{")) {
        let (labels, n) = line.rsplit_once(' ').unwrap();
        let label =
            |k: &str| labels.split(&format!("{k}=\"")).nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
        out.insert((label("route"), label("method"), label("status").parse().unwrap()), n.parse().unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_api_keeps_its_openapi_document() {
    let st = schemathesis();
    let stack = Stack::start();
    let base = stack.http.clone();
    signed_requests(&base);

    let examples = std::env::var("KEZ_API_EXAMPLES").unwrap_or_else(|_| "25".into());
    let seed = std::env::var("KEZ_API_SEED").unwrap_or_else(|_| "1".into());
    let reports = tempfile::tempdir().unwrap();
    let out = Command::new(&st)
        .current_dir(reports.path())
        .args(["--no-color", "run", &format!("{base}/v1/openapi.json")])
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance,ignored_auth"])
        .args(["--max-examples", &examples, "--seed", &seed, "--workers", "1"])
        .args(["--request-timeout", "20", "--suppress-health-check", "all", "--generation-database", "none"])
        .arg("--report-dir")
        .arg(reports.path())
        .args(["--report", "junit"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found problems (output above)");

    let seen = answered(&base);
    let doc: Value = serde_json::from_slice(&http(&base, "GET", "/v1/openapi.json", &[], b"").body).unwrap();
    let mut missing = vec![];
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let method = method.to_uppercase();
            for status in op["responses"].as_object().unwrap().keys() {
                let status: u16 = status.parse().unwrap();
                documented.insert((path.clone(), method.clone(), status));
                if !BACKEND_DOWN.contains(&status) && !seen.contains_key(&(path.clone(), method.clone(), status)) {
                    missing.push(format!("{method} {path} {status}"));
                }
            }
        }
    }
    let undocumented: Vec<String> = seen
        .keys()
        .filter(|(route, method, status)| {
            let known_route = documented.iter().any(|(p, m, _)| p == route && m == method);
            (known_route && !documented.contains(&(route.clone(), method.clone(), *status))) || *status >= 500
        })
        .map(|(r, m, s)| format!("{m} {r} {s}"))
        .collect();
    let total: u64 = seen.values().sum();
    eprintln!("api properties: {total} requests answered by the gateway; by route and status: {seen:?}");
    assert!(undocumented.is_empty(), "answered with an undocumented status or a 5xx: {undocumented:?}");
    assert!(missing.is_empty(), "documented statuses never answered: {missing:?}");
}
