//! `exchange.*` and `queue.*` methods.

use super::Connection;
use crate::names;
use crate::queue_task::QueueRef;
use crate::vhost::{default_exchange_refusal, Destination};
use warren_amqp::{
    encode_method, ExchangeBind, ExchangeDeclare, ExchangeDelete, Method, QueueBind, QueueDeclare,
    QueueDeclareOk, QueueDelete, QueuePurge, QueueUnbind, ShortStr,
};
use warren_core::entity::{check_not_reserved, ExchangeMeta, QueueMeta};
use warren_core::exchange_type::ExchangeType;
use warren_core::{BrokerError, ErrorKind};

impl Connection {
    pub(super) fn exchange_declare(
        &mut self,
        ch: u16,
        m: ExchangeDeclare,
    ) -> Result<(), BrokerError> {
        if m.exchange.is_empty() {
            // Even a passive declare of the default exchange is refused, as in RabbitMQ.
            return Err(default_exchange_refusal());
        }
        if m.passive {
            if self.vhost.exchange(&m.exchange).is_none() {
                return Err(self.vhost.no_exchange(&m.exchange));
            }
            return self.reply(ch, !m.nowait, Method::ExchangeDeclareOk);
        }
        // A channel error, as RabbitMQ 3.13 and later (3.10 closed the connection with 503
        // COMMAND_INVALID); current clients' own suites, pika's among them, expect this.
        let Some(kind) = ExchangeType::parse(&m.kind) else {
            return Err(ExchangeType::unknown(&m.kind));
        };
        // The vhost refuses a new `amq.*` name and checks a redeclaration.
        let meta = ExchangeMeta {
            name: m.exchange,
            kind,
            durable: m.durable,
            auto_delete: m.auto_delete,
            internal: m.internal,
            arguments: m.arguments,
        };
        self.vhost.declare_exchange(meta)?;
        self.reply(ch, !m.nowait, Method::ExchangeDeclareOk)
    }

    /// The vhost refuses to delete the default and `amq.*` exchanges.
    pub(super) fn exchange_delete(&mut self, ch: u16, m: ExchangeDelete) -> Result<(), BrokerError> {
        match self.vhost.delete_exchange(&m.exchange, m.if_unused) {
            // Deleting what does not exist succeeds, as in RabbitMQ.
            Ok(())
            | Err(BrokerError {
                kind: ErrorKind::NotFound,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        self.reply(ch, !m.nowait, Method::ExchangeDeleteOk)
    }

    /// The vhost checks the destination, then the source (neither may be the default
    /// exchange); unbinding is idempotent in RabbitMQ: a missing end is not an error.
    pub(super) fn exchange_bind(
        &mut self,
        ch: u16,
        m: ExchangeBind,
        bind: bool,
    ) -> Result<(), BrokerError> {
        let dest = Destination::Exchange(m.destination.clone());
        if bind {
            self.vhost
                .bind(&m.source, dest, &m.routing_key, &m.arguments)?;
            self.reply(ch, !m.nowait, Method::ExchangeBindOk)
        } else {
            self.vhost
                .unbind(&m.source, &dest, &m.routing_key, &m.arguments)?;
            self.reply(ch, !m.nowait, Method::ExchangeUnbindOk)
        }
    }

    pub(super) async fn queue_declare(
        &mut self,
        ch: u16,
        m: QueueDeclare,
    ) -> Result<(), BrokerError> {
        if let Some(done) = self.declare_reply_queue(ch, &m) {
            return done;
        }
        let name = if m.queue.is_empty() && !m.passive {
            ShortStr::from(names::queue_name())
        } else if m.queue.is_empty() {
            self.current_queue(ch, &m.queue)?
        } else {
            m.queue.clone()
        };
        if !m.passive && self.vhost.queue(&name).is_none() && !m.queue.is_empty() {
            check_not_reserved("queue", &name)?;
        }
        let meta = QueueMeta {
            name: name.clone(),
            durable: m.durable,
            exclusive_owner: m.exclusive.then_some(self.id),
            auto_delete: m.auto_delete,
            arguments: m.arguments,
        };
        let (queue, created) = self.vhost.declare_queue(meta, m.passive, self.id)?;
        if created && queue.meta.exclusive_owner.is_some() {
            self.exclusive_queues.push(queue.clone());
        }
        if let Some(c) = self.channels.get_mut(&ch) {
            c.last_queue = Some(name.clone());
        }
        if m.nowait {
            return Ok(());
        }
        let stats = queue
            .declared()
            .await
            .ok_or_else(|| self.vhost.no_queue(&name))?;
        let ok = QueueDeclareOk {
            queue: name,
            message_count: stats.messages,
            consumer_count: stats.consumers,
        };
        self.reply(ch, true, Method::QueueDeclareOk(ok))
    }

    /// Resolves AMQP's empty queue name to the channel's most recently declared queue.
    pub(super) fn current_queue(&self, ch: u16, name: &ShortStr) -> Result<ShortStr, BrokerError> {
        if !name.is_empty() {
            return Ok(name.clone());
        }
        self.channels
            .get(&ch)
            .and_then(|c| c.last_queue.clone())
            .ok_or_else(|| BrokerError::not_found("no previously declared queue"))
    }

    /// The queue named (or the current one), checking exclusive ownership.
    pub(super) fn lookup_queue(&self, ch: u16, name: &ShortStr) -> Result<QueueRef, BrokerError> {
        let name = self.current_queue(ch, name)?;
        self.vhost.queue_for(&name, self.id)
    }

    pub(super) fn queue_bind(&mut self, ch: u16, m: QueueBind) -> Result<(), BrokerError> {
        let queue = self.lookup_queue(ch, &m.queue)?;
        // An empty routing key with an empty queue name means "the current queue's name".
        let key = if m.routing_key.is_empty() && m.queue.is_empty() {
            queue.name().clone()
        } else {
            m.routing_key
        };
        self.vhost
            .bind(&m.exchange, Destination::Queue(queue), &key, &m.arguments)?;
        self.reply(ch, !m.nowait, Method::QueueBindOk)
    }

    /// Unbinding is idempotent, as in RabbitMQ: a binding, queue or exchange that does not
    /// exist (an auto-delete queue that went with its last consumer, say) is not an error.
    pub(super) fn queue_unbind(&mut self, ch: u16, m: QueueUnbind) -> Result<(), BrokerError> {
        let name = self.current_queue(ch, &m.queue)?;
        if self.vhost.queue(&name).is_none()
            || (self.vhost.exchange(&m.exchange).is_none() && !m.exchange.is_empty())
        {
            return self.reply(ch, true, Method::QueueUnbindOk);
        }
        let queue = self.lookup_queue(ch, &m.queue)?;
        self.vhost.unbind(
            &m.exchange,
            &Destination::Queue(queue),
            &m.routing_key,
            &m.arguments,
        )?;
        self.reply(ch, true, Method::QueueUnbindOk)
    }

    pub(super) async fn queue_purge(&mut self, ch: u16, m: QueuePurge) -> Result<(), BrokerError> {
        let queue = self.lookup_queue(ch, &m.queue)?;
        let count = queue.purge().await;
        self.reply(
            ch,
            !m.nowait,
            Method::QueuePurgeOk {
                message_count: count as u32,
            },
        )
    }

    pub(super) async fn queue_delete(&mut self, ch: u16, m: QueueDelete) -> Result<(), BrokerError> {
        let name = self.current_queue(ch, &m.queue)?;
        let Some(queue) = self.vhost.queue(&name) else {
            // Deleting what does not exist succeeds, as in RabbitMQ.
            return self.reply(ch, !m.nowait, Method::QueueDeleteOk { message_count: 0 });
        };
        let queue = self.vhost.queue_for(queue.name(), self.id)?;
        let count = queue.delete(m.if_unused, m.if_empty).await?;
        // Gone from the vhost (and from the definitions store) before delete-ok.
        self.vhost.forget_queue(&queue);
        self.exclusive_queues.retain(|q| q != &queue);
        self.reply(
            ch,
            !m.nowait,
            Method::QueueDeleteOk {
                message_count: count as u32,
            },
        )?;
        // The consumers' cancellations follow delete-ok, as in RabbitMQ: a client waiting
        // for delete-ok (py-amqp) fails on a basic.cancel read first.
        self.drain_outbound();
        Ok(())
    }

    /// Writes a reply method unless the request said `nowait`.
    pub(super) fn reply(&mut self, ch: u16, send: bool, method: Method) -> Result<(), BrokerError> {
        if send {
            encode_method(ch, &method, &mut self.wbuf);
        }
        Ok(())
    }
}
