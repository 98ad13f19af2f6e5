//! Benchmarks for the compiler: parse + resolve (+ lint + graph), and the whole build,
//! on generated configurations of 1,000 and 10,000 hosts.
//! Run: `cargo bench --bench pipeline` (prints a table; see docs/benchmarks.md).

// Tests and benchmarks run programs and touch files: IO rules are for the library.
#![allow(clippy::disallowed_methods, clippy::disallowed_macros)]

use std::time::{Duration, Instant};

/// `hosts` hosts in failover pairs, each pair with a VIP, a service and an active-only job.
pub fn generate(hosts: usize) -> String {
    let mut s = String::with_capacity(hosts * 400);
    s.push_str("kind app(on: placement, exec: string, user: string = \"www-data\") {\n");
    s.push_str("  package \"rsync\" {}\n");
    s.push_str("  unit \"app-${name}.service\" { content = \"[Unit]\\nDescription=${name}\\n[Service]\\nExecStart=${exec}\\nUser=${user}\\n\" enable = true start = true }\n");
    s.push_str("}\n\n");
    for i in 0..hosts {
        // 10.x.y.z addresses: text only, nothing is contacted.
        let (a, b) = (i / 250, i % 250 + 1);
        s.push_str(&format!(
            "host h{i} {{ address = \"10.{}.{a}.{b}\" }}\n",
            a / 250
        ));
    }
    for p in 0..hosts / 2 {
        let i = p * 2;
        let (a, b) = (i / 250, i % 250 + 1);
        let _ = b;
        s.push_str(&format!(
            "failover g{p} {{\n  members = [h{i}, h{}]\n  vip = \"10.{}.{a}.254/24\"\n  interface = \"eth{}\"\n  check = tcp(80)\n}}\n",
            i + 1,
            a / 250,
            p % 200
        ));
        s.push_str(&format!(
            "app web{p} {{ on = g{p} exec = \"/usr/bin/web --port 80\" }}\n"
        ));
        s.push_str(&format!(
            "app cron{p} {{ on = g{p}.active exec = \"/usr/bin/cron-task\" needs = [app.web{p}] }}\n"
        ));
    }
    s
}

/// The same shape with standard-library kinds, for the whole build.
pub fn generate_std(hosts: usize) -> String {
    let mut s = String::with_capacity(hosts * 400);
    for i in 0..hosts {
        let (a, b) = (i / 250, i % 250 + 1);
        s.push_str(&format!(
            "host h{i} {{ address = \"10.{}.{a}.{b}\" }}\n",
            a / 250
        ));
    }
    for p in 0..hosts / 2 {
        let i = p * 2;
        let a = i / 250;
        s.push_str(&format!(
            "failover g{p} {{\n  members = [h{i}, h{}]\n  vip = \"10.{}.{a}.254/24\"\n  interface = \"eth{}\"\n  check = tcp(80)\n}}\n",
            i + 1,
            a / 250,
            p % 200
        ));
        s.push_str(&format!(
            "service web{p} {{ on = g{p} run = \"/usr/bin/web --port 80\" user = \"www-data\" }}\n"
        ));
        s.push_str(&format!(
            "job cron{p} {{ on = g{p}.active run = \"/usr/bin/cron-task\" every = \"1h\" needs = [service.web{p}] }}\n"
        ));
    }
    s
}

/// parse → resolve → lint → graph → render, in memory.
fn compile(text: &str) -> infra::render::Build {
    let mut loader = infra::resolve::MemLoader::default();
    loader
        .files
        .insert("bench/main.infra".into(), text.as_bytes().to_vec());
    infra::compile(std::path::Path::new("bench"), &loader)
        .expect("compiles")
        .build
}

fn time<F: FnMut()>(mut f: F) -> Duration {
    f(); // warm up
    let runs = 5;
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    best
}

fn main() {
    println!("| hosts | input | check (parse+resolve+lint+graph) | parse alone |");
    println!("|---|---|---|---|");
    let mut prev = None;
    for n in [1_000usize, 10_000, 20_000] {
        let text = generate(n);
        let (_, diags) = infra::check_str("bench.infra", &text);
        assert!(
            diags.iter().all(|d| !d.is_error()),
            "generated config has errors: {:?}",
            diags.first()
        );
        let mut loader = infra::resolve::MemLoader::default();
        loader.files.insert(
            infra::resolve::load::normalize(std::path::Path::new("bench.infra")),
            text.as_bytes().to_vec(),
        );
        let t = time(|| {
            let _ = infra::check(std::path::Path::new("bench.infra"), &loader);
        });
        let tp = time(|| {
            let _ = infra::syntax::parse(infra::source::FileId(0), &text);
        });
        println!(
            "| {n} | {:.1} MB | {:.1} ms | {:.1} ms |",
            text.len() as f64 / 1e6,
            t.as_secs_f64() * 1e3,
            tp.as_secs_f64() * 1e3
        );
        if let Some(p) = prev {
            let p: Duration = p;
            println!(
                "growth from the previous row: {:.1}×",
                t.as_secs_f64() / p.as_secs_f64()
            );
        }
        prev = Some(t);
    }
    println!();
    println!(
        "| hosts | files | compile (parse → render, in memory) | write the build | end to end |"
    );
    println!("|---|---|---|---|---|");
    let mut prev: Option<Duration> = None;
    let sizes: Vec<usize> = std::env::var("INFRA_BENCH_BUILD_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);
    let base = std::env::temp_dir().join(format!("infra-bench-build-{}", std::process::id()));
    for n in sizes {
        let text = generate_std(n);
        let mut files = 0;
        let tc = time(|| {
            files = compile(&text).hosts.values().map(|h| h.files.len()).sum();
        });
        // Writing: each run into a fresh directory (cleaned up outside the timing).
        let b = compile(&text);
        let mut run = 0;
        let tw = time(|| {
            run += 1;
            infra::render::write_build(&b, &base.join(format!("{n}-{run}"))).expect("writes");
        });
        let _ = std::fs::remove_dir_all(&base);
        let total = tc + tw;
        println!(
            "| {n} | {files} | {:.0} ms | {:.0} ms | {:.0} ms |",
            tc.as_secs_f64() * 1e3,
            tw.as_secs_f64() * 1e3,
            total.as_secs_f64() * 1e3
        );
        if let Some(p) = prev {
            println!(
                "growth from the previous row: {:.1}×",
                total.as_secs_f64() / p.as_secs_f64()
            );
        }
        prev = Some(total);
    }
}
