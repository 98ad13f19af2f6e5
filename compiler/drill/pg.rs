//! Just enough of PostgreSQL's frontend/backend protocol (v3) for the drill: a
//! connection per statement, `trust` authentication (the drill's own pg_hba line for
//! the lab address), the simple query protocol, text results. A write counts as
//! acknowledged only when the server's CommandComplete for it has arrived (autocommit:
//! the commit is durable by then, as far as the server's settings make it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Why a statement did not succeed, in a few words (for the drill's error counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgError {
    /// No TCP connection (refused, unreachable, timed out).
    Connect(String),
    /// The connection broke or timed out after it was made.
    Io(String),
    /// The server answered with an error (SQLSTATE, message).
    Server { code: String, message: String },
    /// Bytes that are not the protocol.
    Protocol(String),
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgError::Connect(e) => write!(f, "connect: {e}"),
            PgError::Io(e) => write!(f, "i/o: {e}"),
            PgError::Server { code, message } => write!(f, "{code}: {message}"),
            PgError::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub user: String,
    pub database: String,
    pub connect_timeout: Duration,
    /// For each read and write once connected.
    pub io_timeout: Duration,
}

/// Connect, run `sql` (one statement or several separated by `;`), return the rows of
/// the last result (each column as text, `None` for NULL) and close. The socket is made
/// in the calling thread's network namespace.
pub fn query(t: &Target, sql: &str) -> Result<Vec<Vec<Option<String>>>, PgError> {
    let s = TcpStream::connect_timeout(&t.addr, t.connect_timeout)
        .map_err(|e| PgError::Connect(kind(&e)))?;
    let io = |e: std::io::Error| PgError::Io(kind(&e));
    s.set_nodelay(true).map_err(io)?;
    s.set_read_timeout(Some(t.io_timeout)).map_err(io)?;
    s.set_write_timeout(Some(t.io_timeout)).map_err(io)?;
    let mut conn = Conn {
        s,
        buf: Vec::with_capacity(512),
    };
    conn.startup(&t.user, &t.database)?;
    let rows = conn.simple(sql);
    // Terminate; the server closes either way.
    let _ = conn.s.write_all(&[b'X', 0, 0, 0, 4]);
    rows
}

/// An I/O error in two or three words (a socket timeout reads "would block").
fn kind(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "timed out".into(),
        k => k.to_string(),
    }
}

struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn send(&mut self, tag: Option<u8>, body: &[u8]) -> Result<(), PgError> {
        let mut m = Vec::with_capacity(body.len() + 5);
        if let Some(t) = tag {
            m.push(t);
        }
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        self.s.write_all(&m).map_err(|e| PgError::Io(kind(&e)))
    }

    /// One backend message: (tag, body).
    fn recv(&mut self) -> Result<(u8, Vec<u8>), PgError> {
        let mut head = [0u8; 5];
        self.s
            .read_exact(&mut head)
            .map_err(|e| PgError::Io(kind(&e)))?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if !(4..=(64 << 20)).contains(&len) {
            return Err(PgError::Protocol(format!("message length {len}")));
        }
        self.buf.resize(len - 4, 0);
        self.s
            .read_exact(&mut self.buf)
            .map_err(|e| PgError::Io(kind(&e)))?;
        Ok((head[0], std::mem::take(&mut self.buf)))
    }

    fn startup(&mut self, user: &str, database: &str) -> Result<(), PgError> {
        let mut body = Vec::new();
        body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
        for (k, v) in [
            ("user", user),
            ("database", database),
            ("application_name", "infra-drill"),
        ] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        self.send(None, &body)?;
        loop {
            let (tag, body) = self.recv()?;
            match tag {
                b'R' => {
                    let code = body
                        .get(..4)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    if code != Some(0) {
                        return Err(PgError::Protocol(format!(
                            "the server asks for authentication method {code:?}: the drill's pg_hba line (trust) is not in effect"
                        )));
                    }
                }
                b'E' => return Err(server_error(&body)),
                b'Z' => return Ok(()),
                // ParameterStatus, BackendKeyData, NoticeResponse
                _ => {}
            }
        }
    }

    fn simple(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, PgError> {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        self.send(Some(b'Q'), &body)?;
        let mut rows = Vec::new();
        let mut err = None;
        loop {
            let (tag, body) = self.recv()?;
            match tag {
                b'T' => rows.clear(),
                b'D' => rows.push(data_row(&body)?),
                b'E' => err = Some(server_error(&body)),
                b'Z' => break,
                // CommandComplete, EmptyQueryResponse, NoticeResponse
                _ => {}
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }
}

fn data_row(b: &[u8]) -> Result<Vec<Option<String>>, PgError> {
    let bad = || PgError::Protocol("short DataRow".into());
    let n = u16::from_be_bytes([*b.first().ok_or_else(bad)?, *b.get(1).ok_or_else(bad)?]);
    let mut at = 2;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let l = b.get(at..at + 4).ok_or_else(bad)?;
        let len = i32::from_be_bytes([l[0], l[1], l[2], l[3]]);
        at += 4;
        if len < 0 {
            out.push(None);
            continue;
        }
        let v = b.get(at..at + len as usize).ok_or_else(bad)?;
        at += len as usize;
        out.push(Some(String::from_utf8_lossy(v).into_owned()));
    }
    Ok(out)
}

fn server_error(b: &[u8]) -> PgError {
    let (mut code, mut message) = (String::new(), String::new());
    for field in b.split(|&c| c == 0) {
        match field.first() {
            Some(b'C') => code = String::from_utf8_lossy(&field[1..]).into_owned(),
            Some(b'M') => message = String::from_utf8_lossy(&field[1..]).into_owned(),
            _ => {}
        }
    }
    PgError::Server { code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_and_errors() {
        // two columns: "42", NULL
        let row = [0, 2, 0, 0, 0, 2, b'4', b'2', 0xff, 0xff, 0xff, 0xff];
        assert_eq!(data_row(&row).unwrap(), vec![Some("42".to_string()), None]);
        assert!(data_row(&[0, 1, 0, 0, 0, 9, b'x']).is_err());
        let e = b"SERROR\0C25006\0Mcannot execute INSERT in a read-only transaction\0\0";
        assert_eq!(
            server_error(e),
            PgError::Server {
                code: "25006".into(),
                message: "cannot execute INSERT in a read-only transaction".into()
            }
        );
    }
}
