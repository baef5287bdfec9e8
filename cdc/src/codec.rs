//! Pluggable payload decoding: a closure, or the built-in serde codecs for JSON and MessagePack.
//!
//! Keys, `before` and `after` are bytes in the log; a [`PayloadDecoder`] turns them into the
//! event's `T`. Decoding failures become `DECODE_ERROR` for that event (see
//! [`crate::DecodeErrorPolicy`]).
//!
//! ```
//! use bytes::Bytes;
//! use walden_cdc::codec::{JsonCodec, MessagePackCodec, PayloadDecoder};
//!
//! #[derive(Debug, PartialEq, serde::Deserialize)]
//! struct Order {
//!     total: u32,
//! }
//!
//! let json = JsonCodec::<Order>::new();
//! assert_eq!(json.decode(&Bytes::from_static(br#"{"total":5}"#)), Ok(Order { total: 5 }));
//! assert!(json.decode(&Bytes::from_static(b"{")).unwrap_err().starts_with("invalid JSON payload"));
//!
//! // MessagePack: a one-element map {"total": 7}.
//! let msgpack = MessagePackCodec::<Order>::new();
//! assert_eq!(msgpack.decode(&Bytes::from_static(b"\x81\xa5total\x07")), Ok(Order { total: 7 }));
//!
//! // Any closure from bytes to a value is a decoder too.
//! let length = |b: &Bytes| Ok::<_, String>(b.len());
//! assert_eq!(length.decode(&Bytes::from_static(b"abc")), Ok(3));
//! ```

use std::marker::PhantomData;

use base64::Engine as _;
use bytes::Bytes;
use serde::de::DeserializeOwned;

/// Turns payload bytes into a `T`.
pub trait PayloadDecoder<T>: Send + Sync {
    /// Decodes one payload; the error text ends up in `DECODE_ERROR`.
    fn decode(&self, bytes: &Bytes) -> Result<T, String>;
}

impl<T, F> PayloadDecoder<T> for F
where
    F: Fn(&Bytes) -> Result<T, String> + Send + Sync,
{
    fn decode(&self, bytes: &Bytes) -> Result<T, String> {
        self(bytes)
    }
}

/// Leaves payloads as bytes (zero-copy).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl PayloadDecoder<Bytes> for RawCodec {
    fn decode(&self, bytes: &Bytes) -> Result<Bytes, String> {
        Ok(bytes.clone())
    }
}

/// Decodes payloads as JSON into `T` (use `serde_json::Value` for schemaless).
#[derive(Debug)]
pub struct JsonCodec<T>(PhantomData<fn() -> T>);

impl<T> Default for JsonCodec<T> {
    fn default() -> Self {
        JsonCodec(PhantomData)
    }
}

impl<T> JsonCodec<T> {
    /// A JSON codec.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<T: DeserializeOwned> PayloadDecoder<T> for JsonCodec<T> {
    fn decode(&self, bytes: &Bytes) -> Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON payload: {e}"))
    }
}

/// Decodes payloads as MessagePack into `T`.
#[derive(Debug)]
pub struct MessagePackCodec<T>(PhantomData<fn() -> T>);

impl<T> Default for MessagePackCodec<T> {
    fn default() -> Self {
        MessagePackCodec(PhantomData)
    }
}

impl<T> MessagePackCodec<T> {
    /// A MessagePack codec.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<T: DeserializeOwned> PayloadDecoder<T> for MessagePackCodec<T> {
    fn decode(&self, bytes: &Bytes) -> Result<T, String> {
        rmp_serde::from_slice(bytes).map_err(|e| format!("invalid MessagePack payload: {e}"))
    }
}

/// Best-effort rendering of payload bytes as JSON for envelopes: the JSON value if the bytes are
/// JSON, else a UTF-8 string if they are text, else base64 in `{"$binary": "..."}`.
pub fn bytes_to_json(bytes: &[u8]) -> serde_json::Value {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        return v;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => serde_json::Value::String(s.to_string()),
        Err(_) => serde_json::json!({ "$binary": base64_encode(bytes) }),
    }
}

/// Standard base64 (RFC 4648: `+` and `/`, with `=` padding).
pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, serde::Serialize, PartialEq)]
    struct User {
        id: u32,
        name: String,
    }

    #[test]
    fn json_msgpack_closure() {
        let json = Bytes::from_static(br#"{"id":1,"name":"Alice"}"#);
        assert_eq!(JsonCodec::<User>::new().decode(&json).unwrap(), User { id: 1, name: "Alice".into() });
        assert!(JsonCodec::<User>::new().decode(&Bytes::from_static(b"{")).is_err());
        let mp = Bytes::from(rmp_serde::to_vec(&User { id: 2, name: "Bob".into() }).unwrap());
        assert_eq!(MessagePackCodec::<User>::new().decode(&mp).unwrap().id, 2);
        assert!(MessagePackCodec::<User>::new().decode(&json).is_err());
        let upper = |b: &Bytes| Ok::<_, String>(String::from_utf8_lossy(b).to_uppercase());
        assert_eq!(upper.decode(&Bytes::from_static(b"abc")).unwrap(), "ABC");
    }

    #[test]
    fn json_rendering_and_base64() {
        assert_eq!(bytes_to_json(br#"{"a":1}"#), serde_json::json!({"a": 1}));
        assert_eq!(bytes_to_json(b"user-1"), serde_json::json!("user-1"));
        assert_eq!(bytes_to_json(&[0xff, 0x00]), serde_json::json!({"$binary": "/wA="}));
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b""), "");
    }

    /// The test vectors of RFC 4648, section 10, and bytes that use `+` and `/`.
    #[test]
    fn base64_is_rfc4648_with_padding() {
        for (bytes, expected) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
            (&[0xfb, 0xff, 0xbf], "+/+/"),
            (&[0xde, 0xad, 0xbe, 0xef], "3q2+7w=="),
        ] {
            assert_eq!(base64_encode(bytes), expected, "{bytes:?}");
        }
    }
}
