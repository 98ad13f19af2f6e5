//! A small LSP client for tests and benchmarks: runs `infra lsp`, speaks JSON-RPC
//! over its stdin/stdout, and keeps the newest diagnostics of every document.
//! Every wait ends by a deadline with a message saying what it waited for.

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Client {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Value>,
    next: i64,
    /// uri → (version, diagnostics) of the newest publishDiagnostics.
    pub diags: HashMap<String, (Option<i64>, Value)>,
    /// When each uri's newest diagnostics arrived.
    pub diag_time: HashMap<String, Instant>,
    /// The documents (uri → version) of each `infra/checked`, newest last.
    pub checked: Vec<BTreeMap<String, i64>>,
}

/// The next message; `Err` says why there is none (end of output, or what
/// was not a message).
fn read_message(r: &mut impl BufRead) -> Result<Value, String> {
    let mut len = None;
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => return Err("end of output".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading a header: {e}")),
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length:") {
            len = v.trim().parse::<usize>().ok();
        }
    }
    let mut buf = vec![0; len.ok_or("a message without Content-Length")?];
    r.read_exact(&mut buf)
        .map_err(|e| format!("reading a message: {e}"))?;
    serde_json::from_slice(&buf)
        .map_err(|e| format!("not JSON ({e}): {}", String::from_utf8_lossy(&buf)))
}

impl Client {
    /// `infra lsp` with the standard library's files written under `cache`.
    pub fn start(bin: &Path, cache: &Path, init: Value) -> Client {
        let mut child = Command::new(bin)
            .arg("lsp")
            .env("XDG_CACHE_HOME", cache)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("infra lsp starts");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = channel();
        std::thread::spawn(move || loop {
            match read_message(&mut stdout) {
                Ok(m) => {
                    if tx.send(m).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    eprintln!("infra lsp's output ends: {e}");
                    return;
                }
            }
        });
        let mut c = Client {
            child,
            stdin,
            rx,
            next: 0,
            diags: HashMap::new(),
            diag_time: HashMap::new(),
            checked: Vec::new(),
        };
        let r = c.request("initialize", init);
        assert!(r.is_ok(), "initialize: {r:?}");
        c.notify("initialized", json!({}));
        c
    }

    pub fn send(&mut self, m: Value) {
        let b = serde_json::to_vec(&m).unwrap();
        let mut out = format!("Content-Length: {}\r\n\r\n", b.len()).into_bytes();
        out.extend(b);
        self.stdin
            .write_all(&out)
            .and_then(|_| self.stdin.flush())
            .expect("infra lsp reads its input (did it exit?)");
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Send a request without waiting; its id.
    pub fn start_request(&mut self, method: &str, params: Value) -> i64 {
        self.next += 1;
        let id = self.next;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    fn take(&mut self, m: Value) -> Option<Value> {
        if m.get("method").and_then(Value::as_str) == Some("textDocument/publishDiagnostics") {
            let p = &m["params"];
            let uri = p["uri"].as_str().unwrap_or_default().to_string();
            self.diags.insert(
                uri.clone(),
                (p["version"].as_i64(), p["diagnostics"].clone()),
            );
            self.diag_time.insert(uri, Instant::now());
            return None;
        }
        if m.get("method").and_then(Value::as_str) == Some("infra/checked") {
            let docs = m["params"]["documents"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    (
                        d["uri"].as_str().unwrap_or_default().to_string(),
                        d["version"].as_i64().unwrap_or(-1),
                    )
                })
                .collect();
            self.checked.push(docs);
            return None;
        }
        Some(m)
    }

    fn next_message(&mut self, what: &str, until: Instant) -> Value {
        let left = until.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                panic!("waited {} s for {what} from infra lsp", DEADLINE.as_secs())
            }
            Err(RecvTimeoutError::Disconnected) => {
                let st = self.child.try_wait();
                panic!("infra lsp's output ended (exit: {st:?}) while waiting for {what}")
            }
        }
    }

    /// The answer to request `id`: `Ok(result)` or `Err(error)`.
    pub fn wait_response(&mut self, id: i64, what: &str) -> Result<Value, Value> {
        let until = Instant::now() + DEADLINE;
        loop {
            let m = self.next_message(what, until);
            let Some(m) = self.take(m) else { continue };
            if m.get("id").and_then(Value::as_i64) == Some(id) && m.get("method").is_none() {
                return match m.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(m.get("result").cloned().unwrap_or(Value::Null)),
                };
            }
        }
    }

    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.start_request(method, params);
        self.wait_response(id, &format!("the answer to {method}"))
    }

    /// Wait until `uri` has diagnostics of `version`.
    pub fn wait_diagnostics(&mut self, uri: &str, version: i64) -> Value {
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some((Some(v), d)) = self.diags.get(uri) {
                if *v == version {
                    return d.clone();
                }
            }
            let m = self.next_message(&format!("diagnostics of {uri} version {version}"), until);
            self.take(m);
        }
    }

    /// Wait for the check of exactly these open documents at these versions
    /// (`infra/checked` comes after every file's diagnostics of one check).
    /// `since`: only checks after the first `since` ones count.
    pub fn wait_checked(&mut self, open: &BTreeMap<String, i64>, since: usize) {
        let until = Instant::now() + DEADLINE;
        loop {
            if self.checked.iter().skip(since).any(|c| c == open) {
                return;
            }
            let m = self.next_message(&format!("the check of {open:?}"), until);
            self.take(m);
        }
    }

    /// shutdown, exit; the server's exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let r = self.request("shutdown", Value::Null);
        assert!(r.is_ok(), "shutdown: {r:?}");
        self.notify("exit", Value::Null);
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < until,
                "waited {} s for infra lsp to exit after `exit`",
                DEADLINE.as_secs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

pub fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}
