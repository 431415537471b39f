//! Content assembly: a `basic.publish` method frame, then its content header, then body frames
//! until the header's body size is reached ([`Assembly`]). One body frame's payload is kept
//! as the slice of the read buffer it arrived in (no copy); several are joined. Every way a
//! client can get the sequence wrong is a [`ContentError`] carrying RabbitMQ's reply code and
//! text and saying whether it closes the connection or only the channel.

use crate::{BasicPublish, ContentHeader, ReplyCode, CLASS_BASIC};
use bytes::{Bytes, BytesMut};

/// A publish whose content frames are still arriving.
#[derive(Debug)]
pub struct Assembly {
    publish: BasicPublish,
    header: Option<Box<ContentHeader>>,
    body: Body,
}

/// A publish with all its content.
#[derive(Debug)]
pub struct Content {
    pub publish: BasicPublish,
    pub header: Box<ContentHeader>,
    pub body: Bytes,
}

/// Body frames received so far.
#[derive(Debug)]
enum Body {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::One(b) => b.len(),
            Body::Many(b) => b.len(),
        }
    }

    fn push(&mut self, payload: Bytes) {
        *self = match std::mem::replace(self, Body::Empty) {
            Body::Empty => Body::One(payload),
            Body::One(first) => {
                let mut joined = BytesMut::with_capacity(first.len() + payload.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&payload);
                Body::Many(joined)
            }
            Body::Many(mut joined) => {
                joined.extend_from_slice(&payload);
                Body::Many(joined)
            }
        };
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Body::Empty => Bytes::new(),
            Body::One(b) => b,
            Body::Many(b) => b.freeze(),
        }
    }
}

/// A content frame sequence gone wrong, as RabbitMQ reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("expected method frame, got non method frame instead")]
    NotExpected,
    #[error("expected content header for class {CLASS_BASIC}, got one for class {0} instead")]
    WrongClass(u16),
    #[error("message size {size} is larger than configured max size {max}")]
    TooLarge { size: u64, max: u64 },
    #[error("received {have} body bytes for a message of {expected} bytes")]
    Overrun { have: u64, expected: u64 },
    #[error("expected content header for class {CLASS_BASIC}, got non content header frame instead")]
    HeaderInterrupted,
    #[error("expected content body, got non content body frame instead")]
    BodyInterrupted,
}

impl ContentError {
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            ContentError::TooLarge { .. } => ReplyCode::PreconditionFailed,
            _ => ReplyCode::UnexpectedFrame,
        }
    }

    /// Only an oversized message closes just its channel; the rest close the connection.
    pub fn closes_connection(&self) -> bool {
        !matches!(self, ContentError::TooLarge { .. })
    }

    /// RabbitMQ reports it against `basic.publish` (else against no method).
    pub fn at_publish(&self) -> bool {
        !matches!(
            self,
            ContentError::NotExpected | ContentError::Overrun { .. }
        )
    }
}

impl Assembly {
    pub fn new(publish: BasicPublish) -> Assembly {
        Assembly {
            publish,
            header: None,
            body: Body::Empty,
        }
    }

    /// True once the content header arrived.
    pub fn has_header(&self) -> bool {
        self.header.is_some()
    }

    /// The error for a method frame arriving in the middle of this content.
    pub fn interrupted(&self) -> ContentError {
        if self.header.is_none() {
            ContentError::HeaderInterrupted
        } else {
            ContentError::BodyInterrupted
        }
    }

    /// Takes the content header; `max` is the largest body accepted. With an empty body the
    /// content is complete: the caller then takes it with [`Assembly::finish`].
    pub fn header(&mut self, header: Box<ContentHeader>, max: u64) -> Result<bool, ContentError> {
        if self.header.is_some() {
            return Err(ContentError::NotExpected);
        }
        if header.class_id != CLASS_BASIC {
            return Err(ContentError::WrongClass(header.class_id));
        }
        if header.body_size > max {
            return Err(ContentError::TooLarge {
                size: header.body_size,
                max,
            });
        }
        let complete = header.body_size == 0;
        self.header = Some(header);
        Ok(complete)
    }

    /// Takes a body frame; true when the body is complete.
    pub fn body(&mut self, payload: Bytes) -> Result<bool, ContentError> {
        let Some(header) = &self.header else {
            return Err(ContentError::NotExpected);
        };
        let expected = header.body_size;
        let have = self.body.len() as u64 + payload.len() as u64;
        if have > expected {
            return Err(ContentError::Overrun { have, expected });
        }
        self.body.push(payload);
        Ok(have == expected)
    }

    /// The whole publish, once [`Assembly::header`] or [`Assembly::body`] said it is complete.
    pub fn finish(self) -> Content {
        Content {
            publish: self.publish,
            header: self.header.expect("finish after the header"),
            body: self.body.into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BasicProperties, ShortStr};

    fn publish() -> BasicPublish {
        BasicPublish {
            exchange: ShortStr::from(""),
            routing_key: ShortStr::from("q"),
            mandatory: false,
            immediate: false,
        }
    }

    fn header(class_id: u16, body_size: u64) -> Box<ContentHeader> {
        Box::new(ContentHeader {
            class_id,
            body_size,
            properties: BasicProperties::default(),
            properties_raw: Bytes::new(),
        })
    }

    #[test]
    fn one_body_frame_is_kept_as_the_slice_it_arrived_in() {
        let mut a = Assembly::new(publish());
        assert_eq!(a.header(header(60, 3), 10), Ok(false));
        let payload = Bytes::from_static(b"abc");
        assert_eq!(a.body(payload.clone()), Ok(true));
        let c = a.finish();
        assert_eq!(c.body.as_ptr(), payload.as_ptr());
    }

    #[test]
    fn several_body_frames_are_joined_and_an_empty_body_needs_none() {
        let mut a = Assembly::new(publish());
        a.header(header(60, 5), 10).unwrap();
        assert_eq!(a.body(Bytes::from_static(b"ab")), Ok(false));
        assert_eq!(a.body(Bytes::from_static(b"cde")), Ok(true));
        assert_eq!(&a.finish().body[..], b"abcde");
        let mut empty = Assembly::new(publish());
        assert_eq!(empty.header(header(60, 0), 10), Ok(true));
        assert!(empty.finish().body.is_empty());
    }

    #[test]
    fn frames_out_of_sequence_are_refused_with_rabbitmq_texts() {
        let mut a = Assembly::new(publish());
        assert_eq!(
            a.interrupted().to_string(),
            "expected content header for class 60, got non content header frame instead"
        );
        assert_eq!(a.body(Bytes::from_static(b"x")), Err(ContentError::NotExpected));
        assert_eq!(a.header(header(50, 1), 10), Err(ContentError::WrongClass(50)));
        let e = a.header(header(60, 11), 10).unwrap_err();
        assert_eq!(e.to_string(), "message size 11 is larger than configured max size 10");
        assert!(!e.closes_connection(), "an oversized message closes its channel only");
        a.header(header(60, 2), 10).unwrap();
        assert_eq!(a.header(header(60, 2), 10), Err(ContentError::NotExpected));
        assert_eq!(
            a.body(Bytes::from_static(b"xyz")),
            Err(ContentError::Overrun { have: 3, expected: 2 })
        );
        assert_eq!(
            a.interrupted().to_string(),
            "expected content body, got non content body frame instead"
        );
    }
}
