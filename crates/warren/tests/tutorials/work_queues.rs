//! Tutorial two, "Work Queues": `new_task.rs` puts tasks on the durable quorum queue
//! `task_queue`, and several `worker.rs` processes share them, each acking a task once done.

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties, Consumer};
use tokio::sync::mpsc;

use crate::common::run;
use crate::support::{args, forget_queues, TutorialResult, RECEIVE_TIMEOUT};

/// `new_task.rs`; `args` is its command line.
async fn new_task(addr: &str, args: Vec<String>) -> TutorialResult {
    let message = match args.len() {
        0 => "hello".to_string(),
        _ => args.join(" "),
    };

    let conn = Connection::connect(addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;

    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            "task_queue".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await?;

    channel
        .basic_publish(
            "".into(),
            "task_queue".into(),
            BasicPublishOptions::default(),
            message.as_bytes(),
            BasicProperties::default(),
        )
        .await?;
    conn.close(0, "".into()).await?;
    Ok(())
}

/// `worker.rs` up to its consume loop: connect, declare `task_queue`, start consuming.
/// Split from [`work`] so that the test can start both workers before any task is sent.
async fn start_worker(addr: &str) -> TutorialResult<(Connection, Consumer)> {
    let conn = Connection::connect(addr, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;

    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            "task_queue".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await?;

    let consumer = channel
        .basic_consume(
            "task_queue".into(),
            "consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic_consume");
    Ok((conn, consumer))
}

/// `worker.rs`'s consume loop, reporting each finished task on `done` as (worker, task).
///
/// The tutorial "works" one second per byte of the task with `thread::sleep`; here it is one
/// millisecond per byte with the async `tokio::time::sleep`, so the test stays fast and the
/// runtime's threads stay free.
async fn work(
    (_conn, mut consumer): (Connection, Consumer),
    id: usize,
    done: mpsc::UnboundedSender<(usize, String)>,
) -> TutorialResult {
    while let Some(delivery) = consumer.next().await {
        if let Ok(delivery) = delivery {
            let task = std::str::from_utf8(&delivery.data)?.to_string();
            tokio::time::sleep(Duration::from_millis(delivery.data.len() as u64)).await;
            delivery
                .ack(BasicAckOptions::default())
                .await
                .expect("basic_ack");
            if done.send((id, task)).is_err() {
                break;
            }
        }
    }
    Ok(())
}

#[test]
fn work_queue_tasks_are_shared_between_two_workers_and_each_done_once() {
    run(|url| async move {
        forget_queues(&url, &["task_queue"]).await;
        // Both workers consume before the first task is sent, as when they are started first
        // in the tutorial; the queue then dispatches to both.
        let first = start_worker(&url).await.expect("worker 1");
        let second = start_worker(&url).await.expect("worker 2");
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let workers = [
            tokio::spawn(work(first, 1, done_tx.clone())),
            tokio::spawn(work(second, 2, done_tx)),
        ];

        // A task given no words is "hello".
        let mut sent = vec!["hello".to_string()];
        new_task(&url, args(&[])).await.expect("new_task");
        for n in 1..=7 {
            let words = ["Task".to_string(), format!("number {n}"), ".".repeat(n)];
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            new_task(&url, args(&words)).await.expect("new_task");
            sent.push(words.join(" "));
        }

        let mut done = Vec::new();
        while done.len() < sent.len() {
            let finished = tokio::time::timeout(RECEIVE_TIMEOUT, done_rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "only {} of {} tasks were done: {done:?}",
                        done.len(),
                        sent.len()
                    )
                })
                .expect("the workers stopped");
            done.push(finished);
        }
        let mut tasks: Vec<String> = done.iter().map(|(_, task)| task.clone()).collect();
        tasks.sort();
        sent.sort();
        assert_eq!(tasks, sent, "every task is done exactly once");
        for id in [1, 2] {
            assert!(
                done.iter().any(|(worker, _)| *worker == id),
                "worker {id} got no task; the queue should dispatch to both: {done:?}"
            );
        }
        for worker in workers {
            worker.abort();
        }
        forget_queues(&url, &["task_queue"]).await;
    });
}
