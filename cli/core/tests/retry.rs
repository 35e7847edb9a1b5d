//! PROTOCOL.md §9.7 in the client: a write whose outcome is unknown (no answer, 503/504, the
//! codes `unavailable`/`timeout`) is repeated idempotently — a link with the same bytes, a
//! registration signed anew with a fresh nonce — and a definite refusal is not repeated.
//!
//! The server here is a plain HTTP listener that answers from a script; it stands in for a
//! gateway whose services are failing over, which a real stack cannot be made to do on cue.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use kez_client::api::Api;
use kez_client::{ClientError, Identity};
use kv_schemas::sigchain::{Endpoint, Op, build_link, parse_link};
use kv_schemas::{Handle, PublicKey, now_ms, register};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Answers the i-th request with `script[i]` (status, body) and records the request bodies.
async fn scripted(script: Vec<(u16, String)>) -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    tokio::spawn(async move {
        for (status, body) in script {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then exactly Content-Length bytes of body.
            let (head_end, len) = loop {
                let n = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                        .unwrap_or(0);
                    break (i + 4, len);
                }
            };
            while buf.len() < head_end + len {
                let n = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            seen.lock().unwrap().push(buf[head_end..head_end + len].to_vec());
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(reply.as_bytes()).await.unwrap();
        }
    });
    (base, bodies)
}

fn error_body(code: &str) -> String {
    format!(r#"{{"error":{{"code":"{code}","message":"scripted"}}}}"#)
}

#[tokio::test]
async fn an_append_with_an_unknown_outcome_is_resent_with_the_same_bytes() {
    let id = Identity::from_seed([7; 32]);
    let pk = id.public_key();
    let link = build_link(id.signing_key(), 1, None, now_ms(), &Op::AddEndpoint(Endpoint::iroh_wave1(&pk))).unwrap();
    let link_id = parse_link(&link).unwrap().link_id;
    let ok = format!(r#"{{"seqno":1,"link_id":"{link_id}"}}"#);
    let (base, bodies) =
        scripted(vec![(503, error_body("unavailable")), (504, error_body("timeout")), (201, ok)]).await;
    let reply = Api::new(&base).unwrap().append_link(&pk, link.clone()).await.unwrap();
    assert_eq!((reply.seqno, reply.link_id), (1, link_id));
    assert_eq!(*bodies.lock().unwrap(), vec![link.clone(), link.clone(), link]);
}

#[tokio::test]
async fn a_definite_refusal_is_not_repeated() {
    let id = Identity::from_seed([8; 32]);
    let pk = id.public_key();
    let link =
        build_link(id.signing_key(), 2, Some(&"0".repeat(64)), now_ms(), &Op::AddEndpoint(Endpoint::iroh_wave1(&pk)))
            .unwrap();
    let (base, bodies) = scripted(vec![(409, error_body("seqno_conflict")), (201, "{}".into())]).await;
    let e = Api::new(&base).unwrap().append_link(&pk, link).await.unwrap_err();
    assert!(matches!(&e, ClientError::Server { code, .. } if code == "seqno_conflict"), "{e:?}");
    assert!(!e.outcome_unknown());
    assert_eq!(bodies.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_registration_with_an_unknown_outcome_is_signed_anew() {
    let id = Identity::from_seed([9; 32]);
    let pk = id.public_key();
    let handle = Handle::new("erin", "kez.test").unwrap();
    let ok = format!(r#"{{"handle":"{handle}","key":"{pk}","created":false}}"#);
    let (base, bodies) = scripted(vec![(503, error_body("unavailable")), (200, ok)]).await;
    let api = Api::new(&base).unwrap();
    let reply = api
        .register_retrying(&handle, || register::build(id.signing_key(), &handle, now_ms(), kv_schemas::random_bytes()))
        .await
        .unwrap();
    assert!(!reply.created);
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    assert_ne!(bodies[0], bodies[1], "a fresh nonce each time (the first may be recorded already)");
    for b in &bodies {
        let r = register::verify(b, "kez.test", now_ms()).unwrap();
        assert_eq!((r.handle.clone(), r.key), (handle.clone(), PublicKey::of(id.signing_key())));
    }
}
