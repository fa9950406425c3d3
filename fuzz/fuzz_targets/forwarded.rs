//! Fuzz the forwarding headers (Forwarded, X-Forwarded-For/-Proto) and the
//! walk that picks the client: never a panic; the client is the peer or an
//! address the header names; an untrusted peer's headers change nothing.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use spyglass::forwarded::{Node, ProxyHeaders, Trust, forwarded, resolve, x_forwarded_for};
use spyglass::http::{HeaderMap, HeaderValue};
use spyglass::{ConnInfo, Peer};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for name in ["forwarded", "x-forwarded-for", "x-forwarded-proto"] {
        headers.append(name, value.clone());
    }
    let conn =
        |peer: &str| ConnInfo::new(Peer::Tcp(peer.parse().unwrap()), Some(80), Arc::from("web"));
    for kind in [ProxyHeaders::XForwarded, ProxyHeaders::Forwarded] {
        let trust = Trust {
            proxies: vec!["10.0.0.0/8".parse().unwrap(), "unix".parse().unwrap()],
            headers: kind,
        };
        let hops = match kind {
            ProxyHeaders::XForwarded => x_forwarded_for(std::iter::once(data)),
            ProxyHeaders::Forwarded => forwarded(std::iter::once(data)),
        };
        let proxy = conn("10.0.0.1:1");
        let info = resolve(&proxy, &headers, &trust);
        assert!(
            info.peer == proxy.peer || hops.iter().any(|h| h.node == Node::Addr(info.peer.clone()))
        );
        assert_eq!(info.socket_peer, proxy.socket_peer);
        let stranger = conn("192.0.2.7:1");
        let info = resolve(&stranger, &headers, &trust);
        assert_eq!(info.peer, stranger.peer);
        assert!(!info.https);
    }
});
