//! Test support: a real headless browser (Debian's `chromium`, driven over WebDriver by
//! `chromedriver` from `chromium-driver`) for the dashboard's pages.
//!
//! The dashboard (`interbank serve`) is HTML and JavaScript: what a person sees is only known once
//! a browser has run its scripts, so its tests open the pages in Chromium rather than reading the
//! HTML. Each [`Browser`] starts its own `chromedriver` on a free port, in its own process group,
//! with a temporary Chromium profile; [`Browser::close`] ends the session and the driver, and
//! dropping a `Browser` (a failed test) kills the whole group, so no Chromium is left behind.
//!
//! WebDriver is spoken over plain HTTP to 127.0.0.1, so `fantoccini` is built without any TLS
//! stack (no OpenSSL, no second rustls crypto provider). Tests run as root here, so Chromium gets
//! `--no-sandbox`. `bash scripts/setup.sh` installs both programs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Map, json};
use tokio::process::{Child, Command};

use super::free_port;

/// How long chromedriver may take to accept connections after it was started.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a waiting loop looks again.
const POLL: Duration = Duration::from_millis(100);
/// Where Debian's package puts the browser.
const CHROMIUM: &str = "/usr/bin/chromium";
/// What to run when a program is missing.
const INSTALL_HINT: &str =
    "run `bash scripts/setup.sh` (Debian packages chromium and chromium-driver)";

/// A headless Chromium session and the chromedriver that serves it.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    /// The driver's process group (its pid), Chromium's too; `None` once it was killed.
    pgid: Option<i32>,
    pub port: u16,
    /// Chromium's profile, removed when the browser is gone.
    profile: tempfile::TempDir,
}

/// The program `name` as found on `PATH`, if any.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// Whether this machine has `chromedriver` and `chromium`, so browser tests can run.
pub fn available() -> bool {
    on_path("chromedriver").is_some()
        && (on_path("chromium").is_some() || Path::new(CHROMIUM).exists())
}

/// Panics with the install hint unless [`available`].
pub fn require() {
    assert!(available(), "chromium or chromedriver is missing: {INSTALL_HINT}");
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session.
    pub async fn start() -> Browser {
        require();
        let port = free_port();
        let profile = tempfile::tempdir().expect("create a temporary Chromium profile folder");
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver ({e}): {INSTALL_HINT}"));
        let pid = driver.id().expect("a just-spawned chromedriver has a pid");
        let pgid = i32::try_from(pid).expect("a pid fits in i32");

        let deadline = Instant::now() + DRIVER_START_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Some(status) = driver.try_wait().expect("poll the chromedriver process") {
                panic!("chromedriver exited at start ({status}) on port {port}: {INSTALL_HINT}");
            }
            if Instant::now() >= deadline {
                panic!(
                    "chromedriver did not answer on 127.0.0.1:{port} within {DRIVER_START_TIMEOUT:?}: \
                     {INSTALL_HINT}"
                );
            }
            tokio::time::sleep(POLL).await;
        }

        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1400,2000",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        if Path::new(CHROMIUM).exists() {
            options["binary"] = json!(CHROMIUM);
        }
        let mut caps = Map::new();
        caps.insert("goog:chromeOptions".to_string(), options);
        // Build the browser before the session exists, so that a failure still kills the driver.
        let mut browser = Browser { client: None, driver, pgid: Some(pgid), port, profile };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                panic!("chromedriver on port {port} could not open a Chromium session: {e}")
            });
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the browser session is open")
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.client().goto(url).await.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    async fn try_text(&self, css: &str) -> Result<String, fantoccini::error::CmdError> {
        self.client().find(Locator::Css(css)).await?.text().await
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.try_text(css).await.unwrap_or_else(|e| panic!("no text for `{css}`: {e}"))
    }

    /// Polls the text of the first element matching `css` every 100 ms until `predicate` accepts
    /// it, and returns it; panics with the last text seen after `timeout_ms`.
    pub async fn wait_for_text(
        &self,
        css: &str,
        predicate: impl Fn(&str) -> bool,
        timeout_ms: u64,
    ) -> String {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            let last = match self.try_text(css).await {
                Ok(text) if predicate(&text) => return text,
                Ok(text) => format!("{text:?}"),
                Err(e) => format!("no such element ({e})"),
            };
            if Instant::now() >= deadline {
                panic!(
                    "`{css}` never had the expected text within {timeout_ms} ms; last seen: {last}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self
            .client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("nothing to click at `{css}`: {e}"));
        element.click().await.unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
    }

    /// Writes a PNG screenshot of the window (1400×2000) to `path`.
    pub async fn screenshot_png(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        let png = self.client().screenshot().await.expect("take a screenshot");
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// The page's current HTML, as the browser has it after its scripts ran.
    pub async fn page_source(&self) -> String {
        self.client().source().await.expect("read the page source")
    }

    /// Ends the session (Chromium quits) and stops chromedriver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            client.close().await.expect("end the WebDriver session");
        }
        self.kill_group();
        self.driver.wait().await.expect("wait for chromedriver to exit");
    }

    /// Kills chromedriver and everything it started (its process group), once: the group's id
    /// is forgotten before the driver is reaped, so it is never signalled after it could be reused.
    fn kill_group(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: kill(2) with a negative pid signals one process group: the one our own
            // child leads, which exists until that child is reaped (it is not reaped yet).
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill_group();
        // Reap it if it is already gone; `kill_on_drop` and tokio's reaper handle the rest.
        let _ = self.driver.try_wait();
    }
}
