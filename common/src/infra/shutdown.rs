//! Shutdown: one cancellation token per process, fired by SIGTERM or Ctrl-C and handed to
//! every task that must stop cleanly.

pub use tokio_util::sync::CancellationToken as Shutdown;

/// A token that is cancelled on SIGTERM or SIGINT.
pub fn on_signals() -> Shutdown {
    let token = Shutdown::new();
    let fire = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
        }
        fire.cancel();
    });
    token
}
