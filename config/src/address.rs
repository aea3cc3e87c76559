//! Network addresses in config: `host:port` and controller voters `id@host:port`.
//!
//! The host may be an IPv4 address, an IPv6 address in brackets, or a DNS name (a StatefulSet
//! pod advertises `spate-0.spate.default.svc.cluster.local:9092`). Names are not resolved here:
//! that needs the network, and a pod's own name may not resolve until it is ready.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// The longest DNS name (RFC 1035), in bytes.
pub const DNS_NAME_LENGTH_MAX_BYTES: usize = 253;
/// The longest DNS label (RFC 1035), in bytes.
pub const DNS_LABEL_LENGTH_MAX_BYTES: usize = 63;

/// A host and port. Port 0 means "any free port" when binding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// An IP address (IPv6 without brackets) or a DNS name.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

/// Why an address does not parse. The `Display` text completes "`<key>`: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// No `:port` part.
    #[error("\"{0}\" is not HOST:PORT (the port is missing)")]
    MissingPort(String),
    /// The port is not a number from 0 to 65535.
    #[error("\"{text}\" is not HOST:PORT (\"{port}\" is not a port number from 0 to 65535)")]
    BadPort {
        /// The whole address.
        text: String,
        /// The port part.
        port: String,
    },
    /// The host part is empty.
    #[error("\"{0}\" is not HOST:PORT (the host is empty)")]
    EmptyHost(String),
    /// The host is neither an IP address nor a valid DNS name.
    #[error("\"{text}\" is not HOST:PORT (\"{host}\" is neither an IP address nor a DNS name)")]
    BadHost {
        /// The whole address.
        text: String,
        /// The host part.
        host: String,
    },
    /// A voter without `id@`.
    #[error("\"{0}\" is not ID@HOST:PORT (the node id is missing)")]
    MissingVoterId(String),
    /// A voter id that is not a non-negative integer.
    #[error(
        "\"{text}\" is not ID@HOST:PORT (\"{id}\" is not a node id: an integer from 0 to 2147483647)"
    )]
    BadVoterId {
        /// The whole voter entry.
        text: String,
        /// The id part.
        id: String,
    },
}

fn is_dns_name(host: &str) -> bool {
    host.len() <= DNS_NAME_LENGTH_MAX_BYTES
        && host.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= DNS_LABEL_LENGTH_MAX_BYTES
                && !label.starts_with('-')
                && !label.ends_with('-')
                // Underscores are not valid host names, but some resolvers and test setups use them.
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl HostPort {
    /// Parses `host:port`, `[ipv6]:port`, or `name:port`.
    pub fn parse(text: &str) -> Result<HostPort, AddressError> {
        let trimmed = text.trim();
        let (host, port) = if let Some(rest) = trimmed.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| AddressError::BadHost {
                text: text.to_string(),
                host: trimmed.to_string(),
            })?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| AddressError::MissingPort(text.to_string()))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(AddressError::BadHost {
                    text: text.to_string(),
                    host: host.to_string(),
                });
            }
            (host, port)
        } else {
            let (host, port) = trimmed
                .rsplit_once(':')
                .ok_or_else(|| AddressError::MissingPort(text.to_string()))?;
            if host.contains(':') {
                // An IPv6 address needs brackets, or its last group would read as the port.
                return Err(AddressError::BadHost {
                    text: text.to_string(),
                    host: host.to_string(),
                });
            }
            if host.is_empty() {
                return Err(AddressError::EmptyHost(text.to_string()));
            }
            if host.parse::<IpAddr>().is_err() && !is_dns_name(host) {
                return Err(AddressError::BadHost {
                    text: text.to_string(),
                    host: host.to_string(),
                });
            }
            (host, port)
        };
        let port_number = port
            .parse::<u16>()
            .ok()
            .filter(|_| !port.starts_with('+'))
            .ok_or_else(|| AddressError::BadPort {
                text: text.to_string(),
                port: port.to_string(),
            })?;
        Ok(HostPort {
            host: host.to_string(),
            port: port_number,
        })
    }

    /// Whether the host is a wildcard (`0.0.0.0` or `::`) that binds every interface but that
    /// nobody can connect to.
    pub fn is_wildcard(&self) -> bool {
        self.host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
    }

    /// The socket address, when the host is an IP address.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }

    /// This address with port 0 replaced by the port actually bound.
    pub fn with_bound_port(&self, bound: SocketAddr) -> HostPort {
        HostPort {
            host: self.host.clone(),
            port: if self.port == 0 {
                bound.port()
            } else {
                self.port
            },
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostPort {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        HostPort::parse(text)
    }
}

impl From<SocketAddr> for HostPort {
    fn from(addr: SocketAddr) -> Self {
        HostPort {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

/// A controller quorum voter: its node id and quorum address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Voter {
    /// The voter's node id.
    pub id: i32,
    /// Where its controller listener is reached.
    pub address: HostPort,
}

impl Voter {
    /// Parses `id@host:port`.
    pub fn parse(text: &str) -> Result<Voter, AddressError> {
        let trimmed = text.trim();
        let (id, address) = trimmed
            .split_once('@')
            .ok_or_else(|| AddressError::MissingVoterId(text.to_string()))?;
        let id_number = id
            .parse::<i32>()
            .ok()
            .filter(|n| *n >= 0 && !id.starts_with('+'))
            .ok_or_else(|| AddressError::BadVoterId {
                text: text.to_string(),
                id: id.to_string(),
            })?;
        Ok(Voter {
            id: id_number,
            address: HostPort::parse(address)?,
        })
    }

    /// Parses a comma-separated voter list; empty entries are skipped.
    pub fn parse_list(text: &str) -> Result<Vec<Voter>, AddressError> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(Voter::parse)
            .collect()
    }
}

impl fmt::Display for Voter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_names_and_brackets() {
        assert_eq!(
            HostPort::parse("127.0.0.1:9092"),
            Ok(HostPort {
                host: "127.0.0.1".into(),
                port: 9092
            })
        );
        assert_eq!(
            HostPort::parse("spate-0.spate.default.svc.cluster.local:9092"),
            Ok(HostPort {
                host: "spate-0.spate.default.svc.cluster.local".into(),
                port: 9092
            })
        );
        assert_eq!(
            HostPort::parse("[::1]:0"),
            Ok(HostPort {
                host: "::1".into(),
                port: 0
            })
        );
        assert_eq!(
            HostPort::parse("[::1]:9092").map(|a| a.to_string()),
            Ok("[::1]:9092".into())
        );
        assert_eq!(
            HostPort::parse("localhost:0").map(|a| a.port),
            Ok(0),
            "port 0 binds an ephemeral port"
        );
        assert!(
            HostPort::parse("0.0.0.0:9092")
                .expect("valid")
                .is_wildcard()
        );
        assert!(HostPort::parse("[::]:9092").expect("valid").is_wildcard());
    }

    #[test]
    fn rejects_with_a_reason() {
        assert_eq!(
            HostPort::parse("localhost").map_err(|e| e.to_string()),
            Err("\"localhost\" is not HOST:PORT (the port is missing)".into())
        );
        assert_eq!(
            HostPort::parse("localhost:99999").map_err(|e| e.to_string()),
            Err("\"localhost:99999\" is not HOST:PORT (\"99999\" is not a port number from 0 to 65535)".into())
        );
        assert_eq!(
            HostPort::parse(":9092").map_err(|e| e.to_string()),
            Err("\":9092\" is not HOST:PORT (the host is empty)".into())
        );
        assert!(matches!(
            HostPort::parse("::1:9092"),
            Err(AddressError::BadHost { .. })
        ));
        assert!(matches!(
            HostPort::parse("bad host:1"),
            Err(AddressError::BadHost { .. })
        ));
        assert!(matches!(
            HostPort::parse("-a.b:1"),
            Err(AddressError::BadHost { .. })
        ));
    }

    #[test]
    fn parses_voters() {
        let voters = Voter::parse_list("0@127.0.0.1:9093, 1@127.0.0.2:9093,2@spate-2.spate:9093")
            .expect("valid");
        assert_eq!(voters.len(), 3);
        assert_eq!(voters[2].to_string(), "2@spate-2.spate:9093");
        assert_eq!(
            Voter::parse("127.0.0.1:9093").map_err(|e| e.to_string()),
            Err("\"127.0.0.1:9093\" is not ID@HOST:PORT (the node id is missing)".into())
        );
        assert_eq!(
            Voter::parse("-1@h:1").map_err(|e| e.to_string()),
            Err("\"-1@h:1\" is not ID@HOST:PORT (\"-1\" is not a node id: an integer from 0 to 2147483647)".into())
        );
    }
}
