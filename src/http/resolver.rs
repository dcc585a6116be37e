//! Host name resolution for the HTTP agent. ureq resolves the host before
//! every request, even one that then reuses a pooled connection, and with a
//! timeout set (ours always are) it does so on a new thread each time: a
//! thread start and join per request, as long as a whole request over
//! loopback. Here an IP literal is never looked up, and a name's addresses
//! are kept for [`ADDRESS_TTL`], or until a request to that host fails.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a name's addresses are reused: about a minute, as browsers and
/// Android's resolver cache do, short enough to follow a DNS change.
const ADDRESS_TTL: Duration = Duration::from_secs(60);

/// A resolver that keeps what it found; clones share one cache.
#[derive(Clone, Debug, Default)]
pub(crate) struct CachingResolver {
    inner: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    lookup: DefaultResolver,
    cache: Mutex<HashMap<String, (Instant, ResolvedSocketAddrs)>>,
}

impl CachingResolver {
    /// Drops every kept address: after a failed request the next one looks
    /// the name up again, in case the host moved.
    pub(crate) fn forget(&self) {
        self.cache().clear();
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, ResolvedSocketAddrs)>> {
        self.inner.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            // Let ureq say what is wrong with the URL.
            return self.inner.lookup.resolve(uri, config, timeout);
        };
        let Some(host_port) = DefaultResolver::host_and_port(scheme, authority) else {
            return self.inner.lookup.resolve(uri, config, timeout);
        };
        if let Ok(addr) = host_port.parse::<SocketAddr>() {
            let mut found = self.empty();
            found.push(addr);
            return Ok(found);
        }
        if let Some((at, found)) = self.cache().get(&host_port) {
            if at.elapsed() < ADDRESS_TTL {
                return Ok(found.clone());
            }
        }
        // Looked up without the cache's lock held: a slow DNS answer must
        // not hold up requests to other hosts.
        let found = self.inner.lookup.resolve(uri, config, timeout)?;
        self.cache()
            .insert(host_port, (Instant::now(), found.clone()));
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(r: &CachingResolver, url: &str) -> Result<Vec<SocketAddr>, ureq::Error> {
        let uri: Uri = url.parse().unwrap();
        let config = Config::default();
        let timeout = NextTimeout {
            after: Duration::from_secs(5).into(),
            reason: ureq::Timeout::Resolve,
            per_read: None,
            per_write: None,
        };
        r.resolve(&uri, &config, timeout)
            .map(|a| a.iter().copied().collect())
    }

    #[test]
    fn ip_literals_are_not_looked_up_or_kept() {
        let r = CachingResolver::default();
        assert_eq!(
            resolve(&r, "http://127.0.0.1:8080/x").unwrap(),
            vec!["127.0.0.1:8080".parse().unwrap()]
        );
        assert_eq!(
            resolve(&r, "https://[::1]/x").unwrap(),
            vec!["[::1]:443".parse().unwrap()]
        );
        assert!(r.cache().is_empty());
    }

    #[test]
    fn names_are_kept_until_forgotten() {
        let r = CachingResolver::default();
        let first = resolve(&r, "http://localhost:9/x").unwrap();
        assert!(!first.is_empty());
        assert!(first.iter().all(|a| a.port() == 9));
        // A planted entry proves the second answer comes from the cache.
        let planted: SocketAddr = "10.9.8.7:9".parse().unwrap();
        let mut addrs = r.empty();
        addrs.push(planted);
        r.cache()
            .insert("localhost:9".into(), (Instant::now(), addrs.clone()));
        assert_eq!(resolve(&r, "http://localhost:9/y").unwrap(), vec![planted]);
        // Stale entries are looked up again (not checked on a machine up
        // for less than the TTL: there is no such instant).
        if let Some(stale) = Instant::now().checked_sub(ADDRESS_TTL + Duration::from_secs(1)) {
            r.cache().insert("localhost:9".into(), (stale, addrs));
            assert_eq!(resolve(&r, "http://localhost:9/z").unwrap(), first);
        }
        r.forget();
        assert!(r.cache().is_empty());
    }

    #[test]
    fn unknown_names_are_errors_and_not_kept() {
        let r = CachingResolver::default();
        assert!(resolve(&r, "http://no-such-host.invalid/x").is_err());
        assert!(r.cache().is_empty());
    }
}
