//! Server-generated names (consumer tags, direct reply-to names): 22 URL-safe random
//! characters, as RabbitMQ generates them. A leaf, so the reply-to registry and the consume
//! command can both use it without importing each other.

/// 22 URL-safe random characters (132 bits).
pub fn generated_suffix() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits: u128 = rand_u128();
    (0..22)
        .map(|_| {
            let c = ALPHABET[(bits & 63) as usize] as char;
            bits >>= 6;
            c
        })
        .collect()
}

/// A consumer tag for `basic.consume` with an empty one.
pub fn consumer_tag() -> String {
    format!("amq.ctag-{}", generated_suffix())
}

fn rand_u128() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let a = RandomState::new().build_hasher().finish();
    let mut h = RandomState::new().build_hasher();
    h.write_u64(a);
    (u128::from(a) << 64) | u128::from(h.finish())
}
