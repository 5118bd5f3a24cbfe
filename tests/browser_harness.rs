//! Proves the browser harness (`tests/common/browser.rs`) works on this machine: a real headless
//! Chromium runs a local page's scripts, reads text, clicks and takes a screenshot.

mod common;

use common::browser;

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PAGE: &str = r#"<!doctype html>
<html><head><title>harness</title></head><body>
<p>n = <span id="n">0</span></p>
<button id="b" onclick="document.getElementById('n').textContent = 'clicked'">click</button>
<script>setTimeout(() => { document.getElementById('n').textContent = '1'; }, 300);</script>
</body></html>"#;

/// Serves `PAGE` to every request on a free local port; returns the page's URL.
async fn serve_page() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the test page's listener");
    let addr = listener.local_addr().expect("the test page's address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                // One read is enough for a browser's GET; the request itself is not looked at.
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{PAGE}",
                    PAGE.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_drives_a_real_page() {
    let url = serve_page().await;

    let started = Instant::now();
    let browser = browser::Browser::start().await;
    let session = started.elapsed();
    browser.goto(&url).await;
    eprintln!("browser start: {session:?}; start + first page: {:?}", started.elapsed());

    assert_eq!(browser.wait_for_text("#n", |t| t == "1", 5000).await, "1");
    browser.click("#b").await;
    browser.wait_for_text("#n", |t| t == "clicked", 5000).await;
    assert!(browser.page_source().await.contains("clicked"));

    let dir = tempfile::tempdir().expect("a temporary folder for the screenshot");
    let png = dir.path().join("page.png");
    browser.screenshot_png(&png).await;
    let bytes = std::fs::read(&png).expect("read the screenshot back");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "the screenshot is not a PNG");

    browser.close().await;
}
