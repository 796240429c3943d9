//! Registry authentication: `WWW-Authenticate` challenges, bearer tokens from a token server, and
//! basic credentials, as docker's distribution spec describes them
//! (<https://distribution.github.io/distribution/spec/auth/token/>).

use super::client::transport_error;
use super::credentials::Credential;
use super::{InsecureRegistries, RegistryError, Result};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde::Deserialize;
use std::io::Read;

/// The largest token-server answer berth reads; real ones are a few kilobytes.
const MAX_TOKEN_RESPONSE: u64 = 1 << 20;

/// How a registry asks to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`: send the user name and password with every request.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`: get a token from `realm` and send that.
    Bearer {
        realm: String,
        service: Option<String>,
        scopes: Vec<String>,
    },
}

/// One challenge as written in the header: scheme and parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawChallenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl RawChallenge {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the challenges in one `WWW-Authenticate` value (RFC 7235: `scheme k=v, k="v", scheme2
/// …`). Parameters without a scheme before them are an error; unknown schemes are kept.
pub fn parse_www_authenticate(header: &str) -> std::result::Result<Vec<RawChallenge>, String> {
    let mut out: Vec<RawChallenge> = Vec::new();
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            return Ok(out);
        }
        let end = rest
            .find(|c: char| c == ',' || c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let token = &rest[..end];
        rest = &rest[end..];
        let after_ws = rest.trim_start();
        if let Some(value_part) = after_ws.strip_prefix('=') {
            let Some(current) = out.last_mut() else {
                return Err(format!("parameter {token:?} comes before any scheme"));
            };
            let (value, remaining) = parse_value(value_part.trim_start())?;
            current.params.push((token.to_ascii_lowercase(), value));
            rest = remaining;
        } else {
            out.push(RawChallenge {
                scheme: token.to_string(),
                params: Vec::new(),
            });
        }
    }
}

/// A quoted string (with `\` escapes) or a token, and what follows it.
fn parse_value(s: &str) -> std::result::Result<(String, &str), String> {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Ok((value, &quoted[i + 1..])),
                '\\' => match chars.next() {
                    Some((_, e)) => value.push(e),
                    None => break,
                },
                c => value.push(c),
            }
        }
        Err("unterminated quoted string".into())
    } else {
        let end = s
            .find(|c: char| c == ',' || c.is_whitespace())
            .unwrap_or(s.len());
        Ok((s[..end].to_string(), &s[end..]))
    }
}

/// Picks the challenge berth will answer from all `WWW-Authenticate` headers of a response:
/// bearer if offered (it never sends the password to the registry itself), else basic.
pub fn pick_challenge(headers: &[&str]) -> std::result::Result<Challenge, String> {
    let mut all = Vec::new();
    for h in headers {
        all.extend(parse_www_authenticate(h)?);
    }
    if let Some(b) = all.iter().find(|c| c.scheme.eq_ignore_ascii_case("bearer")) {
        let realm = b
            .param("realm")
            .filter(|r| !r.is_empty())
            .ok_or("the bearer challenge has no realm")?;
        let url = url::Url::parse(realm)
            .map_err(|e| format!("the token realm {realm:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("the token realm {realm:?} is not an http(s) URL"));
        }
        let scopes = b.param("scope").map(|s| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        });
        return Ok(Challenge::Bearer {
            realm: realm.to_string(),
            service: b.param("service").map(String::from),
            scopes: scopes.unwrap_or_default(),
        });
    }
    if all.iter().any(|c| c.scheme.eq_ignore_ascii_case("basic")) {
        return Ok(Challenge::Basic);
    }
    match all.first() {
        Some(c) => Err(format!(
            "berth speaks the Bearer and Basic schemes, not {}",
            c.scheme
        )),
        None => Err(
            "the registry asked for authentication without saying how (no WWW-Authenticate header)"
                .into(),
        ),
    }
}

/// `Authorization: Basic …` for a credential.
pub fn basic_header(cred: &Credential) -> String {
    format!(
        "Basic {}",
        BASE64_STANDARD.encode(format!("{}:{}", cred.username, cred.password))
    )
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// The realm URL with `service`, each `scope` and (when logged in) `account` as query parameters.
pub fn token_url(
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    account: Option<&str>,
) -> Result<url::Url, String> {
    let mut url = url::Url::parse(realm)
        .map_err(|e| format!("the token realm {realm:?} is not a URL: {e}"))?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(s) = service {
            q.append_pair("service", s);
        }
        for s in scopes {
            q.append_pair("scope", s);
        }
        if let Some(a) = account {
            q.append_pair("account", a);
        }
    }
    Ok(url)
}

/// Gets a bearer token for `scopes` from the challenge's realm, sending `cred` (if any) as basic
/// credentials to the token server. A realm on plain HTTP gets credentials only when its host is
/// insecure, so a registry cannot redirect a password off TLS by naming an `http://` realm.
pub fn fetch_token(
    agent: &ureq::Agent,
    registry: &str,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    cred: Option<&Credential>,
    insecure: &InsecureRegistries,
) -> Result<String> {
    let token_err = |reason: String| RegistryError::Token {
        registry: registry.to_string(),
        realm: realm.to_string(),
        reason,
    };
    let url =
        token_url(realm, service, scopes, cred.map(|c| c.username.as_str())).map_err(token_err)?;
    let realm_host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(token_err("the realm URL has no host".into())),
    };
    let mut req = agent.get(url.as_str());
    if let Some(c) = cred {
        if url.scheme() == "http" && !insecure.is_insecure(&realm_host) {
            return Err(RegistryError::InsecureCredentials {
                registry: registry.to_string(),
                url: realm.to_string(),
            });
        }
        req = req.set("Authorization", &basic_header(c));
    }
    let resp = match req.call() {
        Ok(r) if r.status() == 200 => r,
        Ok(r) => return Err(token_err(format!("it answered HTTP {}", r.status()))),
        Err(ureq::Error::Status(401 | 403, _)) => {
            return Err(RegistryError::AuthFailed {
                registry: registry.to_string(),
                reason: match cred {
                    Some(_) => "the token server rejected the stored user name or password".into(),
                    None => "the token server requires a login".into(),
                },
            })
        }
        Err(ureq::Error::Status(code, _)) => {
            return Err(token_err(format!("it answered HTTP {code}")))
        }
        Err(ureq::Error::Transport(t)) => {
            return Err(transport_error(&realm_host, url.as_str(), &t, true))
        }
    };
    let mut body = Vec::new();
    resp.into_reader()
        .take(MAX_TOKEN_RESPONSE + 1)
        .read_to_end(&mut body)
        .map_err(|e| token_err(format!("reading its answer: {e}")))?;
    if body.len() as u64 > MAX_TOKEN_RESPONSE {
        return Err(token_err(format!(
            "its answer is larger than {MAX_TOKEN_RESPONSE} bytes"
        )));
    }
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| token_err(format!("its answer is not a token document: {e}")))?;
    parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| token_err("its answer holds neither `token` nor `access_token`".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_bearer_challenge() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        assert_eq!(
            pick_challenge(&[h]).unwrap(),
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scopes: vec!["repository:library/busybox:pull".into()],
            }
        );
    }

    #[test]
    fn parses_quoting_spacing_multiple_scopes_and_mixed_schemes() {
        let h = r#"Basic realm="a, \"quoted\" realm", Bearer realm = https://t.example/token , scope="repository:a:pull repository:b:pull""#;
        let parsed = parse_www_authenticate(h).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(
            parsed[0].params,
            vec![("realm".to_string(), "a, \"quoted\" realm".to_string())]
        );
        match pick_challenge(&[h]).unwrap() {
            Challenge::Bearer {
                realm,
                service,
                scopes,
            } => {
                assert_eq!(realm, "https://t.example/token");
                assert_eq!(service, None);
                assert_eq!(scopes, vec!["repository:a:pull", "repository:b:pull"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            pick_challenge(&[r#"Basic realm="Registry Realm""#]).unwrap(),
            Challenge::Basic
        );
        assert_eq!(pick_challenge(&["basic"]).unwrap(), Challenge::Basic);
    }

    #[test]
    fn rejects_unusable_challenges() {
        assert!(pick_challenge(&[])
            .unwrap_err()
            .contains("without saying how"));
        assert!(pick_challenge(&["Negotiate"])
            .unwrap_err()
            .contains("Negotiate"));
        assert!(pick_challenge(&[r#"Bearer service="x""#])
            .unwrap_err()
            .contains("no realm"));
        assert!(pick_challenge(&[r#"Bearer realm="file:///etc/passwd""#]).is_err());
        assert!(pick_challenge(&[r#"Bearer realm="unterminated"#]).is_err());
        assert!(parse_www_authenticate("realm=x").is_err());
    }

    #[test]
    fn token_url_carries_service_scopes_and_account() {
        let u = token_url(
            "https://t.example/token?x=1",
            Some("reg"),
            &["repository:a/b:pull".into()],
            Some("me"),
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://t.example/token?x=1&service=reg&scope=repository%3Aa%2Fb%3Apull&account=me"
        );
    }

    #[test]
    fn credentials_never_go_to_a_plain_http_realm_on_a_secure_host() {
        let cred = Credential {
            username: "u".into(),
            password: "p".into(),
        };
        let agent = ureq::AgentBuilder::new().build();
        // Refused before any connection is made (the host is never contacted).
        let e = fetch_token(
            &agent,
            "registry.example",
            "http://auth.example/token",
            None,
            &[],
            Some(&cred),
            &InsecureRegistries::default(),
        )
        .unwrap_err();
        assert!(
            matches!(e, RegistryError::InsecureCredentials { .. }),
            "{e}"
        );
    }

    #[test]
    fn basic_header_encodes_user_and_password() {
        let c = Credential {
            username: "user".into(),
            password: "pa:ss".into(),
        };
        assert_eq!(basic_header(&c), "Basic dXNlcjpwYTpzcw==");
    }
}
