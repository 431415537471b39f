//! Class and method ids of every method, and the names RabbitMQ prints for them.

use super::Method;

/// Class ids, for callers that build `connection.close`'s class-id field.
pub const CLASS_CONNECTION: u16 = 10;
pub const CLASS_CHANNEL: u16 = 20;
pub const CLASS_ACCESS: u16 = 30;
pub const CLASS_EXCHANGE: u16 = 40;
pub const CLASS_QUEUE: u16 = 50;
pub const CLASS_BASIC: u16 = 60;
pub const CLASS_CONFIRM: u16 = 85;
pub const CLASS_TX: u16 = 90;

/// `basic.publish`'s (class, method) id: the method RabbitMQ names in errors about a
/// publish's content frames.
pub const BASIC_PUBLISH: (u16, u16) = (CLASS_BASIC, 40);

impl Method {
    /// (class id, method id) as on the wire.
    pub fn id(&self) -> (u16, u16) {
        use Method::*;
        match self {
            ConnectionStart(_) => (10, 10),
            ConnectionStartOk(_) => (10, 11),
            ConnectionSecure(_) => (10, 20),
            ConnectionSecureOk(_) => (10, 21),
            ConnectionTune(_) => (10, 30),
            ConnectionTuneOk(_) => (10, 31),
            ConnectionOpen(_) => (10, 40),
            ConnectionOpenOk => (10, 41),
            ConnectionClose(_) => (10, 50),
            ConnectionCloseOk => (10, 51),
            ConnectionBlocked(_) => (10, 60),
            ConnectionUnblocked => (10, 61),
            ConnectionUpdateSecret(_) => (10, 70),
            ConnectionUpdateSecretOk => (10, 71),

            ChannelOpen => (20, 10),
            ChannelOpenOk => (20, 11),
            ChannelFlow(_) => (20, 20),
            ChannelFlowOk(_) => (20, 21),
            ChannelClose(_) => (20, 40),
            ChannelCloseOk => (20, 41),

            AccessRequest(_) => (30, 10),
            AccessRequestOk => (30, 11),

            ExchangeDeclare(_) => (40, 10),
            ExchangeDeclareOk => (40, 11),
            ExchangeDelete(_) => (40, 20),
            ExchangeDeleteOk => (40, 21),
            ExchangeBind(_) => (40, 30),
            ExchangeBindOk => (40, 31),
            ExchangeUnbind(_) => (40, 40),
            // Not 41: RabbitMQ's extension numbers unbind-ok 51, and clients follow it.
            ExchangeUnbindOk => (40, 51),

            QueueDeclare(_) => (50, 10),
            QueueDeclareOk(_) => (50, 11),
            QueueBind(_) => (50, 20),
            QueueBindOk => (50, 21),
            QueuePurge(_) => (50, 30),
            QueuePurgeOk { .. } => (50, 31),
            QueueDelete(_) => (50, 40),
            QueueDeleteOk { .. } => (50, 41),
            QueueUnbind(_) => (50, 50),
            QueueUnbindOk => (50, 51),

            BasicQos(_) => (60, 10),
            BasicQosOk => (60, 11),
            BasicConsume(_) => (60, 20),
            BasicConsumeOk { .. } => (60, 21),
            BasicCancel(_) => (60, 30),
            BasicCancelOk { .. } => (60, 31),
            BasicPublish(_) => (60, 40),
            BasicReturn(_) => (60, 50),
            BasicDeliver(_) => (60, 60),
            BasicGet(_) => (60, 70),
            BasicGetOk(_) => (60, 71),
            BasicGetEmpty => (60, 72),
            BasicAck(_) => (60, 80),
            BasicReject(_) => (60, 90),
            BasicRecoverAsync { .. } => (60, 100),
            BasicRecover { .. } => (60, 110),
            BasicRecoverOk => (60, 111),
            BasicNack(_) => (60, 120),

            ConfirmSelect { .. } => (85, 10),
            ConfirmSelectOk => (85, 11),

            TxSelect => (90, 10),
            TxSelectOk => (90, 11),
            TxCommit => (90, 20),
            TxCommitOk => (90, 21),
            TxRollback => (90, 30),
            TxRollbackOk => (90, 31),
        }
    }

    pub fn class_id(&self) -> u16 {
        self.id().0
    }

    pub fn method_id(&self) -> u16 {
        self.id().1
    }

    /// `connection.open` -> "connection.open": the name RabbitMQ uses in error texts.
    pub fn name(&self) -> &'static str {
        let (class_id, method_id) = self.id();
        method_name(class_id, method_id).unwrap_or("unknown")
    }

    /// True for methods followed by a content header and body (publish, return, deliver, get-ok).
    pub fn has_content(&self) -> bool {
        matches!(
            self,
            Method::BasicPublish(_)
                | Method::BasicReturn(_)
                | Method::BasicDeliver(_)
                | Method::BasicGetOk(_)
        )
    }
}

/// The name of a (class, method) id pair even when no `Method` value exists, e.g. for
/// `connection.close`'s class-id/method-id fields. `None` if unknown.
pub fn method_name(class_id: u16, method_id: u16) -> Option<&'static str> {
    Some(match (class_id, method_id) {
        (10, 10) => "connection.start",
        (10, 11) => "connection.start-ok",
        (10, 20) => "connection.secure",
        (10, 21) => "connection.secure-ok",
        (10, 30) => "connection.tune",
        (10, 31) => "connection.tune-ok",
        (10, 40) => "connection.open",
        (10, 41) => "connection.open-ok",
        (10, 50) => "connection.close",
        (10, 51) => "connection.close-ok",
        (10, 60) => "connection.blocked",
        (10, 61) => "connection.unblocked",
        (10, 70) => "connection.update-secret",
        (10, 71) => "connection.update-secret-ok",

        (20, 10) => "channel.open",
        (20, 11) => "channel.open-ok",
        (20, 20) => "channel.flow",
        (20, 21) => "channel.flow-ok",
        (20, 40) => "channel.close",
        (20, 41) => "channel.close-ok",

        (30, 10) => "access.request",
        (30, 11) => "access.request-ok",

        (40, 10) => "exchange.declare",
        (40, 11) => "exchange.declare-ok",
        (40, 20) => "exchange.delete",
        (40, 21) => "exchange.delete-ok",
        (40, 30) => "exchange.bind",
        (40, 31) => "exchange.bind-ok",
        (40, 40) => "exchange.unbind",
        (40, 51) => "exchange.unbind-ok",

        (50, 10) => "queue.declare",
        (50, 11) => "queue.declare-ok",
        (50, 20) => "queue.bind",
        (50, 21) => "queue.bind-ok",
        (50, 30) => "queue.purge",
        (50, 31) => "queue.purge-ok",
        (50, 40) => "queue.delete",
        (50, 41) => "queue.delete-ok",
        (50, 50) => "queue.unbind",
        (50, 51) => "queue.unbind-ok",

        (60, 10) => "basic.qos",
        (60, 11) => "basic.qos-ok",
        (60, 20) => "basic.consume",
        (60, 21) => "basic.consume-ok",
        (60, 30) => "basic.cancel",
        (60, 31) => "basic.cancel-ok",
        (60, 40) => "basic.publish",
        (60, 50) => "basic.return",
        (60, 60) => "basic.deliver",
        (60, 70) => "basic.get",
        (60, 71) => "basic.get-ok",
        (60, 72) => "basic.get-empty",
        (60, 80) => "basic.ack",
        (60, 90) => "basic.reject",
        (60, 100) => "basic.recover-async",
        (60, 110) => "basic.recover",
        (60, 111) => "basic.recover-ok",
        (60, 120) => "basic.nack",

        (85, 10) => "confirm.select",
        (85, 11) => "confirm.select-ok",

        (90, 10) => "tx.select",
        (90, 11) => "tx.select-ok",
        (90, 20) => "tx.commit",
        (90, 21) => "tx.commit-ok",
        (90, 30) => "tx.rollback",
        (90, 31) => "tx.rollback-ok",

        _ => return None,
    })
}
