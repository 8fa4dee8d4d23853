//! `[http]` and `--http-listen`: the HTTP listener (WebSocket endpoints, the chat page, later
//! the management API). Kept apart from settings.rs, which holds the message protocols.

use std::time::Duration;

use anyhow::Result;
use porter_gateway_http::HttpConfig;
use serde::Deserialize;

use super::{invalid, listener_address, resolve, Sources};
use crate::cli::ServeArgs;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// false: no HTTP listener (as `listen = "off"`).
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    /// Open plain-HTTP connections.
    pub connections_max: Option<usize>,
    /// Largest request head, bytes (at least 8192).
    pub header_bytes_max: Option<usize>,
    /// Largest request body, bytes.
    pub body_bytes_max: Option<usize>,
    /// Seconds a connection may wait for a complete request head.
    pub idle_s: Option<u64>,
    /// Open WebSocket connections per endpoint (`/mqtt`, `/ws`).
    pub websocket_connections_max: Option<usize>,
    /// Largest WebSocket frame accepted (and sent), bytes.
    pub websocket_frame_bytes_max: Option<usize>,
    /// Largest WebSocket message (fragments joined), bytes.
    pub websocket_message_bytes_max: Option<usize>,
    /// Kafka topic the chat page's rooms are bridged into for their history; "off": none.
    pub chat_history_topic: Option<String>,
}

/// Whether the HTTP listener runs, and its settings.
pub(super) fn merge(
    args: &ServeArgs,
    src: &Sources,
    section: &HttpSection,
) -> Result<(bool, HttpConfig)> {
    let mut http = HttpConfig::default();
    let (enabled, listen) = listener_address(
        src.pick(
            args.http_listen.as_deref(),
            "http_listen",
            section.listen.as_deref(),
            "[http] listen",
        ),
        section.enabled,
    );
    if let Some((listen, origin)) = listen {
        http.listen = resolve(listen).map_err(|problem| invalid(origin, problem))?;
    }
    if let Some(v) = section.connections_max {
        http.connections_max = v.max(1);
    }
    if let Some(v) = section.header_bytes_max {
        http.header_bytes_max = v;
    }
    if let Some(v) = section.body_bytes_max {
        http.body_bytes_max = v;
    }
    if let Some(v) = section.idle_s {
        http.idle = Duration::from_secs(v.max(1));
    }
    let ws = &mut http.websocket;
    if let Some(v) = section.websocket_connections_max {
        ws.connections_max = v.max(1);
    }
    if let Some(v) = section.websocket_frame_bytes_max {
        ws.frame_bytes_max = v.max(1);
    }
    if let Some(v) = section.websocket_message_bytes_max {
        ws.message_bytes_max = v.max(1);
    }
    if let Some(topic) = section.chat_history_topic.as_deref() {
        http.chat_history_topic = match topic.trim() {
            "" | "off" => None,
            topic => Some(topic.to_string()),
        };
    }
    if enabled {
        http.validate()
            .map_err(|e| anyhow::anyhow!("[http]: {e}"))?;
    }
    Ok((enabled, http))
}

#[cfg(test)]
mod tests {
    use super::super::tests::merge;
    use super::super::FileConfig;
    use crate::cli::ServeArgs;

    #[test]
    fn http_defaults_flag_off_and_file_section() {
        let s = merge(&ServeArgs::default(), FileConfig::default()).unwrap();
        assert!(s.http_enabled);
        assert_eq!(s.http.listen.to_string(), "0.0.0.0:15672");
        let off = ServeArgs {
            http_listen: Some("off".into()),
            ..ServeArgs::default()
        };
        assert!(!merge(&off, FileConfig::default()).unwrap().http_enabled);
        let file: FileConfig = toml::from_str(
            "[http]\nlisten = \"127.0.0.1:0\"\nwebsocket_frame_bytes_max = 4096\n\
             websocket_message_bytes_max = 8192\n",
        )
        .unwrap();
        let s = merge(&ServeArgs::default(), file).unwrap();
        assert_eq!(s.http.listen.to_string(), "127.0.0.1:0");
        assert_eq!(s.http.websocket.frame_bytes_max, 4096);
        assert_eq!(s.http.chat_history_topic.as_deref(), Some("porter.chat"));
        for (value, topic) in [("off", None), ("rooms", Some("rooms"))] {
            let file: FileConfig =
                toml::from_str(&format!("[http]\nchat_history_topic = \"{value}\"\n")).unwrap();
            let s = merge(&ServeArgs::default(), file).unwrap();
            assert_eq!(s.http.chat_history_topic.as_deref(), topic);
        }
        let bad: FileConfig = toml::from_str("[http]\nheader_bytes_max = 10\n").unwrap();
        assert!(merge(&ServeArgs::default(), bad).is_err());
    }
}
