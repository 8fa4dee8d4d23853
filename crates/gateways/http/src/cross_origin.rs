//! Cross-site request forgery: a page on another site can make a visitor's browser send
//! requests to the broker, and the browser adds what it holds for the broker's origin on its
//! own: a client certificate (HTTPS with mutual TLS) or basic-auth credentials it cached after
//! a login prompt. [`is_cross_origin`] tells such requests apart, as Go's
//! `http.CrossOriginProtection` does: a browser's `Sec-Fetch-Site` says where the request
//! came from, an older browser's `Origin` is compared with `Host`, and a request with neither
//! (curl, `rabbitmqadmin`, every client library) is not a browser's cross-site request.
//!
//! The management API refuses cross-origin requests that change something; a WebSocket
//! upgrade from another site still connects, but without the certificate login (its CONNECT
//! must carry a user name and password). One more case: a browser on the broker's own host
//! connects from loopback, where `guest` and MQTT's `anonymous` are let in, so a page from
//! the internet could use the broker as a local program would. A WebSocket from a loopback
//! client opened by a page that is not itself local ([`is_local_origin`]) is refused.

use axum::http::header::{HOST, ORIGIN};
use axum::http::HeaderMap;

/// Whether a browser sent this request from another origin's page.
pub fn is_cross_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match text("sec-fetch-site") {
        // `none`: the user typed the address or followed a bookmark.
        Some("same-origin" | "none") => return false,
        Some(_) => return true,
        None => {}
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return false;
    };
    let authority = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| authority);
    match (authority, text(HOST.as_str())) {
        (Some(authority), Some(host)) => !authority.eq_ignore_ascii_case(host),
        // `Origin: null` (a sandboxed page, a file) or no Host: not the broker's own page.
        _ => true,
    }
}

/// Whether the page that sent the request is served from this host (`localhost`, a
/// `*.localhost` name, a loopback address), whatever its port: a developer's own app, not a
/// site from the internet. No `Origin` (not a browser): local too.
pub fn is_local_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Some((_, authority)) = origin.to_str().ok().and_then(|o| o.split_once("://")) else {
        return false;
    };
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn browsers_say_where_a_request_comes_from() {
        let host = ("host", "broker.example:15672");
        for same in [
            vec![],
            vec![host],
            vec![host, ("sec-fetch-site", "same-origin")],
            vec![host, ("sec-fetch-site", "none")],
            vec![host, ("origin", "https://broker.example:15672")],
            vec![host, ("origin", "http://BROKER.example:15672")],
        ] {
            assert!(!is_cross_origin(&headers(&same)), "{same:?}");
        }
        for cross in [
            vec![host, ("sec-fetch-site", "cross-site")],
            vec![host, ("sec-fetch-site", "same-site")],
            // Sec-Fetch-Site decides when present, whatever Origin says.
            vec![
                host,
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://broker.example:15672"),
            ],
            vec![host, ("origin", "https://evil.example")],
            vec![host, ("origin", "https://broker.example:15673")],
            vec![host, ("origin", "null")],
            vec![("origin", "https://broker.example:15672")],
        ] {
            assert!(is_cross_origin(&headers(&cross)), "{cross:?}");
        }
    }

    #[test]
    fn local_pages_are_this_host_s() {
        for local in [
            vec![],
            vec![("origin", "http://localhost:3000")],
            vec![("origin", "http://app.localhost")],
            vec![("origin", "http://127.0.0.1:8080")],
            vec![("origin", "http://[::1]:5173")],
        ] {
            assert!(is_local_origin(&headers(&local)), "{local:?}");
        }
        for remote in [
            vec![("origin", "https://evil.example")],
            vec![("origin", "https://localhost.evil.example")],
            vec![("origin", "null")],
        ] {
            assert!(!is_local_origin(&headers(&remote)), "{remote:?}");
        }
    }
}
