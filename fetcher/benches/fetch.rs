//! What the egress proxy costs: a 100 KB HTTPS GET through `tessera-egress` over a unix socket
//! (the fetcher's own TLS and HTTP code over the proxy protocol) next to the same code on a
//! direct loopback TCP socket, each including connect and a full TLS 1.3 handshake, by name
//! (resolved on each path, as a direct fetch would) and by IP address (no resolution); then
//! throughput: a 2 MiB HTTPS body both ways, and raw bytes (no TLS) through the proxy next to a
//! direct socket. Run with `cargo bench -p tessera-fetcher`; prints one table. Signing the
//! record (one ECDSA P-256 signature) is left out: it is the same on both paths.

// Sample counts and byte counts stay far below 2^52.
#![allow(clippy::cast_precision_loss)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use support::{HttpsServer, TestCa, default_routes, start_egress};
use tessera_core::egress::{AllowList, Destination};
use tessera_fetcher::conn::ProxyConn;
use tessera_fetcher::fetch::{Fetcher, FetcherConfig, MAX_BODY_LIMIT};
use tessera_fetcher::url::HttpsUrl;

const WARMUP: usize = 20;
const SAMPLES: usize = 200;
const RAW: usize = 64 << 20;

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p90(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() * 9 / 10]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A plain TCP server that sends `n` bytes to each connection, then closes.
fn sink_server(n: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let block = vec![0x5au8; 256 * 1024];
                let mut left = n;
                while left > 0 {
                    let k = left.min(block.len());
                    if s.write_all(&block[..k]).is_err() {
                        return;
                    }
                    left -= k;
                }
            });
        }
    });
    port
}

fn drain(r: &mut impl Read) -> usize {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return total,
            Ok(k) => total += k,
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Tessera bench CA");
    let server = HttpsServer::start(&ca, &["localhost", "127.0.0.1"], default_routes());
    let raw_port = sink_server(RAW);
    let https_dest = format!("localhost:{}", server.port());
    let ip_dest = format!("127.0.0.1:{}", server.port());
    let raw_dest = format!("127.0.0.1:{raw_port}");
    let (_egress, proxy) = start_egress(
        dir.path(),
        &[https_dest.clone(), ip_dest.clone(), raw_dest.clone()],
        &["--max-bytes", "1000000000"],
    );
    let mut config = FetcherConfig::new(
        proxy.clone(),
        AllowList::parse([https_dest.as_str(), ip_dest.as_str()]).unwrap(),
    );
    config.extra_roots = vec![ca.der.clone()];
    config.max_body = MAX_BODY_LIMIT;
    let fetcher = Fetcher::new(config).unwrap();
    let url = format!("https://localhost:{}/data100k", server.port());
    let parsed = HttpsUrl::parse(&url).unwrap();

    // The direct path resolves the name as the proxy does.
    let direct = || {
        let tcp = TcpStream::connect(("localhost", server.port())).unwrap();
        tcp.set_nodelay(true).unwrap();
        let r = fetcher.fetch_over(&parsed, &[], tcp).unwrap();
        assert_eq!(r.body.len(), 100 * 1024);
    };
    let proxied = || {
        let r = fetcher.fetch(&url, &[]).unwrap();
        assert_eq!(r.body.len(), 100 * 1024);
    };
    // The same by IP address: no name to resolve on either path.
    let ip_url = format!("https://127.0.0.1:{}/data100k", server.port());
    let ip_parsed = HttpsUrl::parse(&ip_url).unwrap();
    let direct_ip = || {
        let tcp = TcpStream::connect(server.addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        let r = fetcher.fetch_over(&ip_parsed, &[], tcp).unwrap();
        assert_eq!(r.body.len(), 100 * 1024);
    };
    let proxied_ip = || {
        let r = fetcher.fetch(&ip_url, &[]).unwrap();
        assert_eq!(r.body.len(), 100 * 1024);
    };
    for _ in 0..WARMUP {
        direct();
        proxied();
        direct_ip();
        proxied_ip();
    }
    // Interleaved, so both paths see the same machine load.
    let (mut d, mut p) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
    let (mut di, mut pi) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
    for _ in 0..SAMPLES {
        let t = Instant::now();
        direct();
        d.push(t.elapsed());
        let t = Instant::now();
        proxied();
        p.push(t.elapsed());
        let t = Instant::now();
        direct_ip();
        di.push(t.elapsed());
        let t = Instant::now();
        proxied_ip();
        pi.push(t.elapsed());
    }
    let (dm, pm) = (median(&mut d), median(&mut p));
    let (dim, pim) = (median(&mut di), median(&mut pi));

    // 2 MiB HTTPS bodies.
    let big = format!("https://localhost:{}/big", server.port());
    let big_parsed = HttpsUrl::parse(&big).unwrap();
    let body = 2usize << 20;
    let rounds = 10;
    let t = Instant::now();
    for _ in 0..rounds {
        let tcp = TcpStream::connect(server.addr).unwrap();
        assert_eq!(
            fetcher
                .fetch_over(&big_parsed, &[], tcp)
                .unwrap()
                .body
                .len(),
            body
        );
    }
    let big_direct = t.elapsed();
    let t = Instant::now();
    for _ in 0..rounds {
        assert_eq!(fetcher.fetch(&big, &[]).unwrap().body.len(), body);
    }
    let big_proxied = t.elapsed();

    // Raw bytes, no TLS.
    let t = Instant::now();
    let mut tcp = TcpStream::connect(("127.0.0.1", raw_port)).unwrap();
    assert_eq!(drain(&mut tcp), RAW);
    let raw_direct = t.elapsed();
    let dest: Destination = raw_dest.parse().unwrap();
    let t = Instant::now();
    let mut conn = ProxyConn::open(
        &proxy,
        &dest,
        Duration::from_secs(30),
        Instant::now() + Duration::from_mins(5),
    )
    .unwrap();
    assert_eq!(drain(&mut conn), RAW);
    let raw_proxied = t.elapsed();

    let mbps = |bytes: usize, d: Duration| bytes as f64 / d.as_secs_f64() / 1e6;
    println!();
    println!("egress proxy: {SAMPLES} samples per path after {WARMUP} warm-up, interleaved");
    println!(
        "| measurement | direct (loopback TCP) | through tessera-egress (unix socket) | ratio |"
    );
    println!("|---|---|---|---|");
    println!(
        "| 100 KB HTTPS GET, median (connect + TLS 1.3 handshake + response) | {:.2} ms | {:.2} ms | {:.2}x |",
        ms(dm),
        ms(pm),
        pm.as_secs_f64() / dm.as_secs_f64()
    );
    println!(
        "| 100 KB HTTPS GET, p90 | {:.2} ms | {:.2} ms | {:.2}x |",
        ms(p90(&mut d)),
        ms(p90(&mut p)),
        p90(&mut p).as_secs_f64() / p90(&mut d).as_secs_f64()
    );
    println!(
        "| 100 KB HTTPS GET by IP address (no name resolution), median | {:.2} ms | {:.2} ms | {:.2}x |",
        ms(dim),
        ms(pim),
        pim.as_secs_f64() / dim.as_secs_f64()
    );
    println!(
        "| 100 KB HTTPS GET by IP address, p90 | {:.2} ms | {:.2} ms | {:.2}x |",
        ms(p90(&mut di)),
        ms(p90(&mut pi)),
        p90(&mut pi).as_secs_f64() / p90(&mut di).as_secs_f64()
    );
    println!(
        "| 2 MiB HTTPS body, throughput ({rounds} fetches) | {:.0} MB/s | {:.0} MB/s | {:.2}x |",
        mbps(body * rounds, big_direct),
        mbps(body * rounds, big_proxied),
        big_proxied.as_secs_f64() / big_direct.as_secs_f64()
    );
    println!(
        "| raw TCP bytes, no TLS (64 MiB) | {:.0} MB/s | {:.0} MB/s | {:.2}x |",
        mbps(RAW, raw_direct),
        mbps(RAW, raw_proxied),
        raw_proxied.as_secs_f64() / raw_direct.as_secs_f64()
    );
    let verdict = |p: Duration, d: Duration| {
        if p.as_secs_f64() <= 1.3 * d.as_secs_f64() {
            "within"
        } else {
            "OVER"
        }
    };
    println!(
        "100 KB GET through the proxy: {} the 1.3x goal by name, {} by IP address.",
        verdict(pm, dm),
        verdict(pim, dim)
    );
}
