//! Device enrollment, listing, renaming and removal against a real nats-server.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use kv_schemas::ErrorCode;
use kv_schemas::api::MAX_DEVICES;
use kv_schemas::subjects::{DeviceId, DeviceOp, device_consumer};
use serde_json::json;

#[tokio::test]
async fn enroll_list_rename_remove() {
    let env = Env::start().await;
    let (alice, bob) = (env.registered_user().await, env.registered_user().await);
    let phone = DeviceId::random();
    let b = env.connect(&bob, Some(&phone)).await;

    let first = b.enroll(&phone, "phone").await.unwrap();
    assert_eq!(first["created"], true);
    assert_eq!(first["device"]["name"], "phone");
    assert!(first["device"]["last_active"].is_null());
    // Idempotent: the name stays, nothing new is created.
    let again = b.enroll(&phone, "other name").await.unwrap();
    assert_eq!((again["created"].as_bool(), again["device"]["name"].as_str()), (Some(false), Some("phone")));
    assert_eq!(again["device"]["created_at"], first["device"]["created_at"]);

    // A message delivered to the device shows up as activity.
    env.connect(&alice, None).await.send(&bob.key, alice.seal_to(&bob, "x")).await.unwrap();
    assert_eq!(b.pull(&phone, 1, true).await.payloads.len(), 1);
    let list = b.devices(DeviceOp::List, json!({})).await.unwrap();
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);
    assert!(list["devices"][0]["last_active"].as_u64().unwrap() > 0, "{list}");

    let renamed = b.devices(DeviceOp::Rename, json!({"device": phone, "name": "old phone"})).await.unwrap();
    assert_eq!(renamed["device"]["name"], "old phone");
    let list = b.devices(DeviceOp::List, json!({})).await.unwrap();
    assert_eq!(list["devices"][0]["name"], "old phone");

    // Remove: the consumer goes at once, the id can never enroll again.
    let consumer = device_consumer(&bob.key, &phone);
    assert!(env.consumer_exists(&consumer).await);
    assert_eq!(b.devices(DeviceOp::Remove, json!({"device": phone})).await.unwrap(), json!({"removed": true}));
    assert!(!env.consumer_exists(&consumer).await);
    assert_eq!(code(b.enroll(&phone, "phone").await), ErrorCode::DeviceRemoved);
    assert!(!env.consumer_exists(&consumer).await);
    let pulled = b.pull(&phone, 1, true).await;
    assert!(pulled.payloads.is_empty(), "{pulled:?}");
    assert_eq!(b.devices(DeviceOp::List, json!({})).await.unwrap(), json!({"devices": []}));
    // Removing again is harmless; unknown devices are not found.
    b.devices(DeviceOp::Remove, json!({"device": phone})).await.unwrap();
    let unknown = DeviceId::random();
    assert_eq!(code(b.devices(DeviceOp::Remove, json!({"device": unknown})).await), ErrorCode::DeviceNotFound);
    assert_eq!(
        code(b.devices(DeviceOp::Rename, json!({"device": unknown, "name": "x"})).await),
        ErrorCode::DeviceNotFound
    );
    // Another user's devices are their own: alice has none.
    let a = env.connect(&alice, None).await;
    assert_eq!(a.devices(DeviceOp::List, json!({})).await.unwrap(), json!({"devices": []}));
}

#[tokio::test]
async fn at_most_sixteen_devices() {
    let env = Env::start().await;
    let bob = env.registered_user().await;
    let b = env.connect(&bob, None).await;
    let ids: Vec<DeviceId> = (0..MAX_DEVICES).map(|_| DeviceId::random()).collect();
    for (i, id) in ids.iter().enumerate() {
        b.enroll(id, &format!("device {i}")).await.unwrap();
    }
    assert_eq!(code(b.enroll(&DeviceId::random(), "one too many").await), ErrorCode::DeviceLimit);
    // An existing device may still enroll again; removing one frees a place.
    b.enroll(&ids[3], "device 3").await.unwrap();
    b.devices(DeviceOp::Remove, json!({"device": ids[0]})).await.unwrap();
    b.enroll(&DeviceId::random(), "new").await.unwrap();
}

#[tokio::test]
async fn a_vanished_consumer_is_recreated_by_enrolling() {
    let env = Env::start().await;
    let (alice, bob) = (env.registered_user().await, env.registered_user().await);
    let phone = DeviceId::random();
    let b = env.connect(&bob, Some(&phone)).await;
    b.enroll(&phone, "phone").await.unwrap();
    env.connect(&alice, None).await.send(&bob.key, alice.seal_to(&bob, "x")).await.unwrap();
    let consumer = device_consumer(&bob.key, &phone);
    let js = env.inbox_js().await;
    js.get_stream("KEZ_INBOX").await.unwrap().delete_consumer(&consumer).await.unwrap();
    let pulled = b.pull(&phone, 1, true).await;
    assert!(pulled.payloads.is_empty());
    assert_eq!(b.enroll(&phone, "phone").await.unwrap()["created"], false);
    assert_eq!(b.pull(&phone, 5, true).await.payloads.len(), 1, "everything held is delivered again");
}

#[tokio::test]
async fn malformed_requests_get_stable_errors_and_change_nothing() {
    let env = Env::start().await;
    let bob = env.registered_user().await;
    let b = env.connect(&bob, None).await;
    let cases: Vec<(DeviceOp, &str, ErrorCode)> = vec![
        (DeviceOp::Enroll, "not json", ErrorCode::InvalidJson),
        (DeviceOp::Enroll, "{}", ErrorCode::InvalidRequest),
        (DeviceOp::Enroll, r#"{"device":"XYZ","name":"a"}"#, ErrorCode::InvalidRequest),
        (DeviceOp::Enroll, r#"{"device":"0123456789abcdef","name":""}"#, ErrorCode::InvalidRequest),
        (DeviceOp::Enroll, r#"{"device":"0123456789abcdef","name":"a\u0007"}"#, ErrorCode::InvalidRequest),
        (DeviceOp::Enroll, r#"{"device":"0123456789abcdef","name":"a","x":1}"#, ErrorCode::InvalidRequest),
        (DeviceOp::List, r#"{"x":1}"#, ErrorCode::InvalidRequest),
        (DeviceOp::List, "", ErrorCode::InvalidJson),
        (DeviceOp::Rename, r#"{"device":"0123456789abcdef"}"#, ErrorCode::InvalidRequest),
        (DeviceOp::Remove, r#"{"device":7}"#, ErrorCode::InvalidRequest),
    ];
    for (op, body, expected) in cases {
        let r = b.call(kv_schemas::subjects::user_devices_subject(&bob.key, op), body.to_owned().into()).await;
        assert_eq!(code(r), expected, "{op:?} {body}");
    }
    let long = "x".repeat(65);
    let r = b.devices(DeviceOp::Enroll, json!({"device": DeviceId::random(), "name": long})).await;
    assert_eq!(code(r), ErrorCode::InvalidRequest);
    for (subject, body) in [
        (kv_schemas::subjects::user_block_subject(&bob.key), "{}"),
        (kv_schemas::subjects::user_block_subject(&bob.key), r#"{"sender":"ed25519:00"}"#),
        (kv_schemas::subjects::user_unblock_subject(&bob.key), "[]"),
    ] {
        let r = b.call(subject, body.to_owned().into()).await;
        assert!(
            matches!(code(r), ErrorCode::InvalidRequest | ErrorCode::InvalidJson | ErrorCode::InvalidKey),
            "{body}"
        );
    }
    // Unknown operations under the user's prefix get no answer (no endpoint), never a panic.
    let r = b.call(format!("kez.u.{}.devices.explode", bob.hex()), "{}".into()).await;
    assert!(r.is_err());
    assert_eq!(b.devices(DeviceOp::List, json!({})).await.unwrap(), json!({"devices": []}));
}
