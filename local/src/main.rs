//! registry-local: quayside on one port over embedded storage, no AWS account needed.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "quayside's registry on one port, over embedded storage"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000", env = "QUAYSIDE_ADDR")]
    addr: SocketAddr,
    /// Folder for metadata, blobs, the signing key and the event log; created if missing.
    #[arg(long, default_value = "./registry-data", env = "QUAYSIDE_DATA_DIR")]
    data_dir: PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let registry = quayside::backend::open_embedded(&args.data_dir)?;
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    tracing::warn!(
        addr = %listener.local_addr()?,
        data_dir = %args.data_dir.display(),
        "registry-local is listening WITHOUT authentication: anyone who can reach it may push and pull"
    );
    axum::serve(listener, registry_local::router(registry))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
