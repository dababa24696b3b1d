//! The admin listener warns loudly when it is reachable beyond loopback over
//! plain HTTP (its own binary: it installs a global log subscriber).

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn start_with_admin_on(dir: &tempfile::TempDir, admin: &str) -> repogate::app::Running {
    let path = dir
        .path()
        .join(format!("gate-{}.toml", admin.replace([':', '.'], "_")));
    let store = dir
        .path()
        .join(format!("store-{}", admin.replace([':', '.'], "_")));
    let text = format!("[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"{admin}\"\n[store]\npath = \"{}\"\n", store.display());
    std::fs::write(&path, text).unwrap();
    let config = repogate::config::load(&path).unwrap();
    repogate::app::start(config, std::future::pending())
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_listener_beyond_loopback_is_warned_about_and_loopback_is_not() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let dir = tempfile::tempdir().unwrap();

    let quiet = start_with_admin_on(&dir, "127.0.0.1:0").await;
    let before = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!before.contains("beyond this machine"), "{before}");
    quiet.shutdown().await;

    let loud = start_with_admin_on(&dir, "0.0.0.0:0").await;
    let after = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(after.contains("WARN"), "{after}");
    assert!(
        after.contains("reachable beyond this machine over plain HTTP"),
        "{after}"
    );
    loud.shutdown().await;
}
