//! `basic` content-header properties, and their flag-word encoding.

use crate::table::read_table;
use crate::wire::{self, Reader};
use crate::{Error, FieldTable, ShortStr};
use bytes::{BufMut, Bytes, BytesMut};

/// The 14 properties of class `basic`, each optional (absent = flag bit clear).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicProperties {
    pub content_type: Option<ShortStr>,
    pub content_encoding: Option<ShortStr>,
    pub headers: Option<FieldTable>,
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<ShortStr>,
    pub reply_to: Option<ShortStr>,
    pub expiration: Option<ShortStr>,
    pub message_id: Option<ShortStr>,
    pub timestamp: Option<u64>,
    pub kind: Option<ShortStr>,
    pub user_id: Option<ShortStr>,
    pub app_id: Option<ShortStr>,
    pub cluster_id: Option<ShortStr>,
}

impl BasicProperties {
    /// delivery-mode 2.
    pub fn is_persistent(&self) -> bool {
        self.delivery_mode == Some(2)
    }
}

impl BasicProperties {
    /// Decodes property flags + property list (the content-header payload after class id,
    /// weight and body size).
    ///
    /// Flag words whose bit 0 is set are followed by another flag word; `basic` has only 14
    /// properties, so a continuation word that sets any property bit is refused, as are bytes
    /// left over after the last present property. Bit 1 of the first word is unused and
    /// ignored, as RabbitMQ does.
    #[inline]
    pub fn decode(raw: &Bytes) -> Result<BasicProperties, Error> {
        let mut r = Reader::new(raw);
        let flags = r.u16("property flags")?;
        let mut more = flags & 1 != 0;
        while more {
            let word = r.u16("property flags continuation")?;
            if word & !1 != 0 {
                return Err(Error::Syntax(format!(
                    "property flags continuation word 0x{word:04x} sets properties class basic does not have"
                )));
            }
            more = word & 1 != 0;
        }
        let has = |flag: u16| flags & flag != 0;
        let mut p = BasicProperties::default();
        if has(CONTENT_TYPE) {
            p.content_type = Some(r.shortstr("content-type")?);
        }
        if has(CONTENT_ENCODING) {
            p.content_encoding = Some(r.shortstr("content-encoding")?);
        }
        if has(HEADERS) {
            p.headers = Some(read_table(&mut r, "headers")?);
        }
        if has(DELIVERY_MODE) {
            p.delivery_mode = Some(r.u8("delivery-mode")?);
        }
        if has(PRIORITY) {
            p.priority = Some(r.u8("priority")?);
        }
        if has(CORRELATION_ID) {
            p.correlation_id = Some(r.shortstr("correlation-id")?);
        }
        if has(REPLY_TO) {
            p.reply_to = Some(r.shortstr("reply-to")?);
        }
        if has(EXPIRATION) {
            p.expiration = Some(r.shortstr("expiration")?);
        }
        if has(MESSAGE_ID) {
            p.message_id = Some(r.shortstr("message-id")?);
        }
        if has(TIMESTAMP) {
            p.timestamp = Some(r.u64("timestamp")?);
        }
        if has(TYPE) {
            p.kind = Some(r.shortstr("type")?);
        }
        if has(USER_ID) {
            p.user_id = Some(r.shortstr("user-id")?);
        }
        if has(APP_ID) {
            p.app_id = Some(r.shortstr("app-id")?);
        }
        if has(CLUSTER_ID) {
            p.cluster_id = Some(r.shortstr("cluster-id")?);
        }
        r.finish("basic properties")?;
        Ok(p)
    }

    /// Appends property flags + property list: one flag word (all 14 properties fit in it).
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u16(self.flags());
        let shortstr = |out: &mut BytesMut, v: &Option<ShortStr>| {
            if let Some(s) = v {
                wire::put_shortstr(out, s);
            }
        };
        shortstr(out, &self.content_type);
        shortstr(out, &self.content_encoding);
        if let Some(h) = &self.headers {
            h.encode(out);
        }
        if let Some(v) = self.delivery_mode {
            out.put_u8(v);
        }
        if let Some(v) = self.priority {
            out.put_u8(v);
        }
        shortstr(out, &self.correlation_id);
        shortstr(out, &self.reply_to);
        shortstr(out, &self.expiration);
        shortstr(out, &self.message_id);
        if let Some(v) = self.timestamp {
            out.put_u64(v);
        }
        shortstr(out, &self.kind);
        shortstr(out, &self.user_id);
        shortstr(out, &self.app_id);
        shortstr(out, &self.cluster_id);
    }

    /// The property flag word: bit 15 for content-type down to bit 2 for cluster-id.
    pub fn flags(&self) -> u16 {
        [
            (self.content_type.is_some(), CONTENT_TYPE),
            (self.content_encoding.is_some(), CONTENT_ENCODING),
            (self.headers.is_some(), HEADERS),
            (self.delivery_mode.is_some(), DELIVERY_MODE),
            (self.priority.is_some(), PRIORITY),
            (self.correlation_id.is_some(), CORRELATION_ID),
            (self.reply_to.is_some(), REPLY_TO),
            (self.expiration.is_some(), EXPIRATION),
            (self.message_id.is_some(), MESSAGE_ID),
            (self.timestamp.is_some(), TIMESTAMP),
            (self.kind.is_some(), TYPE),
            (self.user_id.is_some(), USER_ID),
            (self.app_id.is_some(), APP_ID),
            (self.cluster_id.is_some(), CLUSTER_ID),
        ]
        .iter()
        .fold(
            0,
            |acc, &(present, flag)| if present { acc | flag } else { acc },
        )
    }
}

const CONTENT_TYPE: u16 = 1 << 15;
const CONTENT_ENCODING: u16 = 1 << 14;
const HEADERS: u16 = 1 << 13;
const DELIVERY_MODE: u16 = 1 << 12;
const PRIORITY: u16 = 1 << 11;
const CORRELATION_ID: u16 = 1 << 10;
const REPLY_TO: u16 = 1 << 9;
const EXPIRATION: u16 = 1 << 8;
const MESSAGE_ID: u16 = 1 << 7;
const TIMESTAMP: u16 = 1 << 6;
const TYPE: u16 = 1 << 5;
const USER_ID: u16 = 1 << 4;
const APP_ID: u16 = 1 << 3;
const CLUSTER_ID: u16 = 1 << 2;
