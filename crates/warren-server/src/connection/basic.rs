//! `basic.*`, `confirm.*` and `tx.*`: the AMQP rendering of core's publishing and
//! subscription pieces. A publish is assembled from its frames (`warren_amqp::content`),
//! checked as RabbitMQ checks it, routed and batched by the channel's `Publisher`; consumers,
//! delivery tags and settlements are the channel's `Subscriptions`.

use super::channel::{ChannelState, TxPublish};
use super::deliver::write_content;
use super::{Connection, Fault, WRITE_WINDOW};
use crate::names;
use crate::target::Target;
use bytes::Bytes;
use std::sync::Arc;
use warren_amqp::content::{Assembly, ContentError};
use warren_amqp::{
    encode_method, BasicCancel, BasicConsume, BasicGet, BasicGetOk, BasicPublish, BasicQos,
    BasicReturn, ContentHeader, Method, ReplyCode, ShortStr, BASIC_PUBLISH,
};
use warren_core::queue::{Command, ConsumerSpec, Settlement};
use warren_core::session::{Subscription, Transaction};
use crate::stats::Counter;
use warren_core::{BrokerError, ErrorKind, Message};

impl Connection {
    fn channel_mut(&mut self, ch: u16) -> &mut super::channel::Channel {
        self.channels
            .get_mut(&ch)
            .expect("method dispatch checked the channel is open")
    }

    pub(super) fn basic_qos(&mut self, ch: u16, m: BasicQos) -> Result<(), BrokerError> {
        if m.prefetch_size != 0 {
            return Err(BrokerError::not_implemented(format!(
                "prefetch_size!=0 ({})",
                m.prefetch_size
            )));
        }
        let channel = self.channel_mut(ch);
        if m.global {
            channel.subs.set_shared_limit(m.prefetch_count as u32);
        } else {
            channel.subs.set_prefetch(m.prefetch_count);
        }
        self.reply(ch, true, Method::BasicQosOk)
    }

    pub(super) async fn basic_consume(
        &mut self,
        ch: u16,
        m: BasicConsume,
    ) -> Result<(), BrokerError> {
        if let Some(done) = self.consume_replies(ch, &m) {
            return done;
        }
        let queue = self.lookup_queue(ch, &m.queue)?;
        let tag = if m.consumer_tag.is_empty() {
            ShortStr::from(names::consumer_tag())
        } else {
            m.consumer_tag
        };
        let id = self.broker.next_consumer_id();
        let priority = warren_core::args::consumer_priority(&m.arguments, &queue.describe())?;
        let channel = self.channel_mut(ch);
        if channel.subs.has_consumer(&tag) {
            return Err(BrokerError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        let spec = ConsumerSpec {
            id,
            tag: tag.clone(),
            session: channel.session,
            no_ack: m.no_ack,
            prefetch: channel.subs.prefetch(),
            exclusive: m.exclusive,
            priority,
            window: WRITE_WINDOW,
            session_credit: channel.subs.initial_credit(id, &queue, m.no_ack),
        };
        let meta = super::channel::ConsumerMeta {
            exclusive: m.exclusive,
            prefetch: spec.prefetch,
            arguments: m.arguments.clone(),
        };
        let result = queue.consume(spec, self.sink.clone()).await;
        let channel = self.channel_mut(ch);
        match result {
            Some(Ok(())) => {
                channel.consumer_meta.insert(id, meta);
                channel.subs.subscribed(Subscription {
                    id,
                    tag: tag.clone(),
                    queue,
                    no_ack: m.no_ack,
                })
            }
            Some(Err(e)) => {
                channel.subs.not_subscribed(id);
                return Err(e);
            }
            None => {
                channel.subs.not_subscribed(id);
                return Err(self.vhost.no_queue(queue.name()));
            }
        }
        self.reply(ch, !m.nowait, Method::BasicConsumeOk { consumer_tag: tag })
    }

    pub(super) async fn basic_cancel(&mut self, ch: u16, m: BasicCancel) -> Result<(), BrokerError> {
        self.cancel_replies(ch, &m.consumer_tag);
        let consumer = self
            .channel_mut(ch)
            .subs
            .consumer_by_tag(&m.consumer_tag)
            .map(|c| (c.id, c.queue.clone()));
        if let Some((id, queue)) = consumer {
            queue.ask(Command::Cancel(id)).await;
            // Deliveries the queue sent before it saw the cancel go out before cancel-ok.
            self.drain_outbound();
            self.channel_mut(ch).subs.unsubscribe(&m.consumer_tag);
            self.channel_mut(ch).consumer_meta.remove(&id);
            // An auto-delete queue went with its last consumer: the canceller's next command
            // already finds it gone.
            if queue.is_gone() {
                self.vhost.forget_queue(&queue);
            }
        }
        self.reply(
            ch,
            !m.nowait,
            Method::BasicCancelOk {
                consumer_tag: m.consumer_tag,
            },
        )
    }

    pub(super) fn basic_publish_start(
        &mut self,
        ch: u16,
        m: BasicPublish,
    ) -> Result<(), BrokerError> {
        if m.immediate {
            return Err(BrokerError::not_implemented("immediate=true"));
        }
        self.channel_mut(ch).assembling = Some(Assembly::new(m));
        Ok(())
    }

    pub(super) async fn on_header(
        &mut self,
        ch: u16,
        header: Box<ContentHeader>,
    ) -> Result<(), Fault> {
        let max = self.broker.config.max_message_size;
        let Some(a) = self.assembling(ch)? else {
            return Ok(());
        };
        match a.header(header, max) {
            Ok(true) => self.publish_complete(ch),
            Ok(false) => Ok(()),
            Err(e) => Err(content_fault(ch, e)),
        }
    }

    pub(super) async fn on_body(&mut self, ch: u16, payload: Bytes) -> Result<(), Fault> {
        let Some(a) = self.assembling(ch)? else {
            return Ok(());
        };
        match a.body(payload) {
            Ok(true) => self.publish_complete(ch),
            Ok(false) => Ok(()),
            Err(e) => Err(content_fault(ch, e)),
        }
    }

    /// The publish a content frame continues. `None` on a closing channel, whose frames are
    /// discarded.
    fn assembling(&mut self, ch: u16) -> Result<Option<&mut Assembly>, Fault> {
        let Some(channel) = self.channels.get_mut(&ch) else {
            return Err(Fault::conn(BrokerError::channel_error(
                "expected 'channel.open'",
            )));
        };
        if channel.state == ChannelState::Closing {
            return Ok(None);
        }
        match channel.assembling.as_mut() {
            Some(a) => Ok(Some(a)),
            None => Err(content_fault(ch, ContentError::NotExpected)),
        }
    }

    /// The last content frame of a publish arrived.
    fn publish_complete(&mut self, ch: u16) -> Result<(), Fault> {
        let channel = self.channel_mut(ch);
        let c = channel.assembling.take().expect("caller checked").finish();
        if let Some(tx) = channel.tx.as_mut() {
            tx.publish((c.publish, c.header, c.body));
            return Ok(());
        }
        self.publish(ch, (c.publish, c.header, c.body))
            .map_err(|error| Fault::publish(ch, error))
    }

    /// Checks a whole message as RabbitMQ does, routes it and queues it for the per-read
    /// flush; earns a confirm in confirm mode.
    fn publish(&mut self, ch: u16, (p, header, body): TxPublish) -> Result<(), BrokerError> {
        self.publishing = true;
        if let Some(expiration) = &header.properties.expiration {
            warren_core::args::parse_expiration(expiration)?;
        }
        if let Some(user_id) = &header.properties.user_id {
            if user_id.as_str() != self.user {
                return Err(BrokerError::precondition(format!(
                    "user_id property set to '{user_id}' but authenticated user was '{}'",
                    self.user
                )));
            }
        }
        let header = self.rewrite_reply_to(ch, header)?;
        let ContentHeader {
            properties,
            properties_raw,
            ..
        } = *header;
        let message = Arc::new(Message {
            exchange: p.exchange,
            routing_key: p.routing_key,
            properties,
            properties_raw,
            body,
        });
        let vhost = &self.vhost;
        let channel = self.channels.get_mut(&ch).expect("open channel");
        let published = channel
            .publisher
            .publish(vhost.generation(), message.clone(), |m, out| {
                let Some(ex) = vhost.exchange(&m.exchange) else {
                    return Err(vhost.no_exchange(&m.exchange));
                };
                if ex.meta.internal {
                    return Err(BrokerError::access_refused(format!(
                        "cannot publish to internal exchange '{}' in vhost '{}'",
                        m.exchange, vhost.name
                    )));
                }
                Ok(vhost.route(&ex, m, out))
            })?;
        let direct_reply = super::reply_to::route_reply(&message);
        self.stats.counters.add(Counter::Publish, 1);
        if !published.routed && !direct_reply {
            let unroutable = if p.mandatory {
                Counter::ReturnUnroutable
            } else {
                Counter::DropUnroutable
            };
            self.stats.counters.add(unroutable, 1);
        }
        if !published.routed && p.mandatory && !direct_reply {
            let ret = BasicReturn {
                reply_code: ReplyCode::NoRoute.code(),
                reply_text: ShortStr::from_static("NO_ROUTE"),
                exchange: message.exchange.clone(),
                routing_key: message.routing_key.clone(),
            };
            encode_method(ch, &Method::BasicReturn(ret), &mut self.wbuf);
            write_content(&mut self.wbuf, ch, &message, self.frame_max);
        }
        Ok(())
    }

    pub(super) async fn basic_get(&mut self, ch: u16, m: BasicGet) -> Result<(), BrokerError> {
        let queue = self.lookup_queue(ch, &m.queue)?;
        let session = self.channel_mut(ch).session;
        let got = queue
            .get(session, m.no_ack)
            .await
            .ok_or_else(|| self.vhost.no_queue(queue.name()))?;
        let Some(got) = got else {
            self.stats.counters.add(Counter::GetEmpty, 1);
            self.channel_mut(ch).subs.touch(&queue);
            return self.reply(ch, true, Method::BasicGetEmpty);
        };
        let frame_max = self.frame_max;
        let channel = self.channel_mut(ch);
        let tag = channel.subs.got(&queue, got.delivery.seq, m.no_ack);
        let counter = if m.no_ack { Counter::GetNoAck } else { Counter::Get };
        self.stats.counters.add(counter, 1);
        if got.delivery.redelivered {
            self.stats.counters.add(Counter::Redeliver, 1);
        }
        let msg = &got.delivery.message;
        let ok = BasicGetOk {
            delivery_tag: tag,
            redelivered: got.delivery.redelivered,
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
            message_count: got.remaining as u32,
        };
        encode_method(ch, &Method::BasicGetOk(ok), &mut self.wbuf);
        write_content(&mut self.wbuf, ch, msg, frame_max);
        Ok(())
    }

    /// `basic.ack`, `basic.nack`, `basic.reject`: settled now, or at commit in tx mode.
    pub(super) fn basic_settle(
        &mut self,
        ch: u16,
        tag: u64,
        multiple: bool,
        how: Settlement,
    ) -> Result<(), BrokerError> {
        let channel = self.channel_mut(ch);
        if let Some(tx) = channel.tx.as_mut() {
            tx.settle(tag, multiple, how);
            return Ok(());
        }
        channel
            .subs
            .settle(tag, multiple, how)
            .map_err(|e| BrokerError::precondition(e.to_string()))
    }

    pub(super) async fn basic_recover(
        &mut self,
        ch: u16,
        requeue: bool,
        sync: bool,
    ) -> Result<(), BrokerError> {
        if !requeue {
            return Err(BrokerError::not_implemented("requeue=false"));
        }
        // Everything unsettled goes back, transaction or not.
        self.channel_mut(ch)
            .subs
            .settle(0, true, Settlement::Requeue)
            .map_err(|e| BrokerError::precondition(e.to_string()))?;
        self.flush_pending().await;
        self.reply(ch, sync, Method::BasicRecoverOk)
    }

    pub(super) fn confirm_select(&mut self, ch: u16, nowait: bool) -> Result<(), BrokerError> {
        let channel = self.channel_mut(ch);
        if channel.tx.is_some() {
            return Err(BrokerError::precondition(
                "cannot switch from tx to confirm mode",
            ));
        }
        channel.publisher.start_confirms();
        self.reply(ch, !nowait, Method::ConfirmSelectOk)
    }

    pub(super) fn tx_select(&mut self, ch: u16) -> Result<(), BrokerError> {
        let channel = self.channel_mut(ch);
        if channel.publisher.is_confirming() {
            return Err(BrokerError::precondition(
                "cannot switch from confirm to tx mode",
            ));
        }
        channel.tx.get_or_insert_with(Transaction::new);
        self.reply(ch, true, Method::TxSelectOk)
    }

    /// Applies the transaction's publishes and settlements, all before commit-ok; commit-ok
    /// waits until the committed persistent messages are on disk.
    pub(super) async fn tx_commit(&mut self, ch: u16) -> Result<(), BrokerError> {
        let channel = self.channel_mut(ch);
        let Some(tx) = channel.tx.as_mut() else {
            return Err(BrokerError::precondition("channel is not transactional"));
        };
        let (publishes, settles) = tx.commit();
        for publish in publishes {
            self.publish(ch, publish)?;
        }
        let channel = self.channel_mut(ch);
        let to_sync: Vec<Target> = channel
            .publisher
            .batches()
            .filter(|(t, batch)| t.persists() && batch.iter().any(|p| p.message.is_persistent()))
            .map(|(t, _)| t.clone())
            .collect();
        for s in settles {
            channel
                .subs
                .settle(s.tag, s.multiple, s.how)
                .map_err(|e| BrokerError::precondition(e.to_string()))?;
        }
        self.flush_pending().await;
        for t in to_sync {
            if !t.sync().await {
                return Err(BrokerError::internal(format!(
                    "{} could not write the committed messages",
                    t.describe()
                )));
            }
        }
        self.reply(ch, true, Method::TxCommitOk)
    }

    pub(super) fn tx_rollback(&mut self, ch: u16) -> Result<(), BrokerError> {
        let channel = self.channel_mut(ch);
        let Some(tx) = channel.tx.as_mut() else {
            return Err(BrokerError::precondition("channel is not transactional"));
        };
        tx.rollback();
        self.reply(ch, true, Method::TxRollbackOk)
    }
}

/// A content frame out of sequence, where RabbitMQ reports it.
fn content_fault(ch: u16, e: ContentError) -> Fault {
    let error = BrokerError::new(ErrorKind::from_reply_code(e.reply_code()), e.to_string());
    let (class_id, method_id) = if e.at_publish() { BASIC_PUBLISH } else { (0, 0) };
    if e.closes_connection() {
        Fault::conn_at(error, class_id, method_id)
    } else {
        Fault {
            error,
            channel: ch,
            class_id,
            method_id,
        }
    }
}
