//! `interbank serve` for the tests: on a free port, with its address once it listens. The rest
//! of its stderr is kept (so the server never writes to a closed pipe) and shown when a test
//! fails; the server is killed when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use super::interbank;

pub struct Served {
    child: Child,
    pub address: String,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("serve's stderr:\n{}", self.stderr.lock().unwrap());
        }
    }
}

impl Served {
    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

/// Starts `interbank serve --listen 127.0.0.1:0` with `extra` flags against `url`.
pub fn serve(url: &str, dir: &Path, extra: &[&str]) -> Served {
    let mut child = interbank(url, dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("interbank serve starts");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("serve says where it listens");
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("serve printed {line:?}"))
        .to_string();
    let kept = Arc::new(Mutex::new(line));
    let sink = Arc::clone(&kept);
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        sink.lock().unwrap().push_str(&rest);
    });
    Served { child, address, stderr: kept }
}
