//! Server-generated names: `amq.gen-…` queues and `amq.ctag-…` consumer tags, in
//! RabbitMQ's form (a prefix and 22 URL-safe base64 characters of randomness).

use rand::Rng;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn random_suffix() -> String {
    let mut rng = rand::thread_rng();
    (0..22)
        .map(|_| ALPHABET[rng.gen_range(0..64)] as char)
        .collect()
}

pub fn queue_name() -> String {
    format!("amq.gen-{}", random_suffix())
}

pub fn consumer_tag() -> String {
    format!("amq.ctag-{}", random_suffix())
}
