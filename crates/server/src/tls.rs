//! The broker's TLS: the certificate every TLS listener serves, loaded at start and again on
//! SIGHUP (open connections keep the certificate they started with; a file that does not load
//! leaves the old one in place and says why).

use anyhow::{Context as _, Result};
use porter_gateway_kit::tls_files::Tls;
use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;

use crate::settings::tls::TlsSettings;

/// Loads the `[tls]` files, if any listener speaks TLS (off the reactor: it reads files).
pub async fn load(settings: &TlsSettings) -> Result<Option<Tls>> {
    let Some(files) = settings.files.clone() else {
        return Ok(None);
    };
    let shown = files.cert_file.display().to_string();
    let tls = tokio::task::spawn_blocking(move || Tls::load(files))
        .await?
        .with_context(|| format!("loading the TLS certificate {shown}"))?;
    Ok(Some(tls))
}

/// Reloads `tls` on every SIGHUP until `shutdown`.
pub async fn reload_on_sighup(mut hup: Signal, tls: Option<Tls>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            got = hup.recv() => if got.is_none() { return },
            _ = shutdown.cancelled() => return,
        }
        let Some(tls) = tls.clone() else {
            tracing::info!("SIGHUP received: no TLS listener, nothing to reload");
            continue;
        };
        let cert = tls.files().cert_file.display().to_string();
        match tokio::task::spawn_blocking(move || tls.reload()).await {
            Ok(Ok(())) => {
                tracing::info!(cert = %cert, "SIGHUP: TLS certificate reloaded; new connections use it")
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "SIGHUP: TLS reload failed; the previous certificate stays")
            }
            Err(e) => tracing::error!(error = %e, "SIGHUP: TLS reload task failed"),
        }
    }
}
