//! What a request is limited under: the client's IP address, a header, or anything a closure
//! reads from the request.

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::{HeaderName, Request};

use super::forwarded;

/// The key type of an extractor, apart from the request body type so that the layer can name it.
pub trait KeyType: Send + Sync + 'static {
    /// The key type; the in-memory limiter stores one per active client.
    type Key: Hash + Eq + Clone + Send + Sync + 'static;
}

/// Reads the key a request is rate limited under (client IP, API key, tenant, ...).
///
/// `None` means the request has no key; the layer answers it as configured with
/// [`MissingKey`].
pub trait KeyExtractor<B>: KeyType {
    /// The request's key, or `None` when it has none.
    fn extract(&self, req: &Request<B>) -> Option<Self::Key>;
}

/// How the layer answers a request whose key cannot be read.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum MissingKey<K> {
    /// Refuse it with `400 Bad Request` (the default): a keyless request never slips past the
    /// limit, and a server that lost its connection info (served without
    /// `into_make_service_with_connect_info`) fails loudly instead of turning a per-client limit
    /// into a global one.
    Reject,
    /// Limit every keyless request under this one shared key (e.g. anonymous callers).
    Shared(K),
}

/// Which header carries the client address written by trusted reverse proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyHeader {
    None,
    XForwardedFor,
    Forwarded,
}

/// The client's IP address: the connection's peer, or, behind reverse proxies, the address the
/// outermost trusted proxy appended to `X-Forwarded-For` or `Forwarded`.
///
/// The peer address comes from the request's extensions: axum's `ConnectInfo<SocketAddr>`
/// (feature `axum`; serve with `into_make_service_with_connect_info::<SocketAddr>()`) or a plain
/// `SocketAddr`. With `n` trusted proxies the key is the `n`-th address from the right of the
/// header (the part the client wrote is never read); if the header has fewer entries, or that
/// entry is not an address, the peer address is used, so a client can never choose its key.
///
/// IPv4-mapped IPv6 addresses count as IPv4. IPv6 addresses are grouped by their /64 prefix by
/// default, since one host usually owns a whole /64 and could otherwise rotate addresses to get
/// fresh buckets; change it with [`ipv6_prefix`](Self::ipv6_prefix).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp {
    header: ProxyHeader,
    hops: usize,
    ipv6_prefix: u8,
}

impl ClientIp {
    /// The connection's peer address; forwarding headers are ignored. Right when clients
    /// connect directly.
    pub fn peer() -> Self {
        Self {
            header: ProxyHeader::None,
            hops: 0,
            ipv6_prefix: 64,
        }
    }

    /// Behind `trusted_proxies` reverse proxies that append to `X-Forwarded-For`. Zero means
    /// the same as [`peer`](Self::peer).
    pub fn x_forwarded_for(trusted_proxies: usize) -> Self {
        Self {
            header: ProxyHeader::XForwardedFor,
            hops: trusted_proxies,
            ..Self::peer()
        }
    }

    /// Behind `trusted_proxies` reverse proxies that append to `Forwarded` (RFC 7239, the
    /// `for=` parameter). Zero means the same as [`peer`](Self::peer).
    pub fn forwarded(trusted_proxies: usize) -> Self {
        Self {
            header: ProxyHeader::Forwarded,
            hops: trusted_proxies,
            ..Self::peer()
        }
    }

    /// Groups IPv6 clients by their first `bits` bits (default 64; 128 keys every address
    /// apart; values above 128 count as 128).
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
    }

    /// The client address of `req` as this extractor sees it (after IPv6 grouping).
    pub fn client_ip<B>(&self, req: &Request<B>) -> Option<IpAddr> {
        let forwarded = match self.header {
            ProxyHeader::None => None,
            ProxyHeader::XForwardedFor => forwarded::x_forwarded_for(req.headers(), self.hops),
            ProxyHeader::Forwarded => forwarded::forwarded(req.headers(), self.hops),
        };
        let ip = forwarded.or_else(|| peer_addr(req).map(|a| a.ip()))?;
        Some(self.group(ip))
    }

    fn group(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.ipv6_prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask))
            }
            v4 => v4,
        }
    }
}

impl Default for ClientIp {
    fn default() -> Self {
        Self::peer()
    }
}

impl KeyType for ClientIp {
    type Key = IpAddr;
}

impl<B> KeyExtractor<B> for ClientIp {
    #[inline]
    fn extract(&self, req: &Request<B>) -> Option<IpAddr> {
        self.client_ip(req)
    }
}

/// The connection's peer address, from axum's `ConnectInfo` or a plain `SocketAddr` extension.
#[inline]
pub fn peer_addr<B>(req: &Request<B>) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(info.0);
    }
    req.extensions().get::<SocketAddr>().copied()
}

/// The value of a request header (an API key, a tenant id, ...). A request without it, with a
/// value that is not visible ASCII, empty, or longer than [`max_len`](Self::max_len) has no key.
#[derive(Debug, Clone)]
pub struct HeaderKey {
    name: HeaderName,
    max_len: usize,
}

impl HeaderKey {
    /// Keys by the header `name`; values up to 256 bytes.
    pub fn new(name: HeaderName) -> Self {
        Self { name, max_len: 256 }
    }

    /// The longest value taken as a key (the limiter keeps one per active client, so this
    /// bounds its memory per key).
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }
}

impl KeyType for HeaderKey {
    type Key = String;
}

impl<B> KeyExtractor<B> for HeaderKey {
    fn extract(&self, req: &Request<B>) -> Option<String> {
        let value = req.headers().get(&self.name)?.to_str().ok()?.trim();
        (!value.is_empty() && value.len() <= self.max_len).then(|| value.to_owned())
    }
}

/// A key computed by a closure over the request; see [`key_fn`].
pub struct FnKey<F, K> {
    f: F,
    _key: PhantomData<fn() -> K>,
}

impl<F: Clone, K> Clone for FnKey<F, K> {
    fn clone(&self) -> Self {
        Self {
            f: self.f.clone(),
            _key: PhantomData,
        }
    }
}

impl<F, K> fmt::Debug for FnKey<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnKey")
    }
}

/// Keys requests by `f(&request)`; `None` means the request has no key. Annotate the closure's
/// argument (`|req: &Request<Body>| ...`) so the body type is known.
pub fn key_fn<B, K, F>(f: F) -> FnKey<F, K>
where
    F: Fn(&Request<B>) -> Option<K> + Send + Sync + 'static,
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    FnKey {
        f,
        _key: PhantomData,
    }
}

impl<F, K> KeyType for FnKey<F, K>
where
    F: Send + Sync + 'static,
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    type Key = K;
}

impl<B, F, K> KeyExtractor<B> for FnKey<F, K>
where
    F: Fn(&Request<B>) -> Option<K> + Send + Sync + 'static,
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    #[inline]
    fn extract(&self, req: &Request<B>) -> Option<K> {
        (self.f)(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(peer: &str, xff: Option<&str>) -> Request<()> {
        let mut b = Request::builder();
        if let Some(x) = xff {
            b = b.header("x-forwarded-for", x);
        }
        let mut r = b.body(()).unwrap();
        r.extensions_mut()
            .insert(peer.parse::<SocketAddr>().unwrap());
        r
    }

    #[test]
    fn peer_ignores_forwarding_headers() {
        let r = req("10.0.0.1:5000", Some("6.6.6.6"));
        assert_eq!(
            ClientIp::peer().client_ip(&r),
            Some("10.0.0.1".parse().unwrap())
        );
        let zero = ClientIp::x_forwarded_for(0).client_ip(&r);
        assert_eq!(zero, Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn trusted_hop_falls_back_to_peer_on_garbage() {
        let ext = ClientIp::x_forwarded_for(2);
        let short = req("10.0.0.1:5000", Some("6.6.6.6"));
        assert_eq!(ext.client_ip(&short), Some("10.0.0.1".parse().unwrap()));
        let garbage = req("10.0.0.1:5000", Some("x, y, z"));
        assert_eq!(ext.client_ip(&garbage), Some("10.0.0.1".parse().unwrap()));
        let ok = req("10.0.0.1:5000", Some("6.6.6.6, 1.2.3.4, 10.0.0.2"));
        assert_eq!(ext.client_ip(&ok), Some("1.2.3.4".parse().unwrap()));
    }

    #[test]
    fn ipv6_is_grouped_and_mapped_v4_is_v4() {
        let r = req("[2001:db8:1:2:aaaa::1]:80", None);
        let ip = ClientIp::peer().client_ip(&r).unwrap();
        assert_eq!(ip, "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let all = ClientIp::peer().ipv6_prefix(200).client_ip(&r).unwrap();
        assert_eq!(all, "2001:db8:1:2:aaaa::1".parse::<IpAddr>().unwrap());
        let none = ClientIp::peer().ipv6_prefix(0).client_ip(&r).unwrap();
        assert_eq!(none, "::".parse::<IpAddr>().unwrap());
        let mapped = req("[::ffff:1.2.3.4]:80", None);
        let v4 = ClientIp::peer().client_ip(&mapped).unwrap();
        assert_eq!(v4, "1.2.3.4".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn no_connection_info_is_no_key() {
        let r = Request::new(());
        assert_eq!(ClientIp::peer().client_ip(&r), None);
    }

    #[test]
    fn header_key_bounds() {
        let k = HeaderKey::new(HeaderName::from_static("x-api-key")).max_len(8);
        let with = |v: &str| Request::builder().header("x-api-key", v).body(()).unwrap();
        assert_eq!(k.extract(&with("abc")), Some("abc".to_owned()));
        assert_eq!(k.extract(&with("123456789")), None);
        assert_eq!(k.extract(&with("  ")), None);
        assert_eq!(KeyExtractor::<()>::extract(&k, &Request::new(())), None);
    }
}
