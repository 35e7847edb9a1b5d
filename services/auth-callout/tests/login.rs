//! Logins through the worker against a real nats-server: who is refused and why, operator errors
//! at start-up, and discoverability.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use async_nats::{Auth, ConnectErrorKind};
use common::{Env, Events, User};
use kez_auth_callout::{CalloutConfig, RejectReason, STATUS_SUBJECT, StartError, Stats};
use kez_testkit::{NatsServer, ServiceUser};
use nkeys::KeyPair;

/// Connects and expects "Authorization Violation". Callers then check the worker's counter for
/// the expected reason, which proves the worker refused (rather than the server timing out).
async fn expect_refused(options: async_nats::ConnectOptions, url: &str) {
    let err = options.connect(url).await.expect_err("login must be refused");
    assert_eq!(err.kind(), ConnectErrorKind::AuthorizationViolation, "{err}");
}

#[tokio::test]
async fn unregistered_key_is_refused() {
    let env = Env::start().await;
    let stranger = User::new();
    expect_refused(stranger.options(&Events::default()).unwrap(), &env.server.client_url()).await;
    expect_refused(stranger.options(&Events::default()).unwrap(), &env.server.ws_url()).await;
    env.wait_rejected(RejectReason::Unregistered, 2).await;
    // Registering the key is enough to get in (no negative caching).
    env.registry.register(&stranger).await;
    stranger.connect(&env.server.client_url()).await.unwrap();
    let s = env.callout.stats();
    assert_eq!((s.accepted, s.rejected), (1, 2), "{s:?}");
}

#[tokio::test]
async fn signature_over_anything_but_the_nonce_is_refused() {
    let env = Env::start().await;
    let alice = env.registered_user().await;
    let nkey = alice.nkey().unwrap();
    // A valid signature by the right key, over a different nonce-looking string.
    let signing = alice.signing.clone();
    let options = alice.options_with(&Events::default(), move |nonce| {
        let mut other = nonce.clone();
        other.reverse();
        let mut auth = Auth::new();
        auth.nkey = Some(nkey.clone());
        auth.signature = Some(kv_schemas::keys::sign_raw(&signing, &other).to_vec());
        Ok(auth)
    });
    expect_refused(options, &env.server.client_url()).await;
    // ... and a replay of a signature from an earlier login (another nonce).
    let captured = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
    let (signing, nkey, cap) = (alice.signing.clone(), alice.nkey().unwrap(), captured.clone());
    let honest = alice.options_with(&Events::default(), move |nonce| {
        let sig = kv_schemas::keys::sign_raw(&signing, &nonce).to_vec();
        *cap.lock().unwrap() = Some(sig.clone());
        let mut auth = Auth::new();
        auth.nkey = Some(nkey.clone());
        auth.signature = Some(sig);
        Ok(auth)
    });
    honest.connect(env.server.client_url()).await.unwrap();
    let old_sig = captured.lock().unwrap().clone().unwrap();
    let nkey = alice.nkey().unwrap();
    let replay = alice.options_with(&Events::default(), move |_nonce| {
        let mut auth = Auth::new();
        auth.nkey = Some(nkey.clone());
        auth.signature = Some(old_sig.clone());
        Ok(auth)
    });
    expect_refused(replay, &env.server.client_url()).await;
    env.wait_rejected(RejectReason::BadSignature, 2).await;
    assert_eq!(env.callout.stats().accepted, 1);
}

#[tokio::test]
async fn empty_or_garbage_signatures_are_refused() {
    let env = Env::start().await;
    let alice = env.registered_user().await;
    let cases: [(Option<Vec<u8>>, RejectReason); 4] = [
        (None, RejectReason::MissingSignature),
        // Encodes to "", which the client omits from CONNECT: no signature at all.
        (Some(Vec::new()), RejectReason::MissingSignature),
        (Some(vec![0xAB; 64]), RejectReason::BadSignature),
        (Some(vec![1, 2, 3]), RejectReason::BadSignature),
    ];
    for (sig, reason) in cases {
        let before = env.callout.stats().rejected_for(reason);
        let nkey = alice.nkey().unwrap();
        let options = alice.options_with(&Events::default(), move |_nonce| {
            let mut auth = Auth::new();
            auth.nkey = Some(nkey.clone());
            auth.signature = sig.clone();
            Ok(auth)
        });
        expect_refused(options, &env.server.client_url()).await;
        env.wait_rejected(reason, before + 1).await;
    }
    // A client without any nkey (user/password) is refused too.
    let options = async_nats::ConnectOptions::with_user_and_password("alice".into(), "pw".into())
        .connection_timeout(common::USER_CONNECT_TIMEOUT);
    expect_refused(options, &env.server.client_url()).await;
    env.wait_rejected(RejectReason::NkeyRequired, 1).await;
    assert_eq!(env.callout.stats().accepted, 0);
}

#[tokio::test]
async fn registry_down_refuses_with_a_clear_reason() {
    let mut env = Env::start().await;
    let alice = env.registered_user().await;
    env.registry.stop().await;
    expect_refused(alice.options(&Events::default()).unwrap(), &env.server.client_url()).await;
    env.wait_rejected(RejectReason::RegistryUnavailable, 1).await;
    // The server logs the worker's reason.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = env.server.log_contents();
    assert!(log.contains("kez-auth-callout: registry_unavailable: registry unavailable"), "{log}");
}

#[tokio::test]
async fn wrong_issuer_is_detected_at_the_first_login() {
    // The worker signs with a key the server does not trust. Every login fails; the worker counts
    // (and logs, with the key the server expects) `issuer_mismatch`. nats-server 2.15.1 drops a
    // response signed by an unknown key before reading it, so it cannot log our reason; it logs
    // "Auth callout signing key is unknown" instead.
    let env = Env::start_with(|c| CalloutConfig { issuer: KeyPair::new_account(), ..c }).await;
    let alice = env.registered_user().await;
    expect_refused(alice.options(&Events::default()).unwrap(), &env.server.client_url()).await;
    env.wait_rejected(RejectReason::IssuerMismatch, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = env.server.log_contents();
    assert!(log.contains("Auth callout signing key is unknown"), "{log}");
}

#[tokio::test]
async fn service_is_discoverable_and_reports_counters() {
    let env = Env::start().await;
    let alice = env.registered_user().await;
    alice.connect(&env.server.client_url()).await.unwrap();
    expect_refused(User::new().options(&Events::default()).unwrap(), &env.server.client_url()).await;
    env.wait_rejected(RejectReason::Unregistered, 1).await;

    let ops = env.server.connect_ops().await.unwrap();
    // `nats micro list` = $SRV.INFO; ask for ours by name.
    let info = ops.request("$SRV.INFO.kez-auth-callout", "".into()).await.unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.payload).unwrap();
    assert_eq!(info["name"], "kez-auth-callout");
    assert!(info["endpoints"].as_array().unwrap().iter().any(|e| e["subject"] == STATUS_SUBJECT), "{info}");

    let reply = ops.request(STATUS_SUBJECT, "".into()).await.unwrap();
    let stats: Stats = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(stats, env.callout.stats());
    assert_eq!((stats.accepted, stats.rejected, stats.rejected_for(RejectReason::Unregistered)), (1, 1, 1));
}

#[tokio::test]
async fn two_workers_share_the_load_and_one_can_stop() {
    let env = Env::start().await;
    let second = kez_auth_callout::start(
        env.server.connect_worker().await.unwrap(),
        env.server.connect_as(ServiceUser::AuthCallout).await.unwrap(),
        CalloutConfig::new(env.server.issuer_key().clone()),
    )
    .await
    .unwrap();
    let mut users = Vec::new();
    for _ in 0..12 {
        users.push(env.registered_user().await);
    }
    for u in &users {
        u.connect(&env.server.client_url()).await.unwrap();
    }
    let (a, b) = (env.callout.stats().accepted, second.stats().accepted);
    assert_eq!(a + b, 12, "each login answered exactly once");
    // With the second worker stopped, the first still admits everyone.
    second.stop().await;
    for u in &users[..4] {
        u.connect(&env.server.client_url()).await.unwrap();
    }
    assert_eq!(env.callout.stats().accepted, a + 4);
}

// ---- operator errors at start-up ------------------------------------------------------------

async fn start_err(auth: async_nats::Client, app: async_nats::Client, config: CalloutConfig) -> StartError {
    kez_auth_callout::start(auth, app, config).await.expect_err("start must fail")
}

#[tokio::test]
async fn start_up_refuses_misconfigurations_with_instructions() {
    let server = NatsServer::builder().sync_interval_always(false).start().await.unwrap();
    let issuer = server.issuer_key().clone();
    let worker = || server.connect_worker();
    let app = || server.connect_as(ServiceUser::AuthCallout);

    // Issuer is a user key.
    let err = start_err(worker().await.unwrap(), app().await.unwrap(), CalloutConfig::new(KeyPair::new_user())).await;
    assert!(matches!(err, StartError::IssuerNotAccount { .. }), "{err}");
    assert!(err.to_string().contains("ACCOUNT key (A…)"), "{err}");

    // Issuer without its seed.
    let public_only = KeyPair::from_public_key(&issuer.public_key()).unwrap();
    let err = start_err(worker().await.unwrap(), app().await.unwrap(), CalloutConfig::new(public_only)).await;
    assert!(matches!(err, StartError::IssuerWithoutSeed { .. }), "{err}");

    // Out-of-range lifetime.
    let cfg =
        CalloutConfig { user_jwt_lifetime: Duration::from_secs(7 * 24 * 3600), ..CalloutConfig::new(issuer.clone()) };
    let err = start_err(worker().await.unwrap(), app().await.unwrap(), cfg).await;
    assert!(matches!(err, StartError::Config(_)), "{err}");

    // auth_conn in the APP account instead of AUTH: it would never see a request.
    let err =
        start_err(server.connect_ops().await.unwrap(), app().await.unwrap(), CalloutConfig::new(issuer.clone())).await;
    assert!(matches!(err, StartError::NotCalloutAccount { ref account, .. } if account == "APP"), "{err}");
    assert!(err.to_string().contains("authorization.auth_callout.account"), "{err}");

    // None of that created anything; a correct start then works, also twice (two workers).
    let h1 = kez_auth_callout::start(worker().await.unwrap(), app().await.unwrap(), CalloutConfig::new(issuer.clone()))
        .await
        .unwrap();
    let h2 = kez_auth_callout::start(worker().await.unwrap(), app().await.unwrap(), CalloutConfig::new(issuer.clone()))
        .await
        .unwrap();
    assert!(h1.is_running() && h2.is_running());
}

#[tokio::test]
async fn app_conn_without_the_needed_permissions_is_refused() {
    // The auth-callout service user restricted to nothing but its replies.
    let server = NatsServer::builder()
        .sync_interval_always(false)
        .service_permissions(
            ServiceUser::AuthCallout,
            kez_testkit::Permissions {
                publish_allow: vec!["$SYS.REQ.USER.INFO".into(), "$JS.API.>".into()],
                subscribe_allow: vec!["_INBOX.>".into()],
                ..Default::default()
            },
        )
        .start()
        .await
        .unwrap();
    let err = kez_auth_callout::start(
        server.connect_worker().await.unwrap(),
        server.connect_as(ServiceUser::AuthCallout).await.unwrap(),
        CalloutConfig::new(server.issuer_key().clone()),
    )
    .await
    .expect_err("start must fail");
    assert!(
        matches!(err, StartError::AppConnPermission { ref what, .. } if what.contains("kez.svc.registry.v1.lookup_key")),
        "{err}"
    );
}
