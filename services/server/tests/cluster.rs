//! `kez-server up --cluster 3` under load while kill -9 takes out, in turn, a nats-server,
//! service workers, the KV/stream leader and the gateway (the short profile of
//! `kez_testkit::fault`; `kez-loadtest fault` runs the long one). Nothing acknowledged may be
//! lost, nothing stored twice, nothing half-applied, and clients see no error they would not
//! retry (PROTOCOL.md §9.7).

// A failed unwrap is a failed test, with the location in the message.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use kez_testkit::async_nats::jetstream;
use kez_testkit::fault::{Cluster, Profile, run};

/// One cluster at a time: two would starve each other on a small machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn server_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kez-server"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_keeps_every_acknowledged_write_through_four_kill_9_faults() {
    let _one = ONE_AT_A_TIME.lock().await;
    let report = run(server_bin(), &Profile::short()).await.unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert!(report.problems.is_empty(), "problems: {:#?}", report.problems);
    assert_eq!(report.lost.total(), 0);
    assert_eq!(report.duplicates, 0);
    assert_eq!(report.client_errors, 0);
    assert_eq!(report.faults.len(), 4);
    for f in &report.faults {
        assert!(!f.killed.is_empty(), "{} killed nothing", f.fault);
    }
}

async fn replicas(js: &jetstream::Context, stream: &str) -> usize {
    js.get_stream(stream).await.unwrap().info().await.unwrap().config.num_replicas
}

/// A cluster first run with `--replicas 1` and restarted with the default 3: every bucket and
/// the inbox stream are scaled up in place, and their data stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_buckets_and_stream_are_scaled_up_to_3_in_place() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let inbox_api = kez_service_kit::natsconf::INBOX_JS_API_PREFIX;

    let cluster = Cluster::start(server_bin(), &data, &["--replicas", "1"]).unwrap();
    let ops = cluster.connect_ops().await.unwrap();
    let js = jetstream::new(ops.clone());
    assert_eq!(replicas(&js, "KV_kez_handles").await, 1);
    assert_eq!(replicas(&jetstream::with_prefix(ops.clone(), inbox_api), "KEZ_INBOX").await, 1);
    let handles = js.get_key_value("kez_handles").await.unwrap();
    handles.put("probe", "kept".into()).await.unwrap();
    drop(ops);
    cluster.stop();

    let cluster = Cluster::start(server_bin(), &data, &[]).unwrap();
    let ops = cluster.connect_ops().await.unwrap();
    let js = jetstream::new(ops.clone());
    for bucket in ["kez_handles", "kez_keys", "kez_reg_nonces", "kez_sigchains", "kez_manifests", "kez_devices"] {
        assert_eq!(replicas(&js, &format!("KV_{bucket}")).await, 3, "{bucket}");
    }
    assert_eq!(replicas(&jetstream::with_prefix(ops.clone(), inbox_api), "KEZ_INBOX").await, 3);
    let handles = js.get_key_value("kez_handles").await.unwrap();
    assert_eq!(handles.get("probe").await.unwrap().as_deref(), Some(&b"kept"[..]));
    cluster.stop();
}
