//! Test harness of warren-rpc: a broker for each test and the `Calc` service the tests call.
//!
//! The broker is a `warren serve` process on an ephemeral port with a fresh data directory,
//! unless `WARREN_TEST_URL` names another (that is how the crate is checked against
//! RabbitMQ): `broker.rs` is the `warren` crate's harness, included by path, so this crate's
//! tests never compile the broker. It needs the `warren` binary built: `cargo test
//! --workspace` and `scripts/test` build it first; alone, run `cargo build -p warren` before
//! `cargo test -p warren-rpc` (or set `WARREN_BIN`). Every test serves `Calc` under a name of
//! its own, so tests sharing an external broker never answer each other's calls.

#![allow(dead_code)] // each test binary uses a different subset

#[path = "../../../warren/tests/common/broker.rs"]
mod broker;

pub use broker::Broker;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warren_rpc::{Client, ClientConfig, RpcError, Server, ServerConfig};

/// How long a whole test may take before it is declared hung.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CalcError {
    DivideByZero { dividend: i64 },
    Rpc(RpcError),
}

impl From<RpcError> for CalcError {
    fn from(e: RpcError) -> Self {
        CalcError::Rpc(e)
    }
}

impl CalcError {
    /// The RPC-layer error inside, for assertions.
    pub fn rpc(&self) -> &RpcError {
        match self {
            CalcError::Rpc(e) => e,
            other => panic!("expected an RPC error, got {other:?}"),
        }
    }
}

#[warren_rpc::service]
pub trait Calc {
    #[idempotent]
    async fn add(&self, a: i64, b: i64) -> Result<i64, CalcError>;
    async fn divide(&self, a: i64, b: i64) -> Result<i64, CalcError>;
    /// Sleeps, then names the instance that answered.
    async fn work(&self, sleep_ms: u64) -> Result<String, CalcError>;
    /// Sleeps `first_ms` the first time `key` is seen, then answers at once with how many
    /// times the key was seen.
    #[idempotent]
    async fn flaky(&self, key: String, first_ms: u64) -> Result<u32, CalcError>;
    /// The same, but not idempotent: never retried.
    async fn flaky_once(&self, key: String, first_ms: u64) -> Result<u32, CalcError>;
    async fn explode(&self) -> Result<(), CalcError>;
    /// Stores a note (for fire-and-forget calls).
    async fn note(&self, text: String) -> Result<(), CalcError>;
    async fn notes(&self) -> Result<Vec<String>, CalcError>;
}

/// `Calc` as one instance implements it; counters are shared by the instances of a test.
#[derive(Clone, Default)]
pub struct CalcImpl {
    pub instance: String,
    pub seen: Arc<Mutex<HashMap<String, u32>>>,
    pub calls: Arc<AtomicU64>,
    pub explosions: Arc<AtomicU64>,
    pub notes: Arc<Mutex<Vec<String>>>,
    /// Never finish `work` (announce it on stdout): an instance about to be killed.
    pub stall: bool,
}

impl CalcImpl {
    pub fn named(instance: &str) -> CalcImpl {
        CalcImpl {
            instance: instance.to_string(),
            ..CalcImpl::default()
        }
    }

    /// Another instance sharing this one's counters.
    pub fn sibling(&self, instance: &str) -> CalcImpl {
        CalcImpl {
            instance: instance.to_string(),
            ..self.clone()
        }
    }

    async fn flaky_inner(&self, key: String, first_ms: u64) -> Result<u32, CalcError> {
        let n = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.entry(key).or_default();
            *n += 1;
            *n
        };
        if n == 1 {
            tokio::time::sleep(Duration::from_millis(first_ms)).await;
        }
        Ok(n)
    }
}

impl Calc for CalcImpl {
    async fn add(&self, a: i64, b: i64) -> Result<i64, CalcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(a + b)
    }

    async fn divide(&self, a: i64, b: i64) -> Result<i64, CalcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if b == 0 {
            return Err(CalcError::DivideByZero { dividend: a });
        }
        Ok(a / b)
    }

    async fn work(&self, sleep_ms: u64) -> Result<String, CalcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.stall {
            println!("working");
            std::io::stdout().flush().unwrap();
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        Ok(self.instance.clone())
    }

    async fn flaky(&self, key: String, first_ms: u64) -> Result<u32, CalcError> {
        self.flaky_inner(key, first_ms).await
    }

    async fn flaky_once(&self, key: String, first_ms: u64) -> Result<u32, CalcError> {
        self.flaky_inner(key, first_ms).await
    }

    async fn explode(&self) -> Result<(), CalcError> {
        self.explosions.fetch_add(1, Ordering::SeqCst);
        panic!("the calculator exploded");
    }

    async fn note(&self, text: String) -> Result<(), CalcError> {
        self.notes.lock().unwrap().push(text);
        Ok(())
    }

    async fn notes(&self) -> Result<Vec<String>, CalcError> {
        Ok(self.notes.lock().unwrap().clone())
    }
}

/// A name no other test (nor an earlier run against a shared broker) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", broker::unique_suffix())
}

/// Runs a test body against a fresh broker, under [`TEST_TIMEOUT`]. The broker is stopped
/// when the test ends, whether it passed or panicked.
pub fn run<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let broker = Broker::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = broker.url().to_owned();
    let outcome = runtime.block_on(async { tokio::time::timeout(TEST_TIMEOUT, body(url)).await });
    runtime.shutdown_timeout(Duration::from_secs(1));
    assert!(
        outcome.is_ok(),
        "test did not finish within {TEST_TIMEOUT:?}"
    );
    drop(broker);
}

/// Starts an instance of `Calc` under the service name `service`.
pub async fn serve(url: &str, service: &str, calc: CalcImpl, concurrency: u16) -> Server {
    let config = ServerConfig {
        concurrency,
        instance: Some(calc.instance.clone()),
        name: Some(service.to_string()),
    };
    Server::start(url, CalcServer::new(calc), config)
        .await
        .expect("cannot start a Calc instance")
}

/// A `Calc` stub for the service named `service`.
pub async fn calc_client(url: &str, service: &str, config: ClientConfig) -> CalcClient {
    let client = Client::connect_with(url, config)
        .await
        .expect("cannot connect the client");
    CalcClient::new(&client).named(service)
}
