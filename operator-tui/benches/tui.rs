//! The operator app's costs: time to first frame (opening a request bundle, verifying its
//! attestation and drawing), render time per frame for the biggest screens at 160x50, and
//! resident memory. Prints a table; goals: first frame < 50 ms, a frame < 2 ms, < 30 MB.

use std::time::{Duration, Instant};

use operator_tui::tui::app::{self, Msg, Screen, State};
use operator_tui::tui::fixtures::{PCRS, config, device, fixture, now, request_bundle};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .map(|v| v.trim().trim_end_matches(" kB").parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

fn main() {
    let f = fixture(PCRS[0]);
    let bundle = request_bundle(&f);

    // Time to first frame: a fresh state, the clock, the device, the request opened (strict
    // decode, approvals, attestation verification) and the first draw at 80x24.
    let mut firsts = Vec::new();
    for _ in 0..50 {
        let start = Instant::now();
        let mut s = State::new(config(&f, true));
        app::update(&mut s, Msg::Tick(now()));
        app::update(&mut s, Msg::Device(device()));
        app::update(
            &mut s,
            Msg::Loaded {
                path: "request.tbundle".into(),
                bytes: bundle.clone(),
            },
        );
        let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
        t.draw(|fr| operator_tui::tui::view::render(&s, fr))
            .unwrap();
        firsts.push(start.elapsed());
    }
    firsts.sort();

    println!("{:<44} {:>12} {:>12}", "measurement", "median", "worst");
    println!(
        "{:<44} {:>12} {:>12}",
        "time to first frame (open request, 80x24)",
        fmt(firsts[firsts.len() / 2]),
        fmt(*firsts.last().unwrap())
    );

    let mut s = State::new(config(&f, true));
    app::update(&mut s, Msg::Tick(now()));
    app::update(&mut s, Msg::Device(device()));
    app::update(
        &mut s,
        Msg::Loaded {
            path: "request.tbundle".into(),
            bytes: bundle,
        },
    );
    let mut t = Terminal::new(TestBackend::new(160, 50)).unwrap();
    for screen in [
        Screen::Attestation,
        Screen::Manifest,
        Screen::Provision,
        Screen::Home,
    ] {
        s.screen = screen;
        let mut times = Vec::with_capacity(2000);
        for _ in 0..2000 {
            let start = Instant::now();
            t.draw(|fr| operator_tui::tui::view::render(&s, fr))
                .unwrap();
            times.push(start.elapsed());
        }
        times.sort();
        println!(
            "{:<44} {:>12} {:>12}",
            format!("render {} at 160x50", screen.title()),
            fmt(times[times.len() / 2]),
            fmt(times[times.len() * 99 / 100])
        );
    }
    println!(
        "{:<44} {:>9} MB {:>9} MB",
        "resident memory (current, peak)",
        rss_kib("VmRSS:") / 1024,
        rss_kib("VmHWM:") / 1024
    );
    println!("(worst column: the slowest run for first frame, p99 for renders)");
}

fn fmt(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}
