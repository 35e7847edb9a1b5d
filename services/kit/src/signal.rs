//! The one stop-signal handler of the kez-chat binaries (`kez-server run` and `up`, the
//! gateway): SIGINT or SIGTERM, installed eagerly.

/// Installs the SIGINT and SIGTERM handlers now and returns a future that resolves on the
/// first of them. Now, not on first poll: until a handler exists SIGTERM kills the process
/// outright (no clean stop), and `up` says "Press Ctrl-C to stop" before it starts waiting.
pub fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = signal(SignalKind::interrupt()).and_then(|int| Ok((int, signal(SignalKind::terminate())?)));
        async move {
            match handlers {
                Ok((mut int, mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
