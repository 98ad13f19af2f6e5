//! The drill's clients, all inside the lab namespace like the office's PCs: a writer
//! that inserts unique ids through the VIP (a new connection per write, short
//! timeouts) and logs each outcome, one reader per member that asks every 200 ms
//! whether that member accepts writes, and a sampler of which members hold the VIP.

use super::pg::{self, PgError, Target};
use super::Member;
use crate::lab;
use serde::Serialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One insert through the VIP; times in seconds since the round started.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Attempt {
    pub id: u64,
    pub start: f64,
    pub end: f64,
    /// The server's CommandComplete arrived: the write is acknowledged.
    pub ok: bool,
}

/// What a member answered a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Seen {
    /// Not in recovery: it accepts writes.
    Writable,
    /// A standby (read-only).
    Standby,
    /// No answer within the timeout.
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub t: f64,
    pub member: usize,
    pub seen: Seen,
}

/// Which members carried the VIP at `t`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HolderSample {
    pub t: f64,
    pub holders: Vec<usize>,
}

/// Everything the clients saw during one round.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timeline {
    pub attempts: Vec<Attempt>,
    pub samples: Vec<Sample>,
    pub holders: Vec<HolderSample>,
    /// Why writes failed: (reason, count), most frequent first.
    pub errors: Vec<(String, u64)>,
}

pub const USER: &str = "infra_drill";
pub const DATABASE: &str = "infra_drill";

pub fn target(addr: Ipv4Addr, port: u16, connect_ms: u64, io_ms: u64) -> Target {
    Target {
        addr: SocketAddr::from((addr, port)),
        user: USER.into(),
        database: DATABASE.into(),
        connect_timeout: Duration::from_millis(connect_ms),
        io_timeout: Duration::from_millis(io_ms),
    }
}

/// Run `f` on a new thread inside the lab namespace and wait for its result.
pub fn in_lab<T: Send + 'static>(
    lab: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let lab = lab.to_string();
    std::thread::spawn(move || -> std::io::Result<T> {
        lab::enter(&lab)?;
        Ok(f())
    })
    .join()
    .map_err(|_| std::io::Error::other("a drill client thread panicked"))?
}

/// What the writer returns: its attempts and its failure counts.
type Written = (Vec<Attempt>, Vec<(String, u64)>);

/// The running clients of one round.
pub struct Observer {
    stop: Arc<AtomicBool>,
    writer: JoinHandle<std::io::Result<Written>>,
    readers: Vec<JoinHandle<std::io::Result<Vec<Sample>>>>,
    holder: JoinHandle<Vec<HolderSample>>,
}

impl Observer {
    /// Start the clients; `t0` is the round's zero. Ids start at `first_id`.
    pub fn start(
        lab: &str,
        vip: Ipv4Addr,
        port: u16,
        members: &[Member],
        t0: Instant,
        first_id: u64,
        rate: u32,
    ) -> Observer {
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (lab, stop) = (lab.to_string(), stop.clone());
            std::thread::spawn(move || {
                lab::enter(&lab)?;
                Ok(write_loop(
                    &target(vip, port, 300, 1000),
                    t0,
                    first_id,
                    rate,
                    &stop,
                ))
            })
        };
        let readers = members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let (lab, stop, addr) = (lab.to_string(), stop.clone(), m.address);
                std::thread::spawn(move || {
                    lab::enter(&lab)?;
                    let t = target(addr, port, 300, 300);
                    let mut out = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let asked = Instant::now();
                        let seen = match pg::query(&t, "select pg_is_in_recovery()") {
                            Ok(rows) => match rows.first().and_then(|r| r.first()) {
                                Some(Some(v)) if v == "f" => Seen::Writable,
                                Some(Some(_)) => Seen::Standby,
                                _ => Seen::Down,
                            },
                            Err(_) => Seen::Down,
                        };
                        out.push(Sample {
                            t: secs(asked, t0),
                            member: i,
                            seen,
                        });
                        sleep_rest(asked, Duration::from_millis(200));
                    }
                    Ok(out)
                })
            })
            .collect();
        let holder = {
            let (lab, stop) = (lab.to_string(), stop.clone());
            let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let asked = Instant::now();
                    let holders = vip_holders(&lab, &names, vip);
                    out.push(HolderSample {
                        t: secs(asked, t0),
                        holders,
                    });
                    sleep_rest(asked, Duration::from_millis(250));
                }
                out
            })
        };
        Observer {
            stop,
            writer,
            readers,
            holder,
        }
    }

    /// Stop the clients and collect what they saw.
    pub fn finish(self) -> std::io::Result<Timeline> {
        self.stop.store(true, Ordering::Relaxed);
        let panicked = || std::io::Error::other("a drill client thread panicked");
        let (attempts, errors) = self.writer.join().map_err(|_| panicked())??;
        let mut samples = Vec::new();
        for r in self.readers {
            samples.extend(r.join().map_err(|_| panicked())??);
        }
        samples.sort_by(|a, b| a.t.total_cmp(&b.t));
        let holders = self.holder.join().map_err(|_| panicked())?;
        Ok(Timeline {
            attempts,
            samples,
            holders,
            errors,
        })
    }
}

fn write_loop(t: &Target, t0: Instant, first_id: u64, rate: u32, stop: &AtomicBool) -> Written {
    // at most `rate` writes per second: each is a new connection (a fork on the server)
    let period = Duration::from_secs(1) / rate.max(1);
    let mut out = Vec::new();
    let mut errors: std::collections::BTreeMap<String, u64> = Default::default();
    let mut id = first_id;
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        let r = pg::query(t, &format!("insert into w (id) values ({id})"));
        let end = Instant::now();
        out.push(Attempt {
            id,
            start: secs(start, t0),
            end: secs(end, t0),
            ok: r.is_ok(),
        });
        id += 1;
        if let Err(e) = r {
            *errors.entry(reason(&e)).or_default() += 1;
            // a refused connection comes back at once: do not spin
            sleep_rest(start, Duration::from_millis(20));
        } else {
            sleep_rest(start, period);
        }
    }
    let mut errors: Vec<(String, u64)> = errors.into_iter().collect();
    errors.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    (out, errors)
}

/// A failure's kind, without the parts that differ per write.
fn reason(e: &PgError) -> String {
    match e {
        PgError::Server { code, message } => {
            let m: String = message.chars().take(60).collect();
            format!("{code} {m}")
        }
        other => other.to_string(),
    }
}

/// Members whose interfaces carry `vip` right now (a powered-off member holds nothing).
pub fn vip_holders(lab: &str, members: &[String], vip: Ipv4Addr) -> Vec<usize> {
    let vip = vip.to_string();
    members
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            lab::exec(lab, m, &["ip", "-o", "addr", "show", "to", &vip])
                .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
        })
        .map(|(i, _)| i)
        .collect()
}

pub fn secs(t: Instant, t0: Instant) -> f64 {
    t.saturating_duration_since(t0).as_secs_f64()
}

fn sleep_rest(since: Instant, period: Duration) {
    if let Some(rest) = period.checked_sub(since.elapsed()) {
        std::thread::sleep(rest);
    }
}
