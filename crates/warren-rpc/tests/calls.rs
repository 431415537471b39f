//! Calls through a real broker: results, typed errors, the RPC layer's error replies,
//! deadlines, retries, formats, many calls in flight, fire-and-forget.

mod common;

use common::{calc_client, run, serve, unique, Calc, CalcError, CalcImpl};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use warren_rpc::{CallOptions, Client, ClientConfig, Format, RetryPolicy, RpcError};

#[test]
fn round_trip_returns_the_methods_value() {
    run(|url| async move {
        let service = unique("Calc");
        let server = serve(&url, &service, CalcImpl::named("a"), 4).await;
        let calc = calc_client(&url, &service, ClientConfig::new()).await;
        assert_eq!(calc.add(40, 2).await, Ok(42));
        assert_eq!(calc.divide(9, 3).await, Ok(3));
        server.shutdown().await;
    });
}

#[test]
fn typed_error_comes_back_as_the_methods_error() {
    run(|url| async move {
        let service = unique("Calc");
        let server = serve(&url, &service, CalcImpl::named("a"), 4).await;
        let calc = calc_client(&url, &service, ClientConfig::new()).await;
        assert_eq!(
            calc.divide(7, 0).await,
            Err(CalcError::DivideByZero { dividend: 7 })
        );
        server.shutdown().await;
    });
}

#[test]
fn messagepack_request_is_answered_in_messagepack() {
    run(|url| async move {
        let service = unique("Calc");
        let server = serve(&url, &service, CalcImpl::named("a"), 4).await;
        let calc = calc_client(&url, &service, ClientConfig::new())
            .await
            .with_format(Format::MessagePack);
        assert_eq!(calc.add(1, 2).await, Ok(3));
        assert_eq!(
            calc.divide(1, 0).await,
            Err(CalcError::DivideByZero { dividend: 1 })
        );

        let client = Client::connect(&url)
            .await
            .unwrap()
            .with_format(Format::MessagePack);
        let args = Format::MessagePack
            .encode(&serde_json::json!({"a": 5, "b": 6}))
            .unwrap();
        let reply = client.call_raw(&service, "add", &args).await.unwrap();
        assert_eq!(reply.format, Format::MessagePack);
        let envelope: serde_json::Value = Format::MessagePack.decode(&reply.body).unwrap();
        assert_eq!(envelope, serde_json::json!({"ok": 11}));
        server.shutdown().await;
    });
}

#[test]
fn unknown_method_gets_an_error_reply_instead_of_a_hang() {
    run(|url| async move {
        let service = unique("Calc");
        let server = serve(&url, &service, CalcImpl::named("a"), 4).await;
        let client = Client::connect(&url)
            .await
            .unwrap()
            .with_deadline(Duration::from_secs(10));
        let started = Instant::now();
        let err = client
            .call_raw(&service, "multiply", b"{}")
            .await
            .unwrap_err();
        assert_eq!(
            err,
            RpcError::UnknownMethod {
                service: service.clone(),
                method: "multiply".into()
            }
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the error reply came at once"
        );
        server.shutdown().await;
    });
}

#[test]
fn undecodable_arguments_get_a_bad_request_reply() {
    run(|url| async move {
        let service = unique("Calc");
        let server = serve(&url, &service, CalcImpl::named("a"), 4).await;
        let client = Client::connect(&url).await.unwrap();
        let err = client
            .call_raw(&service, "add", br#"{"a": "one", "b": 2}"#)
            .await
            .unwrap_err();
        match err {
            RpcError::BadRequest {
                method, message, ..
            } => {
                assert_eq!(method, "add");
                assert!(message.contains("cannot decode the arguments"), "{message}");
            }
            other => panic!("expected BadRequest, got {other:?}"),
        }
        server.shutdown().await;
    });
}

#[test]
fn handler_panic_gets_an_error_reply_and_the_server_keeps_serving() {
    run(|url| async move {
        let service = unique("Calc");
        let server = serve(&url, &service, CalcImpl::named("a"), 4).await;
        let calc = calc_client(&url, &service, ClientConfig::new()).await;
        match calc.explode().await.unwrap_err().rpc() {
            RpcError::Panicked { message, .. } => assert_eq!(message, "the calculator exploded"),
            other => panic!("expected Panicked, got {other:?}"),
        }
        assert_eq!(calc.add(1, 1).await, Ok(2));
        server.shutdown().await;
    });
}

#[test]
fn call_past_its_deadline_fails_and_is_not_worked_on_later() {
    run(|url| async move {
        let service = unique("Calc");
        let calc_impl = CalcImpl::named("a");
        let calls = calc_impl.calls.clone();
        // One request at a time: the second waits in the queue behind the first.
        let server = serve(&url, &service, calc_impl, 1).await;
        let calc = calc_client(&url, &service, ClientConfig::new()).await;
        let busy = calc.start_work(600);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let err = calc
            .with_deadline(Duration::from_millis(200))
            .add(1, 1)
            .await
            .unwrap_err();
        assert!(
            matches!(err.rpc(), RpcError::DeadlineExceeded { .. }),
            "{err:?}"
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_millis(1500),
            "{waited:?}"
        );
        assert_eq!(busy.await, Ok("a".to_string()));
        // The expired request is never handled: only `work` ran.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        server.shutdown().await;
    });
}

fn retrying(attempt_ms: u64) -> CallOptions {
    CallOptions {
        deadline: Duration::from_secs(10),
        attempt_timeout: Some(Duration::from_millis(attempt_ms)),
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(20),
            ..RetryPolicy::default()
        },
        format: Format::Json,
    }
}

#[test]
fn idempotent_method_is_retried_after_a_timed_out_attempt() {
    run(|url| async move {
        let service = unique("Calc");
        let server = serve(&url, &service, CalcImpl::named("a"), 4).await;
        let calc = calc_client(&url, &service, ClientConfig::new())
            .await
            .with_options(retrying(200));
        // The first attempt sleeps 1 s on the server; the retry is answered at once.
        assert_eq!(calc.flaky("k".into(), 1000).await, Ok(2));
        server.shutdown().await;
    });
}

#[test]
fn non_idempotent_method_is_never_retried() {
    run(|url| async move {
        let service = unique("Calc");
        let calc_impl = CalcImpl::named("a");
        let seen = calc_impl.seen.clone();
        let server = serve(&url, &service, calc_impl, 4).await;
        let calc = calc_client(&url, &service, ClientConfig::new())
            .await
            .with_options(retrying(200));
        let err = calc.flaky_once("k".into(), 1000).await.unwrap_err();
        assert!(
            matches!(err.rpc(), RpcError::DeadlineExceeded { .. }),
            "{err:?}"
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(seen.lock().unwrap().get("k"), Some(&1));
        server.shutdown().await;
    });
}

#[test]
fn many_calls_in_flight_on_one_client_each_get_their_own_reply() {
    run(|url| async move {
        let service = unique("Calc");
        let server = serve(&url, &service, CalcImpl::named("a"), 32).await;
        let calc = calc_client(&url, &service, ClientConfig::new()).await;
        let pending: Vec<_> = (0..300).map(|i| calc.start_add(i, 1000)).collect();
        for (i, p) in pending.into_iter().enumerate() {
            assert_eq!(p.await, Ok(i as i64 + 1000));
        }
        server.shutdown().await;
    });
}

#[test]
fn fire_and_forget_call_runs_without_a_reply() {
    run(|url| async move {
        let service = unique("Calc");
        let server = serve(&url, &service, CalcImpl::named("a"), 4).await;
        let calc = calc_client(&url, &service, ClientConfig::new()).await;
        calc.notify_note("hello".into()).await.unwrap();
        let mut notes = Vec::new();
        for _ in 0..50 {
            notes = calc.notes().await.unwrap();
            if !notes.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(notes, vec!["hello".to_string()]);
        server.shutdown().await;
    });
}

#[test]
fn call_to_a_service_nobody_runs_fails_fast_with_no_service() {
    run(|url| async move {
        let service = unique("Nobody");
        let calc = calc_client(&url, &service, ClientConfig::new()).await;
        let started = Instant::now();
        let err = calc.divide(1, 1).await.unwrap_err();
        assert_eq!(
            err.rpc(),
            &RpcError::NoService {
                service: service.clone(),
                queue: format!("rpc.{service}")
            }
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    });
}
