//! RPC round trips per second and their latency, through any AMQP 0-9-1 broker.
//!
//! One process runs an `Echo` service instance (its own connection, concurrency 64) and a
//! client (another connection) that keeps `--in-flight` calls outstanding for `--seconds`
//! after a one-second warm-up, then prints calls/s and latency percentiles.
//!
//! `cargo run -p warren-rpc --example rpc_bench -- --url amqp://guest:guest@127.0.0.1:5672/%2F --in-flight 64`

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warren_rpc::{Client, ClientConfig, RpcError, Server, ServerConfig};

#[derive(Debug, Serialize, Deserialize)]
pub struct BenchError(RpcError);

impl From<RpcError> for BenchError {
    fn from(e: RpcError) -> Self {
        BenchError(e)
    }
}

#[warren_rpc::service]
pub trait Echo {
    async fn echo(&self, text: String) -> Result<String, BenchError>;
}

struct Echoer;

impl Echo for Echoer {
    async fn echo(&self, text: String) -> Result<String, BenchError> {
        Ok(text)
    }
}

struct Args {
    url: String,
    in_flight: usize,
    seconds: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        url: "amqp://guest:guest@127.0.0.1:5672/%2F".into(),
        in_flight: 1,
        seconds: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value,
            "--in-flight" => args.in_flight = value.parse().expect("--in-flight N"),
            "--seconds" => args.seconds = value.parse().expect("--seconds N"),
            other => panic!("unknown flag {other}; use --url, --in-flight, --seconds"),
        }
    }
    args
}

#[tokio::main]
async fn main() -> Result<(), RpcError> {
    let args = parse_args();
    let service = format!("Echo-bench-{}", std::process::id());
    let config = ServerConfig {
        concurrency: 64,
        name: Some(service.clone()),
        ..ServerConfig::default()
    };
    let server = Server::start(&args.url, EchoServer::new(Echoer), config).await?;
    let client = Client::connect_with(&args.url, ClientConfig::new()).await?;
    let echo = EchoClient::new(&client).named(&service);

    let warm_up_until = Instant::now() + Duration::from_secs(1);
    let end = warm_up_until + Duration::from_secs(args.seconds);
    let workers: Vec<_> = (0..args.in_flight)
        .map(|_| {
            let echo = echo.clone();
            tokio::spawn(async move {
                let mut latencies_us = Vec::new();
                let text = Arc::new("x".repeat(32));
                loop {
                    let started = Instant::now();
                    if started >= end {
                        return latencies_us;
                    }
                    let reply = echo.echo(text.to_string()).await.expect("echo");
                    assert_eq!(reply.len(), 32);
                    if started >= warm_up_until {
                        latencies_us.push(started.elapsed().as_micros() as u64);
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "in_flight={} calls={} calls/s={:.0} p50={}us p99={}us",
        args.in_flight,
        all.len(),
        all.len() as f64 / args.seconds as f64,
        pct(0.50),
        pct(0.99)
    );
    server.shutdown().await;
    client.close().await;
    Ok(())
}
