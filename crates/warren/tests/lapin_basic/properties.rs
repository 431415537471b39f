//! Message properties: every basic property and a headers table of many value types come back
//! exactly as published, through both `basic.get` and a consumer.

use lapin::options::{BasicConsumeOptions, BasicGetOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable};
use lapin::BasicProperties;

use crate::common::{
    amqp_error, confirm_mode, declare_queue, next_delivery, open, publish_confirmed, run, unique,
};

fn rich_headers() -> FieldTable {
    let mut nested = FieldTable::default();
    nested.insert("inner".into(), AMQPValue::LongString("deep".into()));
    nested.insert("n".into(), AMQPValue::LongInt(-7));
    let array = FieldArray::from(vec![
        AMQPValue::LongString("one".into()),
        AMQPValue::LongInt(2),
        AMQPValue::Boolean(false),
    ]);

    let mut headers = FieldTable::default();
    headers.insert("string".into(), AMQPValue::LongString("héllo wörld".into()));
    headers.insert("bool".into(), AMQPValue::Boolean(true));
    headers.insert("i8".into(), AMQPValue::ShortShortInt(-8));
    headers.insert("i16".into(), AMQPValue::ShortInt(-1600));
    headers.insert("i32".into(), AMQPValue::LongInt(-320_000));
    headers.insert("u32".into(), AMQPValue::LongUInt(3_200_000_000));
    headers.insert("i64".into(), AMQPValue::LongLongInt(-6_400_000_000_000));
    headers.insert("f32".into(), AMQPValue::Float(1.5));
    headers.insert("f64".into(), AMQPValue::Double(-2.25));
    headers.insert(
        "decimal".into(),
        AMQPValue::DecimalValue(DecimalValue {
            scale: 2,
            value: 12345,
        }),
    );
    headers.insert("timestamp".into(), AMQPValue::Timestamp(1_700_000_000));
    headers.insert("table".into(), AMQPValue::FieldTable(nested));
    headers.insert("array".into(), AMQPValue::FieldArray(array));
    headers.insert(
        "bytes".into(),
        AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 254, 255])),
    );
    headers.insert("void".into(), AMQPValue::Void);
    headers
}

fn every_property() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(rich_headers())
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-42".into())
        .with_reply_to("amq.gen-reply-here".into())
        .with_expiration("60000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_700_000_123)
        .with_type("order.created".into())
        .with_user_id("guest".into())
        .with_app_id("warren-tests".into())
}

#[test]
fn every_basic_property_and_header_type_round_trips_through_get_and_consume() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let queue = declare_queue(&channel, "properties").await;
        let properties = every_property();
        publish_confirmed(&channel, "", &queue, b"{}", properties.clone()).await;
        publish_confirmed(&channel, "", &queue, b"{}", properties.clone()).await;

        let got = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(got.delivery.properties, properties);

        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let delivered = next_delivery(&mut consumer).await;
        assert_eq!(delivered.properties, properties);
        assert_eq!(delivered.data, b"{}");
    });
}

#[test]
fn message_without_properties_arrives_without_properties() {
    run(|url| async move {
        let (_conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let queue = declare_queue(&channel, "no-properties").await;
        publish_confirmed(&channel, "", &queue, b"", BasicProperties::default()).await;
        let got = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(got.delivery.properties, BasicProperties::default());
        assert!(got.delivery.data.is_empty(), "an empty body stays empty");
    });
}

#[test]
fn user_id_other_than_the_authenticated_user_is_refused_with_406() {
    run(|url| async move {
        let (conn, channel) = open(&url).await;
        confirm_mode(&channel).await;
        let queue = unique("user-id");
        let outcome = channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                b"forged",
                BasicProperties::default().with_user_id("mallory".into()),
            )
            .await;
        let error = match outcome {
            Ok(confirm) => confirm
                .await
                .expect_err("a forged user_id cannot be confirmed"),
            Err(error) => error,
        };
        assert_eq!(
            amqp_error(&error),
            (
                406,
                "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'"
                    .to_string()
            )
        );
        assert!(conn.status().connected());
    });
}
