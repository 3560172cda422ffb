//! `[mcp]` errors name their field; a valid section builds its servers and tools.

use super::*;

const KEY: &str = "sha256:c45e76e88b4379cdf3b212a6d61c2be7d5ee1755fee3025f1e73408b986c8b44";
const DOC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/conf/mcp-petstore.openapi.json"
);

fn env(name: &str) -> Option<String> {
    match name {
        "API_KEY" => Some("secret".into()),
        "SESSION_KEY" => Some("ab".repeat(32)),
        "SHORT_KEY" => Some("abcd".into()),
        _ => None,
    }
}

fn errors(text: &str) -> Vec<String> {
    match parse_with_env(text, &env) {
        Ok(_) => vec![],
        Err(e) => e.errors,
    }
}

#[test]
fn a_valid_section_builds_its_tools_and_keys() {
    let text = format!(
        "[mcp]\nsession_key_env = \"SESSION_KEY\"\n[[mcp.servers]]\nname = \"pets\"\n\
         openapi = \"{DOC}\"\nbase_url = \"http://127.0.0.1:9/api\"\ninclude = [\"getPet\", \"listPets\"]\n\
         [mcp.servers.credential]\nkind = \"bearer\"\nvalue_env = \"API_KEY\"\n\
         [[consumers]]\nname = \"a\"\nkeys = [\"{KEY}\"]\nmcp_tools = [\"pets/getPet\"]\n"
    );
    let c = parse_with_env(&text, &env).unwrap();
    let s = c.mcp.server("pets").unwrap();
    let names: Vec<_> = s.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["listPets", "getPet"]);
    assert_eq!(c.mcp.keys.current, [0xab; 32]);
    assert!(c.mcp.keys.shared);
    assert!(c.consumers[0].may_use_tool("pets", "getPet"));
    assert!(!c.consumers[0].may_use_tool("pets", "listPets"));
    assert!(format!("{:?}", c.mcp).contains("SessionKeys(***)"));
    assert!(!format!("{:?}", c.mcp).contains("secret"));
}

#[test]
fn every_mcp_error_names_its_field() {
    let text = format!(
        "[mcp]\nsession_key_env = \"SHORT_KEY\"\nprevious_session_key_env = \"UNSET\"\nsession_ttl_seconds = 0\n\
         [[mcp.servers]]\nname = \"bad name\"\nopenapi = \"/nonexistent.json\"\nbase_url = \"ftp://x\"\n\
         [[mcp.servers]]\nname = \"p\"\nopenapi = \"{DOC}\"\nbase_url = \"http://h\"\ninclude = [\"nope\"]\n\
         timeout_ms = 0\ntool_calls_per_minute = 0\nforward_headers = [\"authorization\", \"bad header\"]\n\
         [mcp.servers.credential]\nkind = \"header\"\nvalue_env = \"UNSET_TOO\"\n\
         [[consumers]]\nname = \"a\"\nkeys = [\"{KEY}\"]\nmcp_tools = [\"ghost/*\", \"nonsense\"]\n"
    );
    let errs = errors(&text);
    let want = [
        "mcp.session_key_env: SHORT_KEY must hold 32 bytes",
        "mcp.previous_session_key_env: environment variable UNSET is not set",
        "mcp.session_ttl_seconds must be > 0",
        "mcp.servers[0].name `bad name` must be",
        "mcp.servers[0].base_url",
        "mcp.servers[0].openapi: cannot read /nonexistent.json",
        "mcp.servers[1].timeout_ms must be > 0",
        "mcp.servers[1].tool_calls_per_minute must be > 0",
        "mcp.servers[1].forward_headers[0] `authorization` carries a credential or is the gateway's own",
        "mcp.servers[1].forward_headers[1] `bad header` is not a header name",
        "mcp.servers[1].credential.value_env: environment variable UNSET_TOO is not set",
        "include/exclude names `nope`",
        "consumers[0].mcp_tools[0] names unknown MCP server `ghost`",
        "consumers[0].mcp_tools[1] `nonsense` must be",
    ];
    for w in want {
        assert!(
            errs.iter().any(|e| e.contains(w)),
            "missing {w:?} in {errs:#?}"
        );
    }
}

#[test]
fn unknown_fields_and_kinds_are_errors_by_path() {
    let e = errors("[mcp]\nsesion_key_env = \"X\"\n");
    assert!(
        e[0].contains("mcp") && e[0].contains("sesion_key_env"),
        "{e:?}"
    );
    let e = errors(&format!(
        "[[mcp.servers]]\nname = \"p\"\nopenapi = \"{DOC}\"\nbase_url = \"http://h\"\n\
         [mcp.servers.credential]\nkind = \"cookie\"\nvalue_env = \"API_KEY\"\n"
    ));
    assert!(e[0].contains("mcp.servers[0].credential.kind"), "{e:?}");
}

#[test]
fn remote_servers_need_a_url_and_no_document() {
    let e = errors(
        "[[mcp.servers]]\nname = \"r\"\nkind = \"remote\"\nbase_url = \"http://h\"\n\
         [[mcp.servers]]\nname = \"s\"\nkind = \"remote\"\nurl = \"http://h/mcp\"\nopenapi = \"x.json\"\n\
         [[mcp.servers]]\nname = \"t\"\nbase_url = \"http://h\"\n",
    );
    for w in [
        "mcp.servers[0]: kind = \"remote\" needs url",
        "mcp.servers[1].openapi is not used with kind = \"remote\"",
        "mcp.servers[2].openapi is required",
    ] {
        assert!(e.iter().any(|x| x.contains(w)), "missing {w:?} in {e:#?}");
    }
    let text = format!(
        "[[mcp.servers]]\nname = \"r\"\nkind = \"remote\"\nurl = \"http://h:9/mcp\"\nexclude = [\"x\"]\n\
         [[consumers]]\nname = \"a\"\nkeys = [\"{KEY}\"]\nmcp_tools = [\"r/anything\"]\n"
    );
    let c = parse_with_env(&text, &env).unwrap();
    let r = c.mcp.server("r").unwrap();
    assert!(r.offers("y") && !r.offers("x"));
}
