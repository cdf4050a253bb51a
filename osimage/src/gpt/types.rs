//! Partition types of the Discoverable Partitions Specification (x86-64), by the
//! names systemd-repart's `Type=` uses.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A GPT partition type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartitionType {
    Esp,
    Xbootldr,
    Root,
    Usr,
    UsrVerity,
    UsrVeritySig,
    Home,
    Swap,
    Var,
    /// Any other type, by its UUID.
    Other(Uuid),
}

const TABLE: &[(PartitionType, &str, &str)] = &[
    (
        PartitionType::Esp,
        "esp",
        "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
    ),
    (
        PartitionType::Xbootldr,
        "xbootldr",
        "bc13c2ff-59e6-4262-a352-b275fd6f7172",
    ),
    (
        PartitionType::Root,
        "root",
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
    ),
    (
        PartitionType::Usr,
        "usr",
        "8484680c-9521-48c6-9c11-b0720656f69e",
    ),
    (
        PartitionType::UsrVerity,
        "usr-verity",
        "77ff5f63-e7b6-4633-acf4-1565b864c0e6",
    ),
    (
        PartitionType::UsrVeritySig,
        "usr-verity-sig",
        "e7bb33fb-06cf-4e81-8273-e543b413e2e2",
    ),
    (
        PartitionType::Home,
        "home",
        "933ac7e1-2eb4-4f13-b844-0e14e2aef915",
    ),
    (
        PartitionType::Swap,
        "swap",
        "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f",
    ),
    (
        PartitionType::Var,
        "var",
        "4d21b016-b534-45c2-a9fb-5c16e091fd2d",
    ),
];

impl PartitionType {
    pub fn type_uuid(self) -> Uuid {
        match self {
            PartitionType::Other(u) => u,
            known => TABLE
                .iter()
                .find(|(t, _, _)| *t == known)
                .and_then(|(_, _, u)| Uuid::parse_str(u).ok())
                .unwrap_or_default(),
        }
    }

    pub fn from_type_uuid(uuid: Uuid) -> PartitionType {
        TABLE
            .iter()
            .find(|(_, _, u)| Uuid::parse_str(u).ok() == Some(uuid))
            .map_or(PartitionType::Other(uuid), |(t, _, _)| *t)
    }

    /// The repart.d name, or the UUID for other types.
    pub fn name(self) -> String {
        match self {
            PartitionType::Other(u) => u.to_string(),
            known => TABLE
                .iter()
                .find(|(t, _, _)| *t == known)
                .map_or_else(String::new, |(_, n, _)| (*n).to_owned()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown partition type `{0}` (expected esp, xbootldr, root, usr, usr-verity, usr-verity-sig, home, swap, var, or a UUID)"
)]
pub struct UnknownType(pub String);

impl FromStr for PartitionType {
    type Err = UnknownType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // repart also accepts the architecture-qualified spelling, e.g. usr-x86-64.
        let plain = s.replace("-x86-64", "");
        if let Some((t, _, _)) = TABLE.iter().find(|(_, n, _)| *n == plain) {
            return Ok(*t);
        }
        Uuid::parse_str(s)
            .map(PartitionType::from_type_uuid)
            .map_err(|_| UnknownType(s.to_owned()))
    }
}

impl fmt::Display for PartitionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl serde::Serialize for PartitionType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> serde::Deserialize<'de> for PartitionType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uuids_round_trip() {
        for (t, name, uuid) in TABLE {
            assert_eq!(name.parse::<PartitionType>().unwrap(), *t);
            assert_eq!(t.type_uuid().to_string(), *uuid);
            assert_eq!(PartitionType::from_type_uuid(t.type_uuid()), *t);
        }
        assert_eq!(
            "usr-x86-64".parse::<PartitionType>().unwrap(),
            PartitionType::Usr
        );
        let other: PartitionType = "0fc63daf-8483-4772-8e79-3d69d8477de4".parse().unwrap();
        assert!(matches!(other, PartitionType::Other(_)));
        assert!("usr-arm64-nope".parse::<PartitionType>().is_err());
    }
}
