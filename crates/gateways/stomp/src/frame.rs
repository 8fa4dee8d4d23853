//! STOMP frames on the wire, hand-written: the one Rust STOMP parser on crates.io
//! (`stomp-parser`) parses a frame already cut out of the stream, has no limits and is kept by
//! one person, so framing, limits and escaping would have been ours anyway.
//!
//! The decoder works on the connection's read buffer and returns a frame only once all its
//! bytes are there. It checks every limit on the bytes it has seen, *before* more arrive: a
//! command or header line longer than `header_line_bytes_max`, more than `headers_max`
//! headers, a frame (or the part of one received so far) over `frame_bytes_max`. A
//! `content-length` is compared with the limit and then only waited for: nothing is allocated
//! from it. Lines end in LF or CR LF; end-of-lines between frames are heart-beats. Header
//! escapes (`\r \n \c \\`) are decoded except in CONNECT / STOMP frames and in STOMP 1.0, and
//! an undefined escape is an error, as the 1.2 spec says. Repeated headers are kept; the first
//! one wins ([`Frame::header`]).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Frame commands, client and server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    Connect,
    Stomp,
    Send,
    Subscribe,
    Unsubscribe,
    Ack,
    Nack,
    Begin,
    Commit,
    Abort,
    Disconnect,
    Connected,
    Message,
    Receipt,
    Error,
}

impl Command {
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Connected,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Connected => "CONNECTED",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    fn parse(line: &[u8]) -> Option<Command> {
        Command::ALL
            .into_iter()
            .find(|c| c.as_str().as_bytes() == line)
    }

    /// CONNECT, STOMP and CONNECTED frames never escape their headers (spec 1.2, "Value
    /// Encoding"), so 1.0 clients can still negotiate.
    fn escapes(self) -> bool {
        !matches!(self, Command::Connect | Command::Stomp | Command::Connected)
    }
}

/// One frame: command, headers in order (repeats kept), body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub command: Command,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Frame {
    pub fn new(command: Command) -> Self {
        Frame {
            command,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header (builder style).
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.push((name.into(), value.into()));
    }

    /// The first header named `name` (the spec: repeated headers, the first wins).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Bytes the frame holds in memory (for budgets and limits).
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>()
            + 16
    }
}

/// The codec's limits, from [`crate::config::StompConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    pub frame_bytes_max: usize,
    pub headers_max: usize,
    pub header_line_bytes_max: usize,
}

/// What is wrong with bytes a client sent. Each is an ERROR frame, then the connection closes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("a header or command line is longer than {0} bytes")]
    LineTooLong(usize),
    #[error("more than {0} headers")]
    TooManyHeaders(usize),
    #[error("frame larger than {0} bytes")]
    FrameTooLarge(usize),
    #[error("invalid content-length {0:?}")]
    BadContentLength(String),
    #[error("the body is not followed by a NUL octet where content-length says it ends")]
    MissingNul,
    #[error("invalid escape sequence in header {0:?}")]
    InvalidEscape(String),
    #[error("header line without a colon: {0:?}")]
    MalformedHeader(String),
    #[error("headers and commands must be UTF-8")]
    NotUtf8,
}

/// What [`decode`] found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// One or more end-of-lines: heart-beats, already consumed.
    Heartbeat,
    Frame(Frame),
}

/// Decodes the next frame (or heart-beats) from `buf`, consuming it. `Ok(None)`: more bytes
/// are needed (and the bytes held are within the limits). `escapes`: whether the negotiated
/// version decodes header escapes (1.1 and 1.2).
pub fn decode(
    buf: &mut BytesMut,
    limits: &FrameLimits,
    escapes: bool,
) -> Result<Option<Decoded>, FrameError> {
    let mut beats = 0;
    while beats < buf.len() {
        match buf[beats] {
            b'\n' => beats += 1,
            b'\r' if buf.get(beats + 1) == Some(&b'\n') => beats += 2,
            b'\r' if beats + 1 == buf.len() => break,
            _ => break,
        }
    }
    if beats > 0 {
        let _ = buf.split_to(beats);
        return Ok(Some(Decoded::Heartbeat));
    }
    let Some(head) = scan_head(buf, limits)? else {
        return Ok(None);
    };
    let command_line = trim_cr(&buf[..head.lines[0].1]);
    let command = Command::parse(command_line).ok_or_else(|| {
        FrameError::UnknownCommand(String::from_utf8_lossy(command_line).into_owned())
    })?;
    let unescape = escapes && command.escapes();
    let mut headers = Vec::with_capacity(head.lines.len() - 1);
    for &(start, end) in &head.lines[1..] {
        let line = trim_cr(&buf[start..end]);
        let colon = memchr::memchr(b':', line).ok_or_else(|| {
            FrameError::MalformedHeader(String::from_utf8_lossy(line).into_owned())
        })?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        headers.push((text(name, unescape)?, text(value, unescape)?));
    }
    let content_length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| FrameError::BadContentLength(v.clone()))
        })
        .transpose()?;
    let body_start = head.end;
    let (body_end, frame_end) = match content_length {
        Some(len) => {
            if body_start.saturating_add(len) >= limits.frame_bytes_max {
                return Err(FrameError::FrameTooLarge(limits.frame_bytes_max));
            }
            if buf.len() <= body_start + len {
                return Ok(None);
            }
            if buf[body_start + len] != 0 {
                return Err(FrameError::MissingNul);
            }
            (body_start + len, body_start + len + 1)
        }
        None => match memchr::memchr(0, &buf[body_start..]) {
            Some(at) => (body_start + at, body_start + at + 1),
            None => {
                if buf.len() >= limits.frame_bytes_max {
                    return Err(FrameError::FrameTooLarge(limits.frame_bytes_max));
                }
                return Ok(None);
            }
        },
    };
    if frame_end > limits.frame_bytes_max {
        return Err(FrameError::FrameTooLarge(limits.frame_bytes_max));
    }
    // The body is copied out: a slice would pin the whole read buffer (other frames, spare
    // room) for as long as a queue holds the message.
    let body = Bytes::copy_from_slice(&buf[body_start..body_end]);
    buf.advance(frame_end);
    Ok(Some(Decoded::Frame(Frame {
        command,
        headers,
        body,
    })))
}

/// Where the command and header lines are: (start, end without the LF) each, and where the
/// body starts.
struct Head {
    lines: Vec<(usize, usize)>,
    end: usize,
}

/// Finds the blank line ending the headers, checking line length, header count and frame
/// size on what has arrived. `None`: not all of the head is here yet.
fn scan_head(buf: &[u8], limits: &FrameLimits) -> Result<Option<Head>, FrameError> {
    let mut lines = Vec::new();
    let mut start: usize = 0;
    loop {
        let window_end = buf.len().min(
            start
                .saturating_add(limits.header_line_bytes_max)
                .saturating_add(2),
        );
        let Some(lf) = memchr::memchr(b'\n', &buf[start..window_end]) else {
            if window_end - start > limits.header_line_bytes_max.saturating_add(1) {
                return Err(FrameError::LineTooLong(limits.header_line_bytes_max));
            }
            if buf.len() >= limits.frame_bytes_max {
                return Err(FrameError::FrameTooLarge(limits.frame_bytes_max));
            }
            return Ok(None);
        };
        let end = start + lf;
        if trim_cr(&buf[start..end]).len() > limits.header_line_bytes_max {
            return Err(FrameError::LineTooLong(limits.header_line_bytes_max));
        }
        if end == start || (end == start + 1 && buf[start] == b'\r') {
            if lines.is_empty() {
                // Only reachable if the caller skipped no heart-beats; treat as one.
                return Err(FrameError::UnknownCommand(String::new()));
            }
            return Ok(Some(Head {
                lines,
                end: end + 1,
            }));
        }
        if lines.len() > limits.headers_max {
            return Err(FrameError::TooManyHeaders(limits.headers_max));
        }
        lines.push((start, end));
        start = end + 1;
        if start >= limits.frame_bytes_max {
            return Err(FrameError::FrameTooLarge(limits.frame_bytes_max));
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn text(raw: &[u8], unescape: bool) -> Result<String, FrameError> {
    let s = std::str::from_utf8(raw).map_err(|_| FrameError::NotUtf8)?;
    if !unescape || !s.contains('\\') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some('c') => out.push(':'),
            Some('\\') => out.push('\\'),
            _ => return Err(FrameError::InvalidEscape(s.to_string())),
        }
    }
    Ok(out)
}

/// Writes a header name or value. Without escaping (STOMP 1.0, CONNECTED) there is no way to
/// carry an end-of-line, and a colon in a name would move the name's end: those become a space
/// (names: `_`), so a header from another protocol cannot break the framing.
fn escape_into(out: &mut BytesMut, s: &str, escape: bool, name: bool) {
    if !escape {
        for b in s.bytes() {
            out.put_u8(match b {
                b'\r' | b'\n' => b' ',
                b':' if name => b'_',
                _ => b,
            });
        }
        return;
    }
    for b in s.bytes() {
        match b {
            b'\r' => out.put_slice(b"\\r"),
            b'\n' => out.put_slice(b"\\n"),
            b':' => out.put_slice(b"\\c"),
            b'\\' => out.put_slice(b"\\\\"),
            _ => out.put_u8(b),
        }
    }
}

/// Encodes `frame` into `out`. `escapes`: the negotiated version escapes headers (1.1, 1.2);
/// CONNECTED never does. A frame with a body gets a `content-length` (its body may hold NUL)
/// unless it has one.
pub fn encode(frame: &Frame, out: &mut BytesMut, escapes: bool) {
    let escape = escapes && frame.command.escapes();
    out.reserve(frame.size() + 32);
    out.put_slice(frame.command.as_str().as_bytes());
    out.put_u8(b'\n');
    for (name, value) in &frame.headers {
        escape_into(out, name, escape, true);
        out.put_u8(b':');
        escape_into(out, value, escape, false);
        out.put_u8(b'\n');
    }
    if !frame.body.is_empty() && frame.header("content-length").is_none() {
        out.put_slice(b"content-length:");
        out.put_slice(frame.body.len().to_string().as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.put_slice(&frame.body);
    out.put_u8(0);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const LIMITS: FrameLimits = FrameLimits {
        frame_bytes_max: 4096,
        headers_max: 8,
        header_line_bytes_max: 256,
    };

    fn one(bytes: &[u8]) -> Result<Option<Decoded>, FrameError> {
        decode(&mut BytesMut::from(bytes), &LIMITS, true)
    }

    fn frame(bytes: &[u8]) -> Frame {
        match one(bytes) {
            Ok(Some(Decoded::Frame(f))) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn crlf_escapes_repeats_and_heartbeats() {
        let f = frame(b"SEND\r\ndestination:/queue/a\\cb\r\nx:1\r\nx:2\r\n\r\nhi\0");
        assert_eq!(f.command, Command::Send);
        assert_eq!(f.header("destination"), Some("/queue/a:b"));
        assert_eq!(f.header("x"), Some("1"), "the first repeated header wins");
        assert_eq!(&f.body[..], b"hi");
        assert_eq!(one(b"\r\n\nSEND"), Ok(Some(Decoded::Heartbeat)));
        // CONNECT headers are not unescaped.
        let c = frame(b"CONNECT\nlogin:a\\cb\n\n\0");
        assert_eq!(c.header("login"), Some("a\\cb"));
    }

    #[test]
    fn without_escaping_headers_cannot_break_the_framing() {
        let mut out = BytesMut::new();
        let frame = Frame::new(Command::Message).with("a:b", "line\nbreak\r");
        encode(&frame, &mut out, false);
        assert_eq!(&out[..], b"MESSAGE\na_b:line break \n\n\0");
        let back = frame_of(&out);
        assert_eq!(back.header("a_b"), Some("line break "));
    }

    fn frame_of(bytes: &[u8]) -> Frame {
        match decode(&mut BytesMut::from(bytes), &LIMITS, false) {
            Ok(Some(Decoded::Frame(f))) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn content_length_bodies_may_hold_nul() {
        let f = frame(b"SEND\ncontent-length:3\n\na\0b\0");
        assert_eq!(&f.body[..], b"a\0b");
        assert_eq!(
            one(b"SEND\ncontent-length:3\n\na\0bX"),
            Err(FrameError::MissingNul)
        );
        assert!(matches!(
            one(b"SEND\ncontent-length:x\n\n\0"),
            Err(FrameError::BadContentLength(_))
        ));
        // Waiting for the body allocates nothing from the length.
        let mut buf = BytesMut::from(&b"SEND\ncontent-length:4000\n\nab"[..]);
        assert_eq!(decode(&mut buf, &LIMITS, true), Ok(None));
        assert!(buf.capacity() < 1000);
        assert!(matches!(
            one(b"SEND\ncontent-length:99999999999\n\n"),
            Err(FrameError::FrameTooLarge(_))
        ));
    }

    #[test]
    fn limits_are_checked_on_partial_frames() {
        let long = [b'a'; 300];
        let mut line = b"SEND\nx:".to_vec();
        line.extend_from_slice(&long);
        assert_eq!(one(&line), Err(FrameError::LineTooLong(256)));
        let many = b"SEND\na:1\na:1\na:1\na:1\na:1\na:1\na:1\na:1\na:1\na:1\n";
        assert_eq!(one(many), Err(FrameError::TooManyHeaders(8)));
        let mut big = b"SEND\n\n".to_vec();
        big.extend_from_slice(&[b'z'; 5000]);
        assert_eq!(one(&big), Err(FrameError::FrameTooLarge(4096)));
        assert!(matches!(
            one(b"FOO\n\n\0"),
            Err(FrameError::UnknownCommand(c)) if c == "FOO"
        ));
        assert!(matches!(
            one(b"SEND\nx:\\t\n\n\0"),
            Err(FrameError::InvalidEscape(_))
        ));
        assert!(matches!(
            one(b"SEND\nnocolon\n\n\0"),
            Err(FrameError::MalformedHeader(_))
        ));
    }

    /// Bytes that matter to the decoder, often, and some that do not.
    const FUZZ_BYTES: &[u8] = b"\n\n\n\r\r::\\\\\0\0SENDCONTEN-LGTH0123456789ab\xff\xc3";

    fn arb_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just(':'),
                Just('\\'),
                Just('\n'),
                Just('\r'),
                proptest::char::range('a', 'z'),
                proptest::char::range('é', 'ü'),
            ],
            0..12,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        /// Any bytes, in any pieces: no panic, and what is kept waiting for more stays within
        /// the frame limit (plus the last piece read).
        #[test]
        fn arbitrary_bytes_are_frames_errors_or_bounded_waits(
            pieces in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(FUZZ_BYTES), 0..700),
                1..12),
            escapes in any::<bool>(),
        ) {
            let mut buf = BytesMut::new();
            for piece in pieces {
                let piece_len = piece.len();
                buf.extend_from_slice(&piece);
                loop {
                    match decode(&mut buf, &LIMITS, escapes) {
                        Ok(Some(_)) => continue,
                        Ok(None) => {
                            prop_assert!(buf.len() < LIMITS.frame_bytes_max + piece_len);
                            break;
                        }
                        Err(_) => return Ok(()),
                    }
                }
            }
        }

        #[test]
        fn round_trip(
            command in proptest::sample::select(&Command::ALL[2..11]),
            headers in proptest::collection::vec((arb_text().prop_filter("name", |n| !n.is_empty() && n != "content-length"), arb_text()), 0..6),
            body in proptest::collection::vec(any::<u8>(), 0..200),
            split in 0usize..400,
        ) {
            let frame = Frame { command, headers, body: Bytes::from(body) };
            let mut wire = BytesMut::new();
            encode(&frame, &mut wire, true);
            let wire = wire.freeze();
            // Fed in two pieces: the first never yields a frame early.
            let split = split.min(wire.len() - 1);
            let mut buf = BytesMut::from(&wire[..split]);
            prop_assert_eq!(decode(&mut buf, &LIMITS, true), Ok(None));
            buf.extend_from_slice(&wire[split..]);
            let decoded = decode(&mut buf, &LIMITS, true).unwrap().unwrap();
            let mut expected = frame.clone();
            if !frame.body.is_empty() {
                expected.headers.push(("content-length".into(), frame.body.len().to_string()));
            }
            prop_assert_eq!(decoded, Decoded::Frame(expected));
            prop_assert!(buf.is_empty());
        }
    }
}
