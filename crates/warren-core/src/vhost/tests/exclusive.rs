//! Exclusive queues: the owning connection may use them, others get RabbitMQ's 405.

use super::*;

const LOCKED: &str = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'mine' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.";

fn exclusive(owner: u64) -> QueueMeta {
    QueueMeta {
        exclusive_owner: Some(owner),
        ..queue_meta("mine")
    }
}

#[test]
fn owner_may_use_its_exclusive_queue() {
    let mut f = durable_vhost();
    let (q, _) = f.declare_queue(exclusive(1), false).unwrap();
    assert_eq!(f.vhost.queue_for("mine", 1), Ok(&q));
    assert_eq!(f.declare_queue(exclusive(1), false).unwrap().0, q);
    assert_eq!(f.declare_queue(exclusive(1), true).unwrap().0, q);
}

#[test]
fn other_connections_get_resource_locked() {
    let mut f = durable_vhost();
    f.declare_queue(exclusive(1), false).unwrap();
    let err = f.vhost.queue_for("mine", 2).unwrap_err();
    assert_eq!(err.reply_code(), ReplyCode::ResourceLocked);
    assert_eq!(err.reply_text(), LOCKED);
    f.connection = 2;
    assert_eq!(f.declare_queue(exclusive(2), false).unwrap_err().reply_text(), LOCKED);
    assert_eq!(f.declare_queue(exclusive(2), true).unwrap_err().reply_text(), LOCKED);
    assert_eq!(f.declare_queue(queue_meta("mine"), false).unwrap_err().reply_text(), LOCKED);
}

#[test]
fn redeclaring_a_plain_queue_as_exclusive_is_locked() {
    let mut f = durable_vhost();
    f.queue("mine");
    let err = f.declare_queue(exclusive(1), false).unwrap_err();
    assert_eq!(err.reply_text(), LOCKED);
    // Passive does not compare exclusivity.
    assert!(f.declare_queue(exclusive(1), true).is_ok());
}

#[test]
fn missing_queue_is_not_found_for_everyone() {
    let f = durable_vhost();
    assert_eq!(
        f.vhost.queue_for("nope", 1).unwrap_err().reply_text(),
        "NOT_FOUND - no queue 'nope' in vhost '/'"
    );
}
