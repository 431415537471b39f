//! Service governance through a real broker: circuit breaker, rate limiting, load spread over
//! instances, discovery, and an instance killed mid-call whose request another answers.

mod common;

use common::{calc_client, run, serve, unique, Calc, CalcImpl};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use warren_rpc::{
    BreakerConfig, BreakerState, Client, ClientConfig, LimitMode, RateLimit, RpcError,
};

#[test]
fn breaker_opens_after_failures_then_half_opens_and_closes_on_success() {
    run(|url| async move {
        let service = unique("Calc");
        let calc_impl = CalcImpl::named("a");
        let explosions = calc_impl.explosions.clone();
        let server = serve(&url, &service, calc_impl, 4).await;
        let breaker = BreakerConfig {
            failure_threshold: 2,
            open_for: Duration::from_millis(400),
            half_open_probes: 1,
        };
        let config = ClientConfig {
            breaker: Some(breaker),
            ..ClientConfig::default()
        };
        let client = Client::connect_with(&url, config).await.unwrap();
        let calc = common::CalcClient::new(&client).named(&service);

        for _ in 0..2 {
            assert!(matches!(
                calc.explode().await.unwrap_err().rpc(),
                RpcError::Panicked { .. }
            ));
        }
        assert_eq!(client.breaker_state(&service), BreakerState::Open);
        let err = calc.add(1, 1).await.unwrap_err();
        assert_eq!(
            err.rpc(),
            &RpcError::CircuitOpen {
                service: service.clone()
            }
        );
        assert_eq!(
            explosions.load(Ordering::SeqCst),
            2,
            "an open breaker sends nothing"
        );

        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(client.breaker_state(&service), BreakerState::HalfOpen);
        // A failing probe opens it again ...
        assert!(matches!(
            calc.explode().await.unwrap_err().rpc(),
            RpcError::Panicked { .. }
        ));
        assert_eq!(client.breaker_state(&service), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(450)).await;
        // ... a succeeding one closes it.
        assert_eq!(calc.add(2, 2).await, Ok(4));
        assert_eq!(client.breaker_state(&service), BreakerState::Closed);
        server.shutdown().await;
    });
}

#[test]
fn rate_limit_rejects_calls_beyond_the_burst() {
    run(|url| async move {
        let service = unique("Calc");
        let server = serve(&url, &service, CalcImpl::named("a"), 4).await;
        let limit = RateLimit {
            per_second: 2.0,
            burst: 3,
            mode: LimitMode::Reject,
        };
        let calc = calc_client(
            &url,
            &service,
            ClientConfig {
                rate_limit: Some(limit),
                ..ClientConfig::new()
            },
        )
        .await;
        for i in 0..3 {
            assert_eq!(calc.add(i, 0).await, Ok(i));
        }
        let err = calc.add(9, 9).await.unwrap_err();
        assert_eq!(
            err.rpc(),
            &RpcError::RateLimited {
                service: service.clone()
            }
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(calc.add(9, 9).await, Ok(18), "a token came back");
        server.shutdown().await;
    });
}

#[test]
fn rate_limit_in_wait_mode_spaces_calls_out() {
    run(|url| async move {
        let service = unique("Calc");
        let server = serve(&url, &service, CalcImpl::named("a"), 4).await;
        let limit = RateLimit {
            per_second: 20.0,
            burst: 1,
            mode: LimitMode::Wait,
        };
        let calc = calc_client(
            &url,
            &service,
            ClientConfig {
                rate_limit: Some(limit),
                ..ClientConfig::new()
            },
        )
        .await;
        let started = Instant::now();
        let pending: Vec<_> = (0..6).map(|i| calc.start_add(i, 0)).collect();
        for (i, p) in pending.into_iter().enumerate() {
            assert_eq!(p.await, Ok(i as i64));
        }
        // Six calls at 20/s with a burst of one: the last starts 250 ms after the first.
        assert!(
            started.elapsed() >= Duration::from_millis(240),
            "{:?}",
            started.elapsed()
        );
        server.shutdown().await;
    });
}

#[test]
fn load_spreads_over_three_instances_each_bounded_by_its_prefetch() {
    run(|url| async move {
        let service = unique("Calc");
        let first = CalcImpl::named("i1");
        let mut servers = Vec::new();
        for name in ["i1", "i2", "i3"] {
            servers.push(serve(&url, &service, first.sibling(name), 1).await);
        }
        let calc = calc_client(&url, &service, ClientConfig::new()).await;
        let started = Instant::now();
        let pending: Vec<_> = (0..30).map(|_| calc.start_work(30)).collect();
        let mut per_instance: HashMap<String, u32> = HashMap::new();
        for p in pending {
            *per_instance.entry(p.await.unwrap()).or_default() += 1;
        }
        let elapsed = started.elapsed();
        assert_eq!(per_instance.len(), 3, "{per_instance:?}");
        assert!(per_instance.values().all(|&n| n >= 5), "{per_instance:?}");
        // Each instance works on one request at a time: 30 × 30 ms over 3 takes ≥ 300 ms.
        assert!(elapsed >= Duration::from_millis(290), "{elapsed:?}");
        for s in servers {
            s.shutdown().await;
        }
    });
}

#[test]
fn discovery_lists_services_with_their_live_instances() {
    run(|url| async move {
        let service = unique("Calc");
        let other = unique("Other");
        let a = serve(&url, &service, CalcImpl::named("a"), 2).await;
        let b = serve(&url, &service, CalcImpl::named("b"), 3).await;
        let c = serve(&url, &other, CalcImpl::named("c"), 1).await;
        let client = Client::connect(&url).await.unwrap();
        assert_eq!(client.instance_count(&service).await, Ok(2));
        assert_eq!(client.instance_count(&other).await, Ok(1));
        let missing = unique("Missing");
        assert!(matches!(
            client.instance_count(&missing).await,
            Err(RpcError::NoService { .. })
        ));

        let found = client.discover(Duration::from_millis(500)).await.unwrap();
        let mine = found
            .iter()
            .find(|s| s.name == service)
            .expect("the service is listed");
        let instances: Vec<(&str, u16)> = mine
            .instances
            .iter()
            .map(|i| (i.instance.as_str(), i.concurrency))
            .collect();
        assert_eq!(instances, vec![("a", 2), ("b", 3)]);
        let add = mine.methods().iter().find(|m| m.name == "add").unwrap();
        assert!(add.idempotent);
        assert!(found
            .iter()
            .any(|s| s.name == other && s.instances.len() == 1));

        b.shutdown().await;
        assert_eq!(client.instance_count(&service).await, Ok(1));
        let found = client.discover(Duration::from_millis(300)).await.unwrap();
        assert_eq!(
            found
                .iter()
                .find(|s| s.name == service)
                .unwrap()
                .instances
                .len(),
            1
        );
        a.shutdown().await;
        c.shutdown().await;
    });
}

/// Environment variables that turn this test binary into a stalling `Calc` instance.
const CHILD_URL: &str = "WARREN_RPC_CHILD_URL";
const CHILD_SERVICE: &str = "WARREN_RPC_CHILD_SERVICE";

/// Not a test of its own: the process `killed_instance_s_request_is_answered_by_another`
/// starts and kills. It serves `Calc` with a `work` that never finishes.
#[test]
#[ignore = "started as a child process by killed_instance_s_request_is_answered_by_another"]
fn child_instance() {
    let (Ok(url), Ok(service)) = (std::env::var(CHILD_URL), std::env::var(CHILD_SERVICE)) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let calc = CalcImpl {
            stall: true,
            ..CalcImpl::named("doomed")
        };
        let _server = serve(&url, &service, calc, 1).await;
        println!("ready");
        std::future::pending::<()>().await;
    });
}

#[test]
fn killed_instance_s_request_is_answered_by_another() {
    run(|url| async move {
        let service = unique("Calc");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_instance",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_URL, &url)
            .env(CHILD_SERVICE, &service)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        wait_for_line(&mut lines, "ready").await;

        let calc = calc_client(&url, &service, ClientConfig::new())
            .await
            .with_deadline(Duration::from_secs(20));
        let call = calc.start_work(0);
        wait_for_line(&mut lines, "working").await;
        let survivor = serve(&url, &service, CalcImpl::named("survivor"), 1).await;
        child.kill().unwrap(); // SIGKILL: no goodbye to the broker
        child.wait().unwrap();
        assert_eq!(call.await, Ok("survivor".to_string()));
        survivor.shutdown().await;
    });
}

/// Waits (bounded) for the child instance to print `what`.
async fn wait_for_line(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(line)) = tokio::time::timeout_at(deadline, lines.recv()).await {
        if line.trim_end().ends_with(what) {
            return;
        }
    }
    panic!("the child instance never printed {what:?}");
}
