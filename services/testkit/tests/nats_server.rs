//! Proves the harness: a real nats-server with the production-shaped config.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use futures::StreamExt as _;
use kez_testkit::{KeyPair, NatsServer, ServiceUser};

#[tokio::test]
async fn ops_user_can_use_jetstream_kv() {
    let server = NatsServer::start().await.unwrap();
    let ops = server.connect_ops().await.unwrap();
    let js = jetstream::new(ops);
    let store = js
        .create_key_value(kv::Config { bucket: "kez_testkit".into(), history: 1, ..Default::default() })
        .await
        .unwrap();

    store.put("alice", "v1".into()).await.unwrap();
    assert_eq!(store.get("alice").await.unwrap().unwrap(), "v1");

    // First writer wins: create on an existing key is a conflict, and leaves the value alone.
    let err = store.create("alice", "v2".into()).await.unwrap_err();
    assert_eq!(err.kind(), kv::CreateErrorKind::AlreadyExists, "{err}");
    assert_eq!(store.get("alice").await.unwrap().unwrap(), "v1");
    store.create("bob", "b".into()).await.unwrap();
    assert_eq!(store.get("bob").await.unwrap().unwrap(), "b");
}

#[tokio::test]
async fn service_users_talk_over_tcp_and_websocket() {
    let server = NatsServer::start().await.unwrap();
    assert!(server.ws_url().starts_with("ws://127.0.0.1:"));
    // A responder on WebSocket, a requester on TCP: both in account APP.
    let ws = server.connect_ws_as(ServiceUser::Registry).await.unwrap();
    let mut sub = ws.subscribe("kez.svc.registry.v1.echo").await.unwrap();
    ws.flush().await.unwrap();
    let responder = tokio::spawn({
        let ws = ws.clone();
        async move {
            let msg = sub.next().await.unwrap();
            ws.publish(msg.reply.unwrap(), msg.payload).await.unwrap();
            ws.flush().await.unwrap();
        }
    });
    let tcp = server.connect_as(ServiceUser::Gateway).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), tcp.request("kez.svc.registry.v1.echo", "ping".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.payload, "ping");
    responder.await.unwrap();

    // The server sees one websocket connection, named after the service.
    let (status, connz) = server.monitor_get("/connz?auth=1").await.unwrap();
    assert_eq!(status, 200);
    assert!(connz.contains("\"name\": \"registry\""), "{connz}");
}

#[tokio::test]
async fn two_servers_run_side_by_side() {
    let (a, b) = tokio::join!(NatsServer::start(), NatsServer::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.client_url(), b.client_url());
    assert_ne!(a.ws_url(), b.ws_url());
    assert_ne!(a.monitor_url(), b.monitor_url());
    assert_ne!(a.issuer_key().public_key(), b.issuer_key().public_key());

    let ja = jetstream::new(a.connect_ops().await.unwrap());
    let jb = jetstream::new(b.connect_ops().await.unwrap());
    let cfg = || kv::Config { bucket: "kez_side".into(), ..Default::default() };
    ja.create_key_value(cfg()).await.unwrap().put("k", "a".into()).await.unwrap();
    let kb = jb.create_key_value(cfg()).await.unwrap();
    // Separate stores: b does not see a's write.
    assert_eq!(kb.get("k").await.unwrap(), None);

    // Keys of one server do not open the other.
    let err = b
        .connect_options(a.ops_key())
        .unwrap()
        .connection_timeout(Duration::from_secs(4))
        .connect(b.client_url())
        .await;
    assert!(err.is_err());
}

#[tokio::test]
async fn unknown_nkey_is_refused_without_a_callout_worker() {
    let server = NatsServer::start().await.unwrap();
    let stranger = KeyPair::new_user();
    let started = Instant::now();
    let result = server
        .connect_options(&stranger)
        .unwrap()
        .connection_timeout(Duration::from_secs(8))
        .connect(server.client_url())
        .await;
    let err = result.expect_err("an unknown nkey must not connect");
    // No worker answers, so the server gives up after authorization.timeout (2 s) and sends
    // "Authorization Violation".
    assert_eq!(err.kind(), async_nats::ConnectErrorKind::AuthorizationViolation, "{err}");
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
}

#[tokio::test]
async fn unknown_nkey_connect_reaches_the_callout_worker() {
    let server = NatsServer::start().await.unwrap();
    let worker = server.connect_worker().await.unwrap();
    let mut requests = worker.queue_subscribe("$SYS.REQ.USER.AUTH", "kez-auth".into()).await.unwrap();
    worker.flush().await.unwrap();

    let stranger = KeyPair::new_user();
    let opts = server.connect_options(&stranger).unwrap();
    let url = server.client_url();
    let client = tokio::spawn(async move { opts.connect(url).await.map(|_| ()) });

    let req = tokio::time::timeout(Duration::from_secs(5), requests.next()).await.unwrap().unwrap();
    // The server-signed authorization request JWT; the worker (not running here) would answer it.
    let jwt = std::str::from_utf8(&req.payload).unwrap();
    assert!(jwt.starts_with("eyJ") && jwt.split('.').count() == 3, "{jwt}");
    assert!(req.reply.is_some());
    // Unanswered: the client is refused once the 2 s authorization timeout passes.
    assert!(client.await.unwrap().is_err());
}

#[tokio::test]
async fn config_is_applied() {
    let server =
        NatsServer::builder().allowed_origins(["http://127.0.0.1:8080"]).max_payload(2 << 20).start().await.unwrap();
    let varz = server.varz().await.unwrap();
    assert_eq!(varz["server_name"], server.server_name());
    assert_eq!(varz["max_payload"], 2 << 20);
    assert_eq!(varz["jetstream"]["config"]["sync_always"], true, "{varz:#}");
    assert_eq!(varz["jetstream"]["config"]["max_storage"], 1u64 << 30);
    assert_eq!(varz["websocket"]["port"], server.websocket_port());
    assert_eq!(varz["system_account"], "SYS");
    // The sys user logs into the system account.
    let sys = server.connect_sys().await.unwrap();
    sys.flush().await.unwrap();
    // Startup warnings we expect, and nothing fatal.
    let log = server.log_contents();
    assert!(log.contains("Server is ready"), "{log}");
}

#[tokio::test]
async fn drop_kills_the_process_and_removes_the_directory() {
    let server = NatsServer::start().await.unwrap();
    let pid = server.pid().unwrap();
    let dir = server.dir().to_owned();
    let port = server.client_port();
    assert!(dir.join("nats.conf").is_file());
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(server);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "nats-server {pid} still alive");
    assert!(!dir.exists(), "{} not removed", dir.display());
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err());
}

#[tokio::test]
async fn config_and_secrets_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let server = NatsServer::start().await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(server.config_path()), 0o600);
    assert_eq!(mode(&server.dir().join("secrets/secrets.json")), 0o600);
    // The config carries public keys only, never a seed.
    let conf = std::fs::read_to_string(server.config_path()).unwrap();
    assert!(conf.contains(&server.ops_key().public_key()));
    assert!(!conf.contains(&server.ops_key().seed().unwrap()));
    assert!(!conf.contains(&server.issuer_key().seed().unwrap()));
}

#[tokio::test]
async fn a_panicking_test_still_kills_the_server() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let server = NatsServer::start().await.unwrap();
        tx.send((server.pid().unwrap(), server.dir().to_owned())).unwrap();
        panic!("simulated test failure (expected; the server log tail is printed below)");
    });
    assert!(task.await.unwrap_err().is_panic());
    let (pid, dir) = rx.await.unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "nats-server {pid} leaked");
    assert!(!dir.exists());
}

#[tokio::test]
async fn static_service_permissions_are_enforced() {
    use kez_testkit::Permissions;
    let server = NatsServer::builder()
        .service_permissions(
            ServiceUser::Webfinger,
            Permissions {
                subscribe_allow: vec!["kez.svc.webfinger.>".into()],
                publish_deny: vec!["kez.inbox.>".into()],
                allow_responses: true,
                ..Permissions::default()
            },
        )
        .start()
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let client = server
        .connect_options(server.service_key(ServiceUser::Webfinger))
        .unwrap()
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(server.client_url())
        .await
        .unwrap();
    // Allowed: its own endpoint subjects.
    let _ok = client.subscribe("kez.svc.webfinger.v1.resolve").await.unwrap();
    client.flush().await.unwrap();
    // Denied: the server answers with a permissions violation (async, as a ServerError event).
    let _denied = client.subscribe("kez.inbox.someone").await.unwrap();
    client.flush().await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    assert!(err.to_lowercase().contains("permissions violation"), "{err}");
}

/// Every service user has a least-privilege block (PROTOCOL.md §9.5): each one is refused, by
/// the server, what belongs to another service, to the inbox or to users.
#[tokio::test]
async fn each_service_user_is_denied_what_it_does_not_need() {
    let server = NatsServer::start().await.unwrap();
    // (user, publishes it must not make, subscriptions it must not hold)
    let cases: Vec<(ServiceUser, Vec<&str>, Vec<&str>)> = vec![
        (
            ServiceUser::Gateway,
            vec!["$KV.kez_handles.x", "$JS.API.STREAM.INFO.KV_kez_handles", "kez.u.aa.send.bb", "kez.inbox.aa.t"],
            vec!["kez.svc.registry.v1.>", "$KV.>", "kez.u.>"],
        ),
        (
            ServiceUser::Registry,
            vec!["$KV.kez_sigchains.x", "$JS.INBOX.API.INFO", "kez.inbox.aa.t", "kez.svc.sigchain.v1.append"],
            vec!["kez.svc.sigchain.v1.>", "kez.u.*.>"],
        ),
        (
            ServiceUser::Sigchain,
            vec!["$KV.kez_handles.x", "$JS.API.STREAM.DELETE.KV_kez_handles", "kez.svc.registry.v1.register"],
            vec!["kez.svc.registry.v1.>"],
        ),
        (ServiceUser::Manifest, vec!["$KV.kez_keys.x", "kez.inbox.aa.t"], vec!["kez.u.*.>"]),
        (ServiceUser::Webfinger, vec!["$KV.kez_handles.x", "kez.svc.registry.v1.register"], vec!["$KV.>"]),
        (ServiceUser::AuthCallout, vec!["$KV.kez_keys.x", "$JS.INBOX.API.INFO"], vec!["kez.svc.registry.v1.>"]),
        (
            ServiceUser::Inbox,
            vec!["$KV.kez_handles.x", "$JS.API.STREAM.INFO.KV_kez_sigchains", "kez.svc.registry.v1.register"],
            vec!["kez.svc.registry.v1.>"],
        ),
    ];
    for (user, publishes, subscribes) in cases {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let client = server
            .connect_options(server.service_key(user))
            .unwrap()
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        let _ = tx.send(e.to_string());
                    }
                }
            })
            .connect(server.client_url())
            .await
            .unwrap();
        let mut subs = Vec::new();
        for subject in &subscribes {
            subs.push(client.subscribe(subject.to_string()).await.unwrap());
        }
        for subject in &publishes {
            client.publish(subject.to_string(), "x".into()).await.unwrap();
        }
        client.flush().await.unwrap();
        let mut denied = Vec::new();
        while denied.len() < publishes.len() + subscribes.len() {
            let e = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{user}: only {denied:?} were refused"))
                .unwrap();
            assert!(e.to_lowercase().contains("permissions violation"), "{user}: {e}");
            denied.push(e);
        }
        for subject in publishes.iter().chain(&subscribes) {
            assert!(
                denied.iter().any(|e| e.contains(&format!("\"{subject}\""))),
                "{user}: {subject} not refused: {denied:?}"
            );
        }
    }
    // Nothing reached the buckets.
    let js = jetstream::new(server.connect_ops().await.unwrap());
    assert!(js.get_key_value("kez_handles").await.is_err(), "no bucket was created by the attempts");
}
