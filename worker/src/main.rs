//! `kamera-worker`: see `kamera-worker --help`.

use clap::Parser;
use kamera_worker::config::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if config.check_config {
        config.pools().map_err(anyhow::Error::msg)?;
        println!("configuration ok");
        return Ok(());
    }
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let shutdown = kamera_worker::app::shutdown_on_signals();
    kamera_worker::app::run(config, shutdown).await
}
