//! `basic.*`, `confirm.*` and `tx.*` methods, and content assembly for publishes.

use super::channel::{Assembling, Body, ChannelConsumer, ChannelState, TxSettle};
use super::{push_to, Connection, ConsumerEntry, Fault};
use crate::names;
use crate::queue_task::{Publish, QueueCmd, QueueRef};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use warren_amqp::{
    encode_body_frames, encode_content_header, encode_method, BasicCancel, BasicConsume, BasicGet,
    BasicGetOk, BasicPublish, BasicQos, BasicReturn, ContentHeader, Method, ReplyCode, ShortStr,
};
use warren_core::queue::{ConsumerSpec, Delivery};
use warren_core::{AmqpError, Message};

/// Class id of `basic`, the only content class.
const CLASS_BASIC: u16 = 60;

/// The last routing result of a connection, valid while the vhost's generation stays.
pub(super) struct RouteCache {
    generation: u64,
    exchange: ShortStr,
    routing_key: ShortStr,
    queues: Vec<QueueRef>,
}

/// How a settlement disposes of the messages it covers.
#[derive(Clone, Copy)]
enum Settle {
    Ack,
    Requeue,
    Discard,
}

impl Settle {
    /// What a `basic.reject` / `basic.nack` asks for.
    fn rejected(requeue: bool) -> Settle {
        if requeue {
            Settle::Requeue
        } else {
            Settle::Discard
        }
    }
}

/// Writes `basic.deliver` with the message's content.
pub(super) fn write_delivery(
    out: &mut BytesMut,
    ch: u16,
    consumer_tag: &ShortStr,
    delivery_tag: u64,
    d: &Delivery,
    frame_max: u32,
) {
    let m = &d.message;
    warren_amqp::encode_deliver(
        ch,
        consumer_tag.as_bytes(),
        delivery_tag,
        d.redelivered,
        m.exchange.as_bytes(),
        m.routing_key.as_bytes(),
        &m.properties_raw,
        &m.body,
        frame_max,
        out,
    );
}

fn write_content(out: &mut BytesMut, ch: u16, m: &Message, frame_max: u32) {
    encode_content_header(ch, CLASS_BASIC, m.body.len() as u64, &m.properties_raw, out);
    encode_body_frames(ch, &m.body, frame_max, out);
}

impl Connection {
    fn channel_mut(&mut self, ch: u16) -> &mut super::channel::Channel {
        self.channels
            .get_mut(&ch)
            .expect("method dispatch checked the channel is open")
    }

    pub(super) fn basic_qos(&mut self, ch: u16, m: BasicQos) -> Result<(), AmqpError> {
        if m.prefetch_size != 0 {
            return Err(AmqpError::not_implemented(format!(
                "prefetch_size!=0 ({})",
                m.prefetch_size
            )));
        }
        let channel = self.channel_mut(ch);
        if m.global {
            channel.credit.set_limit(m.prefetch_count as u32);
            let queues: Vec<QueueRef> = channel
                .consumers
                .values()
                .map(|c| c.queue.clone())
                .collect();
            self.pending.pokes.extend(queues);
        } else {
            channel.prefetch_count = m.prefetch_count;
        }
        self.reply(ch, true, Method::BasicQosOk)
    }

    pub(super) async fn basic_consume(
        &mut self,
        ch: u16,
        m: BasicConsume,
    ) -> Result<(), AmqpError> {
        if let Some(done) = self.consume_replies(ch, &m) {
            return done;
        }
        let queue = self.lookup_queue(ch, &m.queue)?;
        let tag = if m.consumer_tag.is_empty() {
            ShortStr::from(names::consumer_tag())
        } else {
            m.consumer_tag
        };
        let owner = self.channel_key(ch);
        let id = self.broker.next_consumer_id();
        let sink = self.sink.clone();
        let channel = self.channel_mut(ch);
        if channel.consumers.contains_key(&tag) {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        let spec = ConsumerSpec {
            id,
            tag: tag.clone(),
            owner,
            no_ack: m.no_ack,
            prefetch: channel.prefetch_count,
            exclusive: m.exclusive,
            priority: warren_core::args::consumer_priority(&m.arguments, &queue.describe())?,
            channel_credit: Some(channel.credit.clone()),
            sink,
        };
        match queue.call(|reply| QueueCmd::Consume { spec, reply }).await {
            None => return Err(self.vhost.no_queue(queue.name())),
            Some(Err(e)) => return Err(e),
            Some(Ok(())) => {}
        }
        let channel = self.channel_mut(ch);
        channel.consumers.insert(
            tag.clone(),
            ChannelConsumer {
                id,
                queue: queue.clone(),
            },
        );
        channel.touched_queues.insert(queue.id, queue.clone());
        self.consumers.insert(
            id,
            ConsumerEntry {
                channel: ch,
                tag: tag.clone(),
                queue,
                no_ack: m.no_ack,
            },
        );
        self.reply(ch, !m.nowait, Method::BasicConsumeOk { consumer_tag: tag })
    }

    pub(super) async fn basic_cancel(&mut self, ch: u16, m: BasicCancel) -> Result<(), AmqpError> {
        self.cancel_replies(ch, &m.consumer_tag);
        let consumer = self
            .channel_mut(ch)
            .consumers
            .get(&m.consumer_tag)
            .map(|c| (c.id, c.queue.clone()));
        if let Some((id, queue)) = consumer {
            queue
                .call(|reply| QueueCmd::Cancel {
                    consumer: id,
                    reply,
                })
                .await;
            // Deliveries the queue sent before it saw the cancel go out before cancel-ok.
            self.drain_outbound();
            self.channel_mut(ch).consumers.remove(&m.consumer_tag);
            self.consumers.remove(&id);
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
    ) -> Result<(), AmqpError> {
        if m.immediate {
            return Err(AmqpError::not_implemented("immediate=true"));
        }
        self.channel_mut(ch).assembling = Some(Assembling {
            publish: m,
            header: None,
            body: Body::Empty,
        });
        Ok(())
    }

    pub(super) async fn on_header(
        &mut self,
        ch: u16,
        header: Box<ContentHeader>,
    ) -> Result<(), Fault> {
        let max = self.broker.config.max_message_size;
        let Some(a) = self.assembling(ch, false)? else {
            return Ok(());
        };
        if header.class_id != CLASS_BASIC {
            let error = AmqpError::unexpected_frame(format!(
                "expected content header for class {CLASS_BASIC}, got one for class {} instead",
                header.class_id
            ));
            return Err(Fault::conn_at(error, 60, 40));
        }
        if header.body_size > max {
            let error = AmqpError::precondition(format!(
                "message size {} is larger than configured max size {max}",
                header.body_size
            ));
            return Err(Fault::publish(ch, error));
        }
        let complete = header.body_size == 0;
        a.header = Some(header);
        if complete {
            self.publish_complete(ch).await?;
        }
        Ok(())
    }

    pub(super) async fn on_body(&mut self, ch: u16, payload: Bytes) -> Result<(), Fault> {
        let Some(a) = self.assembling(ch, true)? else {
            return Ok(());
        };
        let expected = a.header.as_ref().map_or(0, |h| h.body_size);
        let have = a.body.len() as u64 + payload.len() as u64;
        if have > expected {
            return Err(Fault::conn(AmqpError::unexpected_frame(format!(
                "received {have} body bytes for a message of {expected} bytes"
            ))));
        }
        a.body.push(payload);
        if have == expected {
            self.publish_complete(ch).await?;
        }
        Ok(())
    }

    /// The publish a content frame continues: one awaiting its header, or (`has_header`) its
    /// body. `None` on a closing channel, whose frames are discarded.
    fn assembling(&mut self, ch: u16, has_header: bool) -> Result<Option<&mut Assembling>, Fault> {
        let Some(channel) = self.channels.get_mut(&ch) else {
            return Err(Fault::conn(AmqpError::channel_error(
                "expected 'channel.open'",
            )));
        };
        if channel.state == ChannelState::Closing {
            return Ok(None);
        }
        match channel
            .assembling
            .as_mut()
            .filter(|a| a.header.is_some() == has_header)
        {
            Some(a) => Ok(Some(a)),
            None => Err(Fault::conn(AmqpError::unexpected_frame(
                "expected method frame, got non method frame instead",
            ))),
        }
    }

    /// The last content frame of a publish arrived.
    async fn publish_complete(&mut self, ch: u16) -> Result<(), Fault> {
        let channel = self.channel_mut(ch);
        let a = channel.assembling.take().expect("caller checked");
        let header = a.header.expect("caller checked");
        let body = a.body.into_bytes();
        if let Some(tx) = channel.tx.as_mut() {
            tx.publishes.push((a.publish, header, body));
            return Ok(());
        }
        self.publish(ch, a.publish, header, body)
            .map_err(|error| Fault::publish(ch, error))
    }

    /// Routes a whole message and queues it for the per-read flush; earns a confirm.
    fn publish(
        &mut self,
        ch: u16,
        p: BasicPublish,
        header: Box<ContentHeader>,
        body: Bytes,
    ) -> Result<(), AmqpError> {
        self.publishing = true;
        let generation = self.vhost.generation();
        // Publishers usually send many messages to one (exchange, routing key): reuse the
        // last routing result while no definition has changed.
        let cached = self.route_cache.as_ref().is_some_and(|c| {
            c.generation == generation && c.exchange == p.exchange && c.routing_key == p.routing_key
        });
        let ex = if cached {
            None
        } else {
            let Some(ex) = self.vhost.exchange(&p.exchange) else {
                return Err(self.vhost.no_exchange(&p.exchange));
            };
            if ex.meta.internal {
                return Err(AmqpError::access_refused(format!(
                    "cannot publish to internal exchange '{}' in vhost '{}'",
                    p.exchange, self.vhost.name
                )));
            }
            Some(ex)
        };
        if let Some(expiration) = &header.properties.expiration {
            warren_core::args::parse_expiration(expiration)?;
        }
        if let Some(user_id) = &header.properties.user_id {
            if user_id.as_str() != self.user {
                return Err(AmqpError::precondition(format!(
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
        let mut scratch = std::mem::take(&mut self.route_scratch);
        scratch.clear();
        let cache_hit = ex.is_none();
        if let Some(ex) = ex {
            if self.vhost.route(&ex, &message, &mut scratch) {
                self.route_cache = Some(RouteCache {
                    generation,
                    exchange: message.exchange.clone(),
                    routing_key: message.routing_key.clone(),
                    queues: scratch.clone(),
                });
            }
        }
        // A cache hit reads the cached destinations in place: no per-message clones.
        let queues: &[QueueRef] = match &self.route_cache {
            Some(c) if cache_hit => &c.queues,
            _ => &scratch,
        };
        let direct_reply = super::reply_to::route_reply(&message);
        // A message a delayed exchange holds counts as unroutable for `mandatory`, as with
        // the RabbitMQ plugin: it is returned now and still routed when its delay is over.
        let routed = queues.iter().any(|q| !q.delay_store);
        if !routed && p.mandatory && !direct_reply {
            let ret = BasicReturn {
                reply_code: ReplyCode::NoRoute.code(),
                reply_text: ShortStr::from_static("NO_ROUTE"),
                exchange: message.exchange.clone(),
                routing_key: message.routing_key.clone(),
            };
            encode_method(ch, &Method::BasicReturn(ret), &mut self.wbuf);
            write_content(&mut self.wbuf, ch, &message, self.frame_max);
        }
        let channel = self.channels.get_mut(&ch).expect("open channel");
        // In confirm mode, a persistent message is confirmed once every durable queue it was
        // routed to has it on disk, and any message once every queue that may refuse it (a
        // length limit with reject-publish) took it; anything else as soon as it is enqueued.
        let confirm_seq = channel.confirm.then(|| channel.next_publish_seq);
        let mut awaiting = 0;
        for q in queues {
            let confirm = match confirm_seq {
                Some(seq) if q.answers_confirm(&message) => {
                    awaiting += 1;
                    Some((ch, seq))
                }
                _ => None,
            };
            let publish = Publish {
                message: message.clone(),
                confirm,
            };
            match self.pending.publishes.iter_mut().find(|(pq, _)| pq == q) {
                Some((_, batch)) => batch.push(publish),
                None => self.pending.publishes.push((q.clone(), vec![publish])),
            }
        }
        self.route_scratch = scratch;
        if let Some(seq) = confirm_seq {
            channel.next_publish_seq += 1;
            channel.await_confirms(seq, awaiting);
        }
        Ok(())
    }

    pub(super) async fn basic_get(&mut self, ch: u16, m: BasicGet) -> Result<(), AmqpError> {
        let queue = self.lookup_queue(ch, &m.queue)?;
        let owner = self.channel_key(ch);
        let got = queue
            .call(|reply| QueueCmd::Get {
                owner,
                no_ack: m.no_ack,
                reply,
            })
            .await
            .ok_or_else(|| self.vhost.no_queue(queue.name()))?;
        let Some((delivery, remaining)) = got else {
            return self.reply(ch, true, Method::BasicGetEmpty);
        };
        let frame_max = self.frame_max;
        let channel = self.channel_mut(ch);
        channel.touched_queues.insert(queue.id, queue.clone());
        let tag = channel.next_delivery_tag(&queue, delivery.seq, !m.no_ack, false);
        let msg = &delivery.message;
        let ok = BasicGetOk {
            delivery_tag: tag,
            redelivered: delivery.redelivered,
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
            message_count: remaining as u32,
        };
        encode_method(ch, &Method::BasicGetOk(ok), &mut self.wbuf);
        write_content(&mut self.wbuf, ch, msg, frame_max);
        Ok(())
    }

    pub(super) fn basic_ack(&mut self, ch: u16, tag: u64, multiple: bool) -> Result<(), AmqpError> {
        if let Some(tx) = self.channel_mut(ch).tx.as_mut() {
            tx.settles.push(TxSettle::Ack { tag, multiple });
            return Ok(());
        }
        self.settle(ch, tag, multiple, Settle::Ack)
    }

    pub(super) fn basic_nack(
        &mut self,
        ch: u16,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<(), AmqpError> {
        if let Some(tx) = self.channel_mut(ch).tx.as_mut() {
            tx.settles.push(TxSettle::Nack {
                tag,
                multiple,
                requeue,
            });
            return Ok(());
        }
        self.settle(ch, tag, multiple, Settle::rejected(requeue))
    }

    fn settle(&mut self, ch: u16, tag: u64, multiple: bool, how: Settle) -> Result<(), AmqpError> {
        let channel = self.channels.get_mut(&ch).expect("open channel");
        let list = match how {
            Settle::Ack => &mut self.pending.acks,
            Settle::Requeue => &mut self.pending.requeues,
            Settle::Discard => &mut self.pending.discards,
        };
        let mut released = 0;
        let known = channel.take_settled(tag, multiple, |u| {
            released += u.via_consumer as u32;
            push_to(list, &u.queue, u.seq);
        });
        if !known {
            return Err(AmqpError::precondition(format!(
                "unknown delivery tag {tag}"
            )));
        }
        if released > 0 && channel.credit.release(released) {
            // The channel was at its global prefetch: its consumers' queues may deliver again.
            for c in channel.consumers.values() {
                if !self.pending.pokes.contains(&c.queue) {
                    self.pending.pokes.push(c.queue.clone());
                }
            }
        }
        Ok(())
    }

    pub(super) async fn basic_recover(
        &mut self,
        ch: u16,
        requeue: bool,
        sync: bool,
    ) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        self.settle(ch, 0, true, Settle::Requeue)?;
        self.flush_pending().await;
        self.reply(ch, sync, Method::BasicRecoverOk)
    }

    pub(super) fn confirm_select(&mut self, ch: u16, nowait: bool) -> Result<(), AmqpError> {
        let channel = self.channel_mut(ch);
        if channel.tx.is_some() {
            return Err(AmqpError::precondition(
                "cannot switch from tx to confirm mode",
            ));
        }
        channel.confirm = true;
        self.reply(ch, !nowait, Method::ConfirmSelectOk)
    }

    pub(super) fn tx_select(&mut self, ch: u16) -> Result<(), AmqpError> {
        let channel = self.channel_mut(ch);
        if channel.confirm {
            return Err(AmqpError::precondition(
                "cannot switch from confirm to tx mode",
            ));
        }
        channel.tx.get_or_insert_with(Default::default);
        self.reply(ch, true, Method::TxSelectOk)
    }

    /// Applies the transaction's publishes and settlements, all before commit-ok.
    pub(super) async fn tx_commit(&mut self, ch: u16) -> Result<(), AmqpError> {
        let channel = self.channel_mut(ch);
        let Some(tx) = channel.tx.replace(Default::default()) else {
            return Err(AmqpError::precondition("channel is not transactional"));
        };
        for (publish, header, body) in tx.publishes {
            self.publish(ch, publish, header, body)?;
        }
        // Commit-ok waits until the committed persistent messages are on disk.
        let to_sync: Vec<QueueRef> = self
            .pending
            .publishes
            .iter()
            .filter(|(q, batch)| q.persists() && batch.iter().any(|p| p.message.is_persistent()))
            .map(|(q, _)| q.clone())
            .collect();
        for s in tx.settles {
            match s {
                TxSettle::Ack { tag, multiple } => self.settle(ch, tag, multiple, Settle::Ack)?,
                TxSettle::Nack {
                    tag,
                    multiple,
                    requeue,
                } => self.settle(ch, tag, multiple, Settle::rejected(requeue))?,
            }
        }
        self.flush_pending().await;
        for q in to_sync {
            if q.call(|reply| QueueCmd::Sync { reply }).await == Some(false) {
                return Err(AmqpError::internal(format!(
                    "{} could not write the committed messages",
                    q.describe()
                )));
            }
        }
        self.reply(ch, true, Method::TxCommitOk)
    }

    pub(super) fn tx_rollback(&mut self, ch: u16) -> Result<(), AmqpError> {
        let channel = self.channel_mut(ch);
        let Some(tx) = channel.tx.as_mut() else {
            return Err(AmqpError::precondition("channel is not transactional"));
        };
        *tx = Default::default();
        self.reply(ch, true, Method::TxRollbackOk)
    }
}
