//! [`LocalSh`]: a [`super::Remote`] that runs scripts with the local POSIX sh,
//! exactly as a host would (`sh -s` with the script on stdin, or `sh -c SCRIPT`
//! with stdin data). Used by tests (a host tree under a temp dir) and for local use.

use super::{Output, Remote, TransportError};
use std::io::Write;
use std::process::{Command, Stdio};

/// The local sh as a host. Counts round trips like a [`super::Session`].
#[derive(Debug)]
pub struct LocalSh {
    name: String,
    trips: usize,
}

impl LocalSh {
    /// A local "host" called `name` in messages.
    pub fn new(name: &str) -> LocalSh {
        LocalSh {
            name: name.to_string(),
            trips: 0,
        }
    }
}

impl Remote for LocalSh {
    fn host(&self) -> &str {
        &self.name
    }

    fn run(&mut self, script: &str, stdin: &[u8]) -> Result<Output, TransportError> {
        self.trips += 1;
        let err = |e: std::io::Error| TransportError::Channel {
            host: self.name.clone(),
            detail: e.to_string(),
        };
        let (args, input): (Vec<&str>, &[u8]) = if stdin.is_empty() {
            (vec!["-s"], script.as_bytes())
        } else {
            (vec!["-c", script], stdin)
        };
        let mut child = Command::new("sh")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(err)?;
        let mut sin = child.stdin.take();
        let data = input.to_vec();
        // A separate writer: the script may answer before it read all its input.
        let writer = std::thread::spawn(move || {
            if let Some(s) = sin.as_mut() {
                let _ = s.write_all(&data);
            }
        });
        let out = child.wait_with_output().map_err(err)?;
        let _ = writer.join();
        use std::os::unix::process::ExitStatusExt;
        Ok(Output {
            stdout: out.stdout,
            stderr: out.stderr,
            status: out.status.code().unwrap_or(-1),
            signal: out.status.signal().map(|s| s.to_string()),
        })
    }

    fn round_trips(&self) -> usize {
        self.trips
    }
}
