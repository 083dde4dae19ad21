//! No single client can exhaust the process: the per-address cap, the
//! total cap derived from the open-file limit, and the accept loop through
//! `EMFILE`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::{
    client_from, closes_within, connect_from, metric, stays_open, tls_connect, write_cert,
};
use crate::support::{self, Binary};

const ONE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const TWO: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const PROXY: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// Opens `n` silent TCP connections from `from`; returns those the server
/// kept and how many it closed within `wait`.
async fn flood(
    from: IpAddr,
    addr: SocketAddr,
    n: usize,
    wait: Duration,
) -> (Vec<TcpStream>, usize) {
    let mut open = Vec::new();
    for _ in 0..n {
        open.push(connect_from(from, addr).await.expect("connect"));
    }
    let checks = open
        .into_iter()
        .map(|mut c| async move { closes_within(&mut c, wait).await.is_none().then_some(c) });
    let kept: Vec<TcpStream> = futures_util::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect();
    let closed = n - kept.len();
    (kept, closed)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_cannot_hold_every_socket_and_trusted_proxies_are_exempt() {
    let s = support::spawn(
        "server: {max_tcp_connections_per_ip: 10, header_timeout_seconds: 30, trusted_proxies: [127.0.0.3]}",
    )
    .await;
    let addr: SocketAddr = s.url.trim_start_matches("http://").parse().expect("addr");
    let (mut held, closed) = flood(ONE, addr, 30, Duration::from_millis(200)).await;
    assert_eq!(
        closed, 20,
        "beyond 10 per address, connections are closed at once"
    );
    for c in &mut held {
        assert!(stays_open(c, Duration::from_millis(10)).await);
    }
    let t = Instant::now();
    let r = client_from(TWO)
        .get(format!("{}/health", s.url))
        .send()
        .await
        .expect("another address is served");
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() < Duration::from_secs(1));
    let (proxied, closed) = flood(PROXY, addr, 30, Duration::from_millis(100)).await;
    assert_eq!(closed, 0, "a trusted proxy carries many clients: exempt");
    drop(proxied);
    let refused = metric(&s.url, "warden_tcp_refusals_total{reason=\"per_ip_limit\"}").await;
    assert!(refused >= 20.0, "{refused}");
    s.stop().await;
}

/// Writes a TLS configuration into `bin`'s directory; returns the certificate (DER).
fn tls_config(bin: &Binary) -> Vec<u8> {
    let der = write_cert(bin.dir.path());
    bin.write_config(
        "server: {tls: {cert: cert.pem, key: key.pem}, header_timeout_seconds: 3}\nlogging: {format: json}\n",
    );
    der
}

fn https_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("https://")
        .trim_start_matches("http://")
        .parse()
        .expect("addr")
}

/// The done-means of #17: a process limited to 256 files holds 400 silent
/// TLS connections from one address and still answers another at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_process_with_256_files_survives_400_silent_tls_connections_from_one_address() {
    let bin = Binary::new();
    let der = tls_config(&bin);
    let mut served = bin.serve_with_nofile(256, &[]);
    let addr = https_addr(&served.url);
    let mut tasks = Vec::new();
    for _ in 0..400 {
        let der = der.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_secs(5),
                tls_connect(ONE, addr, &der, &[b"http/1.1"]),
            )
            .await
            .ok()
            .and_then(Result::ok)
        }));
    }
    let mut silent = Vec::new();
    for t in tasks {
        if let Some(s) = t.await.expect("task") {
            silent.push(s);
        }
    }
    assert!(
        !silent.is_empty() && silent.len() <= 128,
        "{} handshakes completed from one address",
        silent.len()
    );
    let t = Instant::now();
    let r = client_from(TWO)
        .get(format!("{}/health", served.url))
        .send()
        .await
        .expect("another address is served");
    let took = t.elapsed();
    assert_eq!(r.status(), 200);
    assert!(took < Duration::from_secs(1), "/health took {took:?}");
    // The silent ones go at the header timeout; the process lives on.
    let mut closed = 0;
    for s in &mut silent {
        if closes_within(s, Duration::from_secs(5)).await.is_some() {
            closed += 1;
        }
    }
    assert_eq!(closed, silent.len());
    let r = client_from(ONE)
        .get(format!("{}/health", served.url))
        .send()
        .await
        .expect("served again");
    assert_eq!(r.status(), 200);
    assert!(
        served.child.try_wait().expect("status").is_none(),
        "{}",
        served.output()
    );
    served.terminate();
}

/// With the caps lifted above the file limit, `accept` fails with `EMFILE`:
/// the loop sheds the waiting connections, says so once, counts them, and
/// serves again when descriptors are free.
#[tokio::test(flavor = "multi_thread")]
async fn running_out_of_descriptors_is_survived_logged_once_and_counted() {
    let bin = Binary::new();
    bin.write_config(
        "server: {max_tcp_connections: 100000, max_tcp_connections_per_ip: 100000, header_timeout_seconds: 2}\nlogging: {format: json}\n",
    );
    let mut served = bin.serve_with_nofile(256, &[]);
    let addr = https_addr(&served.url);
    let (held, closed) = flood(ONE, addr, 400, Duration::from_millis(300)).await;
    assert!(closed >= 100, "only {closed} of 400 were shed at accept");
    drop(held);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = client_from(ONE)
        .get(format!("{}/health", served.url))
        .send()
        .await
        .expect("served again");
    assert_eq!(r.status(), 200);
    let shed = metric(
        &served.url,
        "warden_tcp_refusals_total{reason=\"fd_exhausted\"}",
    )
    .await;
    assert!(shed >= 1.0, "{shed}");
    let out = served.output();
    assert_eq!(
        out.matches("out of file descriptors").count(),
        1,
        "one line per burst:\n{out}"
    );
    assert!(out.contains("accepting connections again"), "{out}");
    served.terminate();
}
