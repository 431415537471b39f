//! One consuming channel: reassembles deliveries (method, header, body frames), reads the
//! send timestamp from the body, and acknowledges as its ack mode says.

use bytes::BytesMut;
use std::fmt;
use std::str::FromStr;
use warren_amqp::{encode_method, BasicAck, Method};

/// How a consumer acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// `no-ack` consume: the broker forgets a message once sent.
    Auto,
    /// One `basic.ack` per message.
    Each,
    /// One `basic.ack` with `multiple` set every N messages.
    Multiple(u16),
}

impl FromStr for AckMode {
    type Err = String;

    /// `auto`, `manual` (one ack per message) or `multiple:N`.
    fn from_str(s: &str) -> Result<AckMode, String> {
        match s {
            "auto" => Ok(AckMode::Auto),
            "manual" => Ok(AckMode::Each),
            _ => match s.strip_prefix("multiple:").map(str::parse::<u16>) {
                Some(Ok(n)) if n > 0 => Ok(AckMode::Multiple(n)),
                _ => Err(format!(
                    "`{s}`: expected auto, manual or multiple:N (N from 1 to 65535)"
                )),
            },
        }
    }
}

impl fmt::Display for AckMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckMode::Auto => f.write_str("auto"),
            AckMode::Each => f.write_str("manual"),
            AckMode::Multiple(n) => write!(f, "multiple:{n}"),
        }
    }
}

/// Where the consumer is within the frames of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Deliver,
    Header {
        tag: u64,
    },
    Body {
        tag: u64,
        remaining: u64,
        stamp: Option<u64>,
    },
}

/// A delivery whose last frame has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The producer's send timestamp, if the body was long enough to carry one.
    pub stamp_nanos: Option<u64>,
}

pub struct Consumer {
    pub channel: u16,
    ack: AckMode,
    expect: Expect,
    unacked: u16,
}

impl Consumer {
    /// `prefetch` caps `multiple:N`: acking every N > prefetch messages would stall, since the
    /// broker stops at prefetch unacked messages.
    pub fn new(channel: u16, ack: AckMode, prefetch: u16) -> Consumer {
        let ack = match ack {
            AckMode::Multiple(n) if prefetch > 0 => AckMode::Multiple(n.min(prefetch)),
            other => other,
        };
        Consumer {
            channel,
            ack,
            expect: Expect::Deliver,
            unacked: 0,
        }
    }

    pub fn on_deliver(&mut self, tag: u64) -> anyhow::Result<()> {
        if self.expect != Expect::Deliver {
            anyhow::bail!(
                "channel {}: basic.deliver in the middle of a previous delivery",
                self.channel
            );
        }
        self.expect = Expect::Header { tag };
        Ok(())
    }

    pub fn on_header(
        &mut self,
        body_size: u64,
        out: &mut BytesMut,
    ) -> anyhow::Result<Option<Delivered>> {
        let Expect::Header { tag } = self.expect else {
            anyhow::bail!(
                "channel {}: content header without basic.deliver",
                self.channel
            );
        };
        self.expect = Expect::Body {
            tag,
            remaining: body_size,
            stamp: None,
        };
        Ok(self.finish_if_complete(out))
    }

    pub fn on_body(
        &mut self,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> anyhow::Result<Option<Delivered>> {
        let Expect::Body {
            tag,
            remaining,
            stamp,
        } = self.expect
        else {
            anyhow::bail!(
                "channel {}: body frame without a content header",
                self.channel
            );
        };
        let stamp = stamp.or_else(|| payload.first_chunk::<8>().map(|b| u64::from_be_bytes(*b)));
        let remaining = remaining.saturating_sub(payload.len() as u64);
        self.expect = Expect::Body {
            tag,
            remaining,
            stamp,
        };
        Ok(self.finish_if_complete(out))
    }

    fn finish_if_complete(&mut self, out: &mut BytesMut) -> Option<Delivered> {
        let Expect::Body {
            tag,
            remaining: 0,
            stamp,
        } = self.expect
        else {
            return None;
        };
        self.expect = Expect::Deliver;
        match self.ack {
            AckMode::Auto => {}
            AckMode::Each => ack(self.channel, tag, false, out),
            AckMode::Multiple(every) => {
                self.unacked += 1;
                if self.unacked >= every {
                    ack(self.channel, tag, true, out);
                    self.unacked = 0;
                }
            }
        }
        Some(Delivered { stamp_nanos: stamp })
    }
}

fn ack(channel: u16, delivery_tag: u64, multiple: bool, out: &mut BytesMut) {
    encode_method(
        channel,
        &Method::BasicAck(BasicAck {
            delivery_tag,
            multiple,
        }),
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_amqp::{Frame, FrameDecoder};

    fn acks(out: &mut BytesMut) -> Vec<(u64, bool)> {
        let mut decoder = FrameDecoder::new(0);
        let mut acks = Vec::new();
        while let Some(Frame::Method {
            method: Method::BasicAck(a),
            ..
        }) = decoder.decode(out).unwrap()
        {
            acks.push((a.delivery_tag, a.multiple));
        }
        acks
    }

    fn deliver(consumer: &mut Consumer, tag: u64, body: &[u8], out: &mut BytesMut) -> Delivered {
        consumer.on_deliver(tag).unwrap();
        assert_eq!(consumer.on_header(body.len() as u64, out).unwrap(), None);
        consumer
            .on_body(body, out)
            .unwrap()
            .expect("the whole body arrived")
    }

    #[test]
    fn stamp_is_read_from_the_first_body_frame() {
        let mut consumer = Consumer::new(1, AckMode::Auto, 0);
        let mut out = BytesMut::new();
        consumer.on_deliver(1).unwrap();
        consumer.on_header(20, &mut out).unwrap();
        let mut first = 77u64.to_be_bytes().to_vec();
        first.extend_from_slice(&[0; 2]);
        assert_eq!(consumer.on_body(&first, &mut out).unwrap(), None);
        let done = consumer.on_body(&[9; 10], &mut out).unwrap();
        assert_eq!(
            done,
            Some(Delivered {
                stamp_nanos: Some(77)
            })
        );
        assert!(out.is_empty(), "auto-ack sends no ack");
    }

    #[test]
    fn empty_and_short_bodies_complete_without_a_stamp() {
        let mut consumer = Consumer::new(1, AckMode::Each, 10);
        let mut out = BytesMut::new();
        consumer.on_deliver(1).unwrap();
        assert_eq!(
            consumer.on_header(0, &mut out).unwrap(),
            Some(Delivered { stamp_nanos: None })
        );
        assert_eq!(
            deliver(&mut consumer, 2, b"abc", &mut out).stamp_nanos,
            None
        );
        assert_eq!(acks(&mut out), vec![(1, false), (2, false)]);
    }

    #[test]
    fn multiple_mode_acks_every_n_with_the_last_tag() {
        let mut consumer = Consumer::new(1, AckMode::Multiple(3), 100);
        let mut out = BytesMut::new();
        for tag in 1..=7 {
            deliver(&mut consumer, tag, &[0; 8], &mut out);
        }
        assert_eq!(acks(&mut out), vec![(3, true), (6, true)]);
    }

    #[test]
    fn multiple_mode_never_waits_for_more_than_prefetch() {
        let mut consumer = Consumer::new(1, AckMode::Multiple(500), 2);
        let mut out = BytesMut::new();
        deliver(&mut consumer, 1, &[0; 8], &mut out);
        deliver(&mut consumer, 2, &[0; 8], &mut out);
        assert_eq!(acks(&mut out), vec![(2, true)]);
    }

    #[test]
    fn frames_out_of_order_are_errors() {
        let mut consumer = Consumer::new(1, AckMode::Each, 10);
        let mut out = BytesMut::new();
        assert!(consumer.on_header(3, &mut out).is_err());
        assert!(consumer.on_body(b"abc", &mut out).is_err());
        consumer.on_deliver(1).unwrap();
        assert!(consumer.on_deliver(2).is_err());
    }

    #[test]
    fn ack_modes_parse_from_the_command_line() {
        assert_eq!("auto".parse(), Ok(AckMode::Auto));
        assert_eq!("manual".parse(), Ok(AckMode::Each));
        assert_eq!("multiple:50".parse(), Ok(AckMode::Multiple(50)));
        assert!("multiple:0".parse::<AckMode>().is_err());
        assert!("sometimes".parse::<AckMode>().is_err());
    }
}
