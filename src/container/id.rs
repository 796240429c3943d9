//! Container ids and names: 64-hex ids with a 12-hex short form, docker-style names, and
//! resolution of what a user typed (full id, name, or a unique id prefix).

use rand::seq::SliceRandom;
use rand::Rng;

/// Length of a full container id.
pub const ID_LEN: usize = 64;
/// Length of the short form that `ps` shows.
pub const SHORT_LEN: usize = 12;

/// A fresh random id: 64 lower-case hex digits. Like docker, an id whose short form is all
/// decimal digits is redrawn, so that the short form never reads as a number.
pub fn generate() -> String {
    loop {
        let bytes: [u8; 32] = rand::thread_rng().gen();
        let id = hex::encode(bytes);
        if !id[..SHORT_LEN].bytes().all(|b| b.is_ascii_digit()) {
            return id;
        }
    }
}

/// The 12-hex short form of an id (the id itself if it is shorter).
pub fn short(id: &str) -> &str {
    id.get(..SHORT_LEN).unwrap_or(id)
}

/// Whether `s` is a full container id.
pub fn is_full_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks a user-given container name: docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128
/// characters (a leading `/`, as docker prints names, is accepted and dropped). Returns the
/// name as stored.
pub fn validate_name(name: &str) -> Result<String, String> {
    let name = name.strip_prefix('/').unwrap_or(name);
    let mut bytes = name.bytes();
    let ok = match bytes.next() {
        Some(first) => {
            first.is_ascii_alphanumeric()
                && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        }
        None => false,
    };
    if !ok || name.len() > 128 {
        return Err(format!(
            "invalid container name {name:?}: use letters, digits, `_`, `.` and `-`, starting \
             with a letter or digit, at most 128 characters"
        ));
    }
    Ok(name.to_string())
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "clever", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid",
    "merry", "nimble", "proud", "quiet", "steady", "swift", "tender", "vivid", "wise", "zen",
];
const NOUNS: &[&str] = &[
    "anchor", "beacon", "buoy", "cove", "dock", "ferry", "harbor", "hull", "jetty", "keel",
    "lagoon", "mast", "pier", "quay", "reef", "rudder", "sail", "skiff", "tide", "wharf",
];

/// A generated name such as `steady_harbor`; with `attempt > 0` a number is appended, so the
/// caller can retry on a collision with `attempt + 1`.
pub fn generate_name(attempt: u32) -> String {
    let mut rng = rand::thread_rng();
    let adj = ADJECTIVES.choose(&mut rng).copied().unwrap_or("berth");
    let noun = NOUNS.choose(&mut rng).copied().unwrap_or("container");
    if attempt == 0 {
        format!("{adj}_{noun}")
    } else {
        format!("{adj}_{noun}{attempt}")
    }
}

/// How a query matched.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved<'a> {
    Found(&'a str),
    NotFound,
    /// More than one id starts with the query.
    Ambiguous,
}

/// Resolves `query` among `(id, name)` pairs the way docker does: a full id, then an exact
/// name, then a unique id prefix.
pub fn resolve<'a>(candidates: &'a [(String, String)], query: &str) -> Resolved<'a> {
    let query = query.strip_prefix('/').unwrap_or(query);
    if query.is_empty() {
        return Resolved::NotFound;
    }
    if let Some((id, _)) = candidates.iter().find(|(id, _)| id == query) {
        return Resolved::Found(id);
    }
    if let Some((id, _)) = candidates.iter().find(|(_, name)| name == query) {
        return Resolved::Found(id);
    }
    if !query.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Resolved::NotFound;
    }
    let mut matches = candidates.iter().filter(|(id, _)| id.starts_with(query));
    match (matches.next(), matches.next()) {
        (Some((id, _)), None) => Resolved::Found(id),
        (Some(_), Some(_)) => Resolved::Ambiguous,
        _ => Resolved::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_with_a_non_numeric_short_form() {
        for _ in 0..100 {
            let id = generate();
            assert!(is_full_id(&id), "{id}");
            assert_eq!(short(&id).len(), 12);
            assert!(!short(&id).bytes().all(|b| b.is_ascii_digit()));
        }
        assert!(!is_full_id("abc"));
        assert!(!is_full_id(&"A".repeat(64)));
    }

    #[test]
    fn names_follow_docker_rules() {
        assert_eq!(validate_name("web-1.a_b").unwrap(), "web-1.a_b");
        assert_eq!(validate_name("/web").unwrap(), "web");
        for bad in ["", "-x", "a b", "a/b", "ünï", &"a".repeat(129)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_name(&generate_name(0)).is_ok());
        assert!(validate_name(&generate_name(7)).is_ok());
    }

    #[test]
    fn resolves_id_then_name_then_prefix() {
        let c = vec![
            ("abc111".repeat(10) + "abcd", "web".to_string()),
            ("abc222".repeat(10) + "abcd", "abc111".to_string()),
        ];
        assert_eq!(resolve(&c, "web"), Resolved::Found(&c[0].0));
        assert_eq!(resolve(&c, "/web"), Resolved::Found(&c[0].0));
        // A name beats an id prefix.
        assert_eq!(resolve(&c, "abc111"), Resolved::Found(&c[1].0));
        assert_eq!(resolve(&c, "abc2"), Resolved::Found(&c[1].0));
        assert_eq!(resolve(&c, "abc"), Resolved::Ambiguous);
        assert_eq!(resolve(&c, "fff"), Resolved::NotFound);
        assert_eq!(resolve(&c, ""), Resolved::NotFound);
        assert_eq!(resolve(&c, &c[0].0), Resolved::Found(&c[0].0));
    }
}
