//! MAC addresses for container interfaces and bridges.
//!
//! A container's MAC is derived from its IPv4 address the way docker does it
//! (`02:42:` followed by the four octets), so that the same address always comes with the same
//! MAC and ARP caches of peers stay valid across a re-attach. User-given MACs are validated:
//! six octets, unicast, not all zeros.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Errors of MAC parsing and validation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MacError {
    #[error("invalid mac address {input:?}: expected six hex octets like 02:42:0a:00:00:02")]
    Syntax { input: String },
    #[error("invalid mac address {input}: multicast addresses (lowest bit of the first octet set) cannot be assigned to an interface")]
    Multicast { input: String },
    #[error(
        "invalid mac address {input}: the all-zero address cannot be assigned to an interface"
    )]
    Zero { input: String },
}

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// docker's stable MAC for an IPv4 address: `02:42:a:b:c:d`.
    /// `02` sets the locally-administered bit and keeps the unicast bit clear.
    pub fn from_ipv4(ip: Ipv4Addr) -> Mac {
        let o = ip.octets();
        Mac([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }

    /// A stable, locally-administered unicast MAC derived from a name (FNV-1a of the name).
    ///
    /// Used for bridges: a bridge whose MAC was set explicitly (`addr_assign_type` = set) keeps it
    /// when ports come and go, instead of following the lowest port MAC, which breaks the ARP
    /// caches of the containers for up to ~100 s (netavark `bridge.rs`, CNI bridge plugin).
    pub fn for_name(name: &str) -> Mac {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let b = h.to_be_bytes();
        // 0x02 | ... : locally administered, unicast; 0x42 second byte would collide with the
        // container range, so use 0x4b ("b"erth bridge).
        Mac([0x02, 0x4b, b[4], b[5], b[6], b[7]])
    }

    /// Parse and validate a MAC a user asked for (`--mac`).
    pub fn parse_user(input: &str) -> Result<Mac, MacError> {
        let mac: Mac = input.parse()?;
        if mac.0[0] & 0x01 != 0 {
            return Err(MacError::Multicast {
                input: input.to_string(),
            });
        }
        if mac.0 == [0; 6] {
            return Err(MacError::Zero {
                input: input.to_string(),
            });
        }
        Ok(mac)
    }

    /// The raw octets, as netlink wants them.
    pub fn to_vec(self) -> Vec<u8> {
        self.0.to_vec()
    }

    /// From a netlink `IFLA_ADDRESS` payload (six bytes for Ethernet).
    pub fn from_slice(b: &[u8]) -> Option<Mac> {
        <[u8; 6]>::try_from(b).ok().map(Mac)
    }
}

impl FromStr for Mac {
    type Err = MacError;
    fn from_str(s: &str) -> Result<Mac, MacError> {
        let err = || MacError::Syntax {
            input: s.to_string(),
        };
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split([':', '-']) {
            if n == 6 || part.len() != 2 {
                return Err(err());
            }
            out[n] = u8::from_str_radix(part, 16).map_err(|_| err())?;
            n += 1;
        }
        if n != 6 {
            return Err(err());
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_from_ipv4_like_docker() {
        let m = Mac::from_ipv4(Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(m.to_string(), "02:42:ac:11:00:02");
        assert_eq!(Mac::parse_user(&m.to_string()), Ok(m));
    }

    #[test]
    fn parse_and_display_round_trip() {
        let m: Mac = "0A:1b:2c:3d:4e:5f".parse().unwrap();
        assert_eq!(m.to_string(), "0a:1b:2c:3d:4e:5f");
        let m2: Mac = "0a-1b-2c-3d-4e-5f".parse().unwrap();
        assert_eq!(m, m2);
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "",
            "02:42:ac:11:00",
            "02:42:ac:11:00:02:03",
            "02:42:ac:11:00:2",
            "02:42:ac:11:00:zz",
            "0242ac110002",
            "02:42:ac:11:00:002",
        ] {
            assert!(
                matches!(Mac::parse_user(bad), Err(MacError::Syntax { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_multicast_and_zero() {
        assert!(matches!(
            Mac::parse_user("01:00:5e:00:00:01"),
            Err(MacError::Multicast { .. })
        ));
        assert!(matches!(
            Mac::parse_user("ff:ff:ff:ff:ff:ff"),
            Err(MacError::Multicast { .. })
        ));
        assert!(matches!(
            Mac::parse_user("00:00:00:00:00:00"),
            Err(MacError::Zero { .. })
        ));
        let e = Mac::parse_user("03:00:00:00:00:01").unwrap_err();
        assert!(e.to_string().contains("multicast"), "{e}");
    }

    #[test]
    fn name_macs_are_stable_local_unicast() {
        let a = Mac::for_name("berth0");
        assert_eq!(a, Mac::for_name("berth0"));
        assert_ne!(a, Mac::for_name("berth1"));
        assert_eq!(a.0[0] & 0x03, 0x02);
    }

    #[test]
    fn serde_as_string() {
        let m = Mac::from_ipv4(Ipv4Addr::new(10, 0, 0, 9));
        let j = serde_json::to_string(&m).unwrap();
        assert_eq!(j, "\"02:42:0a:00:00:09\"");
        let back: Mac = serde_json::from_str(&j).unwrap();
        assert_eq!(back, m);
    }
}
