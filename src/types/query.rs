//! Query strings of the admin API: one parameter, percent-decoded. A leaf, so the admin
//! service and the keys API read parameters the same way.

/// The first value of `name` in `query`, decoded.
pub fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
}

/// Decode `%XX` escapes and `+` in a query value.
pub fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match hex::decode(&bytes[i + 1..i + 3]) {
                Ok(decoded) => {
                    out.extend_from_slice(&decoded);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_found_and_decoded() {
        assert_eq!(
            param("a=1&consumer=team%20a", "consumer").as_deref(),
            Some("team a")
        );
        assert_eq!(param("consumer=a+b", "consumer").as_deref(), Some("a b"));
        assert_eq!(param("x=1", "consumer"), None);
    }
}
