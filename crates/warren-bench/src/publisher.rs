//! One publishing channel: what it may send now (confirm window, fixed rate, message limit)
//! and how a publish is written.
//!
//! Every publish of a channel is the same bytes apart from the send timestamp, so the
//! method, content-header and body frames are encoded once with the codec into a template;
//! publishing is then a copy of the template and an 8-byte patch, with no per-message
//! encoding at all. That is what keeps the bench's CPU per message far below the broker's.

use bytes::BytesMut;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use warren_amqp::{
    encode_body_frames, encode_content_header, encode_method, BasicProperties, BasicPublish,
    Method, ShortStr, CLASS_BASIC,
};

use super::histogram::Histogram;

/// What one publishing channel sends, decided by the scenario.
#[derive(Debug, Clone)]
pub struct PublisherSpec {
    pub exchange: String,
    pub routing_key: String,
    pub body_bytes: usize,
    /// delivery-mode 2.
    pub persistent: bool,
    /// Unconfirmed messages allowed in flight; `None` publishes without confirms.
    pub confirm_window: Option<u64>,
    /// Messages per second for this channel; `None` publishes as fast as the broker reads.
    pub rate_per_s: Option<f64>,
    /// Stop after this many messages.
    pub limit: Option<u64>,
}

pub struct Publisher {
    pub channel: u16,
    template: Vec<u8>,
    /// Where the 8-byte send timestamp sits in `template`; `None` for bodies under 8 bytes.
    stamp_at: Option<usize>,
    confirms: Option<Confirms>,
    rate_per_s: Option<f64>,
    started: Option<Instant>,
    limit: u64,
    sent: u64,
    /// `channel.flow` with active=false (RabbitMQ never sends it any more; others might).
    pub paused: bool,
}

impl Publisher {
    pub fn new(channel: u16, spec: &PublisherSpec, frame_max: u32) -> Publisher {
        let mut template = BytesMut::new();
        let publish = BasicPublish {
            exchange: ShortStr::truncating(&spec.exchange),
            routing_key: ShortStr::truncating(&spec.routing_key),
            mandatory: false,
            immediate: false,
        };
        encode_method(channel, &Method::BasicPublish(publish), &mut template);
        let properties = BasicProperties {
            delivery_mode: Some(if spec.persistent { 2 } else { 1 }),
            ..Default::default()
        };
        let mut properties_raw = BytesMut::new();
        properties.encode(&mut properties_raw);
        encode_content_header(
            channel,
            CLASS_BASIC,
            spec.body_bytes as u64,
            &properties_raw,
            &mut template,
        );
        // The first body frame's payload starts after its 7-byte frame header.
        let body_start = template.len() + 7;
        let body: Vec<u8> = (0..spec.body_bytes)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        encode_body_frames(channel, &body, frame_max, &mut template);
        // frame-max is at least 4096 (or unlimited), so the first body frame holds all 8 bytes.
        let stamp_at = (spec.body_bytes >= 8).then_some(body_start);
        Publisher {
            channel,
            template: template.to_vec(),
            stamp_at,
            confirms: spec.confirm_window.map(Confirms::new),
            rate_per_s: spec.rate_per_s.filter(|r| *r > 0.0),
            started: None,
            limit: spec.limit.unwrap_or(u64::MAX),
            sent: 0,
            paused: false,
        }
    }

    /// Bytes one publish adds to the write buffer.
    pub fn frame_bytes(&self) -> usize {
        self.template.len()
    }

    /// Starts the rate clock: a fixed-rate publisher owes one message per `1/rate` from now.
    pub fn start(&mut self, now: Instant) {
        self.started.get_or_insert(now);
    }

    /// How many messages may be published now.
    pub fn credit(&self, now: Instant) -> u64 {
        if self.paused {
            return 0;
        }
        let mut credit = self.limit - self.sent;
        if let Some(confirms) = &self.confirms {
            credit = credit.min(confirms.window.saturating_sub(confirms.outstanding));
        }
        if let (Some(rate), Some(started)) = (self.rate_per_s, self.started) {
            let due = (now.saturating_duration_since(started).as_secs_f64() * rate) as u64;
            credit = credit.min(due.saturating_sub(self.sent));
        }
        credit
    }

    /// When a rate-limited publisher next gets credit; `None` if it is not waiting on its rate.
    pub fn next_credit_at(&self) -> Option<Instant> {
        let (rate, started) = (self.rate_per_s?, self.started?);
        if self.sent >= self.limit || self.paused {
            return None;
        }
        Some(started + Duration::from_secs_f64((self.sent + 1) as f64 / rate))
    }

    /// Appends `count` publishes stamped with `stamp_nanos` (`stats::now_nanos`) to `out`;
    /// their confirms are timed from that stamp.
    pub fn publish(&mut self, count: u64, stamp_nanos: u64, out: &mut BytesMut) {
        out.reserve(self.template.len() * count as usize);
        for _ in 0..count {
            let at = out.len();
            out.extend_from_slice(&self.template);
            if let Some(offset) = self.stamp_at {
                out[at + offset..at + offset + 8].copy_from_slice(&stamp_nanos.to_be_bytes());
            }
        }
        self.sent += count;
        if let Some(confirms) = &mut self.confirms {
            confirms.published(count, stamp_nanos);
        }
    }

    /// Applies a `basic.ack` (or, with `nack`, a `basic.nack`) read at `now_nanos`; returns
    /// how many messages it settled that were not settled before. Each message an ack settles
    /// adds its publish→ack time to `latency`; nacked messages add nothing.
    pub fn settle(
        &mut self,
        delivery_tag: u64,
        multiple: bool,
        nack: bool,
        now_nanos: u64,
        latency: &mut Histogram,
    ) -> u64 {
        let latency = (!nack).then_some(latency);
        self.confirms
            .as_mut()
            .map_or(0, |c| c.settle(delivery_tag, multiple, now_nanos, latency))
    }
}

/// Marks a settled message in [`Confirms::sent_at`]; no send time comes near it (584 years).
const SETTLED: u64 = u64::MAX;
/// Largest number of unconfirmed messages whose room is reserved up front.
const RESERVE_MAX: u64 = 1 << 20;

/// Which published messages await their confirm, and when each was published. Delivery tags
/// count from 1 per channel; the broker may confirm one at a time, out of order, or many at
/// once (`multiple`).
///
/// One `u64` per unconfirmed message in a ring reserved for the confirm window up front, so
/// that neither publishing nor settling allocates.
struct Confirms {
    window: u64,
    /// Delivery tag of `sent_at[0]`.
    base: u64,
    /// From `base` on: each message's send time (`stats::now_nanos`), or [`SETTLED`].
    sent_at: VecDeque<u64>,
    outstanding: u64,
}

impl Confirms {
    fn new(window: u64) -> Confirms {
        let window = window.max(1);
        Confirms {
            window,
            base: 1,
            sent_at: VecDeque::with_capacity(window.min(RESERVE_MAX) as usize),
            outstanding: 0,
        }
    }

    fn published(&mut self, count: u64, sent_at: u64) {
        debug_assert!(sent_at != SETTLED);
        self.sent_at
            .extend(std::iter::repeat_n(sent_at, count as usize));
        self.outstanding += count;
    }

    /// Settles `tag` (and, if `multiple`, every tag before it); records the publish→confirm
    /// time of each newly settled message in `latency` when given.
    fn settle(
        &mut self,
        tag: u64,
        multiple: bool,
        now: u64,
        mut latency: Option<&mut Histogram>,
    ) -> u64 {
        if tag < self.base || tag - self.base >= self.sent_at.len() as u64 {
            return 0; // already settled, or never published: nothing to count
        }
        let index = (tag - self.base) as usize;
        let mut newly = 0;
        let mut settle_one = |sent_at: &mut u64| {
            if *sent_at != SETTLED {
                if let Some(latency) = latency.as_deref_mut() {
                    latency.record(now.saturating_sub(*sent_at));
                }
                *sent_at = SETTLED;
                newly += 1;
            }
        };
        if multiple {
            self.sent_at.range_mut(..=index).for_each(&mut settle_one);
        } else {
            settle_one(&mut self.sent_at[index]);
        }
        while self.sent_at.front() == Some(&SETTLED) {
            self.sent_at.pop_front();
            self.base += 1;
        }
        self.outstanding -= newly;
        newly
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use warren_amqp::{Frame, FrameDecoder};

    fn spec(body_bytes: usize) -> PublisherSpec {
        PublisherSpec {
            exchange: "x".into(),
            routing_key: "q".into(),
            body_bytes,
            persistent: true,
            confirm_window: Some(3),
            rate_per_s: None,
            limit: None,
        }
    }

    #[test]
    fn publishes_decode_as_publish_header_and_stamped_body() {
        let mut publisher = Publisher::new(7, &spec(64), 131_072);
        let mut out = BytesMut::new();
        publisher.publish(2, 0x0102_0304_0506_0708, &mut out);
        let mut decoder = FrameDecoder::new(131_072);
        for _ in 0..2 {
            let Some(Frame::Method {
                channel: 7,
                method: Method::BasicPublish(p),
            }) = decoder.decode(&mut out).unwrap()
            else {
                panic!("expected basic.publish")
            };
            assert_eq!((p.exchange.as_str(), p.routing_key.as_str()), ("x", "q"));
            let Some(Frame::Header { header, .. }) = decoder.decode(&mut out).unwrap() else {
                panic!("expected header")
            };
            assert_eq!(header.body_size, 64);
            assert!(header.properties.is_persistent());
            let Some(Frame::Body { mut payload, .. }) = decoder.decode(&mut out).unwrap() else {
                panic!("expected body")
            };
            assert_eq!(payload.len(), 64);
            assert_eq!(payload.get_u64(), 0x0102_0304_0506_0708);
        }
        assert!(out.is_empty());
    }

    #[test]
    fn large_bodies_are_split_by_frame_max_and_still_stamped() {
        let mut publisher = Publisher::new(1, &spec(10_000), 4096);
        let mut out = BytesMut::new();
        publisher.publish(1, 42, &mut out);
        let mut decoder = FrameDecoder::new(4096);
        let mut bodies = Vec::new();
        while let Some(frame) = decoder.decode(&mut out).unwrap() {
            if let Frame::Body { payload, .. } = frame {
                bodies.push(payload);
            }
        }
        assert_eq!(bodies.len(), 3);
        assert_eq!(bodies.iter().map(|b| b.len()).sum::<usize>(), 10_000);
        assert_eq!(u64::from_be_bytes(bodies[0][..8].try_into().unwrap()), 42);
    }

    #[test]
    fn confirm_window_limits_credit_until_acks_arrive() {
        let mut publisher = Publisher::new(1, &spec(8), 131_072);
        let mut latency = Histogram::default();
        let now = Instant::now();
        assert_eq!(publisher.credit(now), 3);
        publisher.publish(3, 0, &mut BytesMut::new());
        assert_eq!(publisher.credit(now), 0);
        assert_eq!(publisher.settle(2, false, false, 10, &mut latency), 1);
        assert_eq!(publisher.credit(now), 1);
        assert_eq!(publisher.settle(3, true, false, 10, &mut latency), 2);
        assert_eq!(
            publisher.settle(3, true, false, 10, &mut latency),
            0,
            "a repeated ack settles nothing"
        );
        assert_eq!(publisher.credit(now), 3);
    }

    /// Publishes `count` messages at `sent_at` into `confirms`.
    fn publish(confirms: &mut Confirms, count: u64, sent_at: u64) {
        confirms.published(count, sent_at);
    }

    // Times below 128 ns are kept exactly by the histogram, so these tests compare exactly.

    #[test]
    fn each_acked_message_is_timed_from_its_own_publish() {
        let mut confirms = Confirms::new(100);
        let mut latency = Histogram::default();
        publish(&mut confirms, 2, 10); // tags 1, 2
        publish(&mut confirms, 1, 50); // tag 3
        assert_eq!(confirms.settle(2, false, 90, Some(&mut latency)), 1);
        assert_eq!((latency.count(), latency.max()), (1, 80));
        assert_eq!(confirms.settle(3, false, 90, Some(&mut latency)), 1);
        assert_eq!(confirms.settle(1, false, 110, Some(&mut latency)), 1);
        assert_eq!(latency.count(), 3);
        assert_eq!(latency.quantile(0.0), Some(40), "tag 3: 90 - 50");
        assert_eq!(latency.quantile(0.5), Some(80), "tag 2: 90 - 10");
        assert_eq!(latency.max(), 100, "tag 1: 110 - 10");
        assert_eq!(confirms.outstanding, 0);
        assert!(confirms.sent_at.is_empty() && confirms.base == 4);
    }

    #[test]
    fn a_multiple_ack_times_every_message_it_settles_and_skips_those_settled_before() {
        let mut confirms = Confirms::new(100);
        let mut latency = Histogram::default();
        publish(&mut confirms, 3, 10); // tags 1..=3
        publish(&mut confirms, 3, 40); // tags 4..=6
        assert_eq!(confirms.settle(2, false, 60, Some(&mut latency)), 1);
        assert_eq!(confirms.settle(5, true, 100, Some(&mut latency)), 4);
        assert_eq!(latency.count(), 5, "tag 2 is not timed twice");
        // Samples: 50 (tag 2), 60, 60 (tags 4, 5), 90, 90 (tags 1, 3).
        assert_eq!(latency.quantile(0.2), Some(50));
        assert_eq!(latency.quantile(0.6), Some(60));
        assert_eq!(latency.max(), 90);
        assert_eq!((confirms.outstanding, confirms.base), (1, 6));
        assert_eq!(confirms.settle(6, true, 120, Some(&mut latency)), 1);
        assert_eq!((latency.count(), confirms.outstanding), (6, 0));
        assert_eq!(
            confirms.settle(9, true, 130, Some(&mut latency)),
            0,
            "never published"
        );
        assert_eq!(latency.count(), 6);
    }

    #[test]
    fn nacks_settle_and_free_the_window_without_a_latency_sample() {
        let mut publisher = Publisher::new(1, &spec(8), 131_072);
        let mut latency = Histogram::default();
        publisher.publish(3, 50, &mut BytesMut::new());
        assert_eq!(publisher.settle(1, false, true, 80, &mut latency), 1);
        assert_eq!(publisher.settle(3, true, true, 80, &mut latency), 2);
        assert_eq!(latency.count(), 0, "a nack is not a confirm");
        assert_eq!(publisher.credit(Instant::now()), 3);
        publisher.publish(1, 100, &mut BytesMut::new());
        assert_eq!(publisher.settle(4, false, false, 125, &mut latency), 1);
        assert_eq!((latency.count(), latency.max()), (1, 25));
    }

    #[test]
    fn settling_reuses_the_ring_reserved_for_the_window() {
        let mut confirms = Confirms::new(64);
        let capacity = confirms.sent_at.capacity();
        assert!(capacity >= 64);
        for round in 0..1_000u64 {
            publish(&mut confirms, 64, round);
            assert_eq!(
                confirms.settle(confirms.base + 63, true, round + 1, None),
                64
            );
        }
        assert_eq!(
            confirms.sent_at.capacity(),
            capacity,
            "no growth in steady state"
        );
    }

    #[test]
    fn fixed_rate_grants_credit_as_time_passes() {
        let mut spec = spec(8);
        spec.confirm_window = None;
        spec.rate_per_s = Some(1000.0);
        let mut publisher = Publisher::new(1, &spec, 131_072);
        let t0 = Instant::now();
        publisher.start(t0);
        assert_eq!(publisher.credit(t0), 0);
        assert_eq!(publisher.credit(t0 + Duration::from_millis(10)), 10);
        publisher.publish(10, 0, &mut BytesMut::new());
        assert_eq!(publisher.credit(t0 + Duration::from_millis(10)), 0);
        let next = publisher.next_credit_at().unwrap() - t0;
        assert!(
            next.abs_diff(Duration::from_millis(11)) < Duration::from_micros(1),
            "{next:?}"
        );
    }

    #[test]
    fn limit_ends_publishing() {
        let mut spec = spec(8);
        spec.confirm_window = None;
        spec.limit = Some(5);
        let mut publisher = Publisher::new(1, &spec, 131_072);
        publisher.publish(publisher.credit(Instant::now()), 0, &mut BytesMut::new());
        assert_eq!(publisher.credit(Instant::now()), 0);
    }
}
