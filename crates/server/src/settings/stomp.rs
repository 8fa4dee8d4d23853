//! The `[stomp]` section and `--stomp-listen`: the STOMP gateway's address and named limits
//! (its own file so the settings of each gateway stay apart).

use std::time::Duration;

use anyhow::Result;
use porter_gateway_stomp::StompConfig;
use serde::Deserialize;

use super::{invalid, listener_address, resolve, Sources};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StompSection {
    /// false: no STOMP listener (as `listen = "off"`).
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    pub frame_bytes_max: Option<usize>,
    pub headers_max: Option<usize>,
    pub header_line_bytes_max: Option<usize>,
    pub subscriptions_max: Option<usize>,
    pub transactions_max: Option<usize>,
    pub transaction_frames_max: Option<usize>,
    pub transaction_bytes_max: Option<usize>,
    pub prefetch_default: Option<u16>,
    pub connections_max: Option<usize>,
    pub handshake_timeout_ms: Option<u64>,
    pub heartbeat_min_ms: Option<u64>,
    /// The user a CONNECT without `login` runs as; `""` refuses such clients.
    pub default_user: Option<String>,
}

/// Whether the STOMP listener runs, and its settings.
pub(super) fn load(
    section: &StompSection,
    flag: Option<&str>,
    src: &Sources,
) -> Result<(bool, StompConfig)> {
    let mut stomp = StompConfig::default();
    let (enabled, listen) = listener_address(
        src.pick(
            flag,
            "stomp_listen",
            section.listen.as_deref(),
            "[stomp] listen",
        ),
        section.enabled,
    );
    if let Some((listen, origin)) = listen {
        stomp.listen = resolve(listen).map_err(|problem| invalid(origin, problem))?;
    }
    let s = section;
    let at_least = |v: Option<usize>, min: usize, field: &mut usize| {
        if let Some(v) = v {
            *field = v.max(min);
        }
    };
    at_least(s.frame_bytes_max, 1024, &mut stomp.frame_bytes_max);
    at_least(s.headers_max, 1, &mut stomp.headers_max);
    at_least(
        s.header_line_bytes_max,
        64,
        &mut stomp.header_line_bytes_max,
    );
    at_least(s.subscriptions_max, 1, &mut stomp.subscriptions_max);
    at_least(s.transactions_max, 1, &mut stomp.transactions_max);
    at_least(
        s.transaction_frames_max,
        1,
        &mut stomp.transaction_frames_max,
    );
    at_least(
        s.transaction_bytes_max,
        1024,
        &mut stomp.transaction_bytes_max,
    );
    at_least(s.connections_max, 1, &mut stomp.connections_max);
    if let Some(v) = s.prefetch_default {
        stomp.prefetch_default = v;
    }
    if let Some(ms) = s.handshake_timeout_ms {
        stomp.handshake_timeout = Duration::from_millis(ms.max(1));
    }
    if let Some(ms) = s.heartbeat_min_ms {
        stomp.heartbeat_min = Duration::from_millis(ms.clamp(1, 3_600_000));
    }
    if let Some(user) = &s.default_user {
        stomp.default_user = (!user.is_empty()).then(|| user.clone());
    }
    Ok((enabled, stomp))
}
