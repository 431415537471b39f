//! What the tutorial tests share: the error type the tutorials' `main()`s returned, clean-up of
//! fixed names on a shared broker, and a check that no stray message follows the expected ones.

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::QueueDeleteOptions;
use lapin::Consumer;

use crate::common::{connect, QUIET_PERIOD};

/// The tutorials return `Box<dyn Error>`; `Send + Sync` so their loops can run as tasks.
pub type TutorialResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How long a tutorial consumer may wait for the messages a test expects.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the tutorials read from `std::env::args().skip(1)`.
pub fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|word| word.to_string()).collect()
}

/// Deletes the tutorial's fixed-name queues. Called before a tutorial runs, so that messages
/// left behind by an earlier, failed run on a shared broker cannot leak into this one, and
/// after, so that another suite declaring the same names with other arguments (a classic
/// `task_queue`, say) is not refused. Not part of any tutorial.
pub async fn forget_queues(url: &str, queues: &[&str]) {
    let conn = connect(url).await;
    for queue in queues {
        let channel = conn.create_channel().await.expect("channel.open");
        let _ = channel
            .queue_delete((*queue).into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "OK".into()).await;
}

/// Fails if `consumer` receives anything more during [`QUIET_PERIOD`]: a message that should
/// not have been routed to it would show up here.
pub async fn assert_nothing_more(consumer: &mut Consumer, who: &str) {
    if let Ok(Some(Ok(delivery))) = tokio::time::timeout(QUIET_PERIOD, consumer.next()).await {
        panic!(
            "{who} received an unexpected {}:{:?}",
            delivery.routing_key,
            String::from_utf8_lossy(&delivery.data)
        );
    }
}
