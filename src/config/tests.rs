use super::*;

const KEY: &str = "sha256:c45e76e88b4379cdf3b212a6d61c2be7d5ee1755fee3025f1e73408b986c8b44";

fn env(name: &str) -> Option<String> {
    (name == "SET_KEY").then(|| "sk-test".to_string())
}

fn errors(text: &str) -> Vec<String> {
    match parse_with_env(text, &env) {
        Ok(_) => vec![],
        Err(e) => e.errors,
    }
}

#[test]
fn embedded_quick_start_is_valid() {
    let c = parse_with_env(crate::EMBEDDED_CONFIG, &env).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:8080");
    assert!(matches!(c.providers[0].upstream, Upstream::BuiltinMock));
    assert!(c.model("chat").is_some());
}

#[test]
fn every_semantic_error_is_reported_with_its_path() {
    let text = format!(
        r#"
[server]
threads = 0
resolve_interval_ms = 0
[[providers]]
name = "a"
kind = "openai"
[[providers]]
name = "t"
kind = "openai"
base_url = "https://x.test/v1"
tls_ca_file = "/nonexistent/ca.pem"
tls_sni = "bad name"
[[providers]]
name = "b"
kind = "openai"
base_url = "ftp://x"
api_key_env = "UNSET_KEY"
[[models]]
name = "m"
strategy = "random"
targets = [{{ provider = "a", model = "x", weight = 1 }}, {{ provider = "zz", model = "y", weight = 0 }}]
[[models]]
name = "m"
targets = []
retry_on_status = [200]
[[consumers]]
name = "c"
keys = ["{KEY}", "plain-key", "{KEY}"]
models = ["nope"]
"#
    );
    let errs = errors(&text);
    let expect = [
        "server.threads must be > 0",
        "server.resolve_interval_ms must be > 0",
        "providers[0].base_url is required",
        "providers[1].tls_ca_file: cannot read /nonexistent/ca.pem",
        "providers[1].tls_sni must be a host name",
        "providers[2].base_url \"ftp://x\" must start with http:// or https://",
        "providers[2].api_key_env: environment variable UNSET_KEY is not set",
        "models[0].strategy must be \"weighted\", \"priority\", \"least_latency\" or \"least_cost\"",
        "models[0].targets[1].weight must be > 0",
        "models[0].targets[1].provider names unknown provider `zz`",
        "models[1].name `m` is defined twice",
        "models[1].targets must list at least one target",
        "models[1].retry_on_status[0] must be an HTTP error status",
        "consumers[0].keys[1] must be `sha256:",
        "consumers[0].keys[2] is the same key as consumers[0].keys[0]",
        "consumers[0].models[0] names unknown model `nope`",
    ];
    for e in expect {
        assert!(
            errs.iter().any(|x| x.starts_with(e)),
            "missing `{e}` in {errs:#?}"
        );
    }
}

#[test]
fn unknown_fields_and_wrong_types_name_their_path() {
    let errs = errors(
        "[[models]]\nname = \"m\"\ntargets = [{ provider = \"p\", model = \"x\", wieght = 2 }]\n",
    );
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("models[0].targets[0]"), "{errs:?}");
    assert!(errs[0].contains("wieght"), "{errs:?}");
    let errs = errors("[server]\nthreads = \"two\"\n");
    assert!(errs[0].starts_with("server.threads"), "{errs:?}");
    assert!(errs[0].contains("line 2"), "{errs:?}");
    let errs = errors("[server\n");
    assert!(
        errs[0].starts_with("TOML syntax error at line 1"),
        "{errs:?}"
    );
}

#[test]
fn base_urls_split_into_parts_and_keys_resolve_from_env() {
    let c = parse_with_env(
        "[[providers]]\nname = \"o\"\nkind = \"openai\"\nbase_url = \"https://api.example.com:8443/v1/\"\napi_key_env = \"SET_KEY\"\n",
        &env,
    )
    .unwrap();
    match &c.providers[0].upstream {
        Upstream::Url {
            tls,
            host,
            port,
            base_path,
        } => {
            assert!(*tls);
            assert_eq!(
                (host.as_str(), *port, base_path.as_str()),
                ("api.example.com", 8443, "/v1")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.providers[0].api_key.as_ref().unwrap().expose(), "sk-test");
    assert_eq!(format!("{:?}", c.providers[0].api_key), "Some(Secret(***))");
}

#[test]
fn limit_errors_name_their_field() {
    let text = format!(
        r#"
[redis]
url = "http://nope"
sync_interval_ms = 0
on_failure = "maybe"
[limits]
timezone = "Mars/Olympus"
default = {{ rpm = 0 }}
[[providers]]
name = "p"
kind = "mock"
[[models]]
name = "m"
strategy = "cheapest"
targets = [{{ provider = "p", model = "x" }}, {{ provider = "p", model = "y", price = {{ input_per_mtok = 1.0, output_per_mtok = -2.0 }} }}]
price = {{ input_per_mtok = -1.0, output_per_mtok = 0.5 }}
[[consumers]]
name = "c"
keys = ["{KEY}"]
[consumers.limits]
tpm = -5
usd_per_day = 0.0
[[consumers.limits.schedule]]
hours = "9-18"
rpm = 10
[[consumers.limits.models]]
model = "nope"
"#
    );
    let errs = errors(&text);
    let expect = [
        "redis.url \"http://nope\" must be a URL",
        "redis.sync_interval_ms must be > 0",
        "redis.on_failure must be \"local\", \"open\" or \"closed\"",
        "limits.timezone `Mars/Olympus` is not a known time zone",
        "limits.default.rpm must be > 0",
        "models[0].price.input_per_mtok must be a number >= 0",
        "models[0].targets[1].price.output_per_mtok must be a number >= 0",
        "models[0].strategy must be \"weighted\", \"priority\", \"least_latency\" or \"least_cost\", not \"cheapest\"",
        "consumers[0].limits.tpm must be > 0",
        "consumers[0].limits.usd_per_day must be a positive amount",
        "consumers[0].limits.schedule[0].hours must look like \"09:00-18:00\"",
        "consumers[0].limits.models[0].model names unknown model `nope`",
        "consumers[0].limits.models[0] sets no limit",
    ];
    for e in expect {
        assert!(
            errs.iter().any(|x| x.starts_with(e)),
            "missing `{e}` in {errs:#?}"
        );
    }
    let errs = errors(&format!(
        "[[consumers]]\nname = \"c\"\nkeys = [\"{KEY}\"]\nlimits = {{ rpn = 5 }}\n"
    ));
    assert!(
        errs[0].starts_with("consumers[0].limits") && errs[0].contains("rpn"),
        "{errs:?}"
    );
}

#[test]
fn rule_errors_name_their_field() {
    let errs = errors(
        r#"
[[providers]]
name = "p"
kind = "mock"
[[models]]
name = "m"
targets = [{ provider = "p", model = "x", context_window = 0 }]
[[models.rules]]
name = "r"
targets = []
[[models.rules]]
name = "r"
header = "bad header"
percent = 150.0
targets = [{ provider = "q", model = "y" }]
[[models.rules]]
name = "eq"
field_equals = 1
targets = [{ provider = "p", model = "y" }]
"#,
    );
    let expect = [
        "models[0].targets[0].context_window must be > 0",
        "models[0].rules[0] has no condition",
        "models[0].rules[0].targets must list at least one target",
        "models[0].rules[1].name `r` is used twice",
        "models[0].rules[1].header `bad header` is not a valid header name",
        "models[0].rules[1].percent must be in (0, 100]",
        "models[0].rules[1].targets[0].provider names unknown provider `q`",
        "models[0].rules[2].field_equals needs `field`",
    ];
    for e in expect {
        assert!(
            errs.iter().any(|x| x.starts_with(e)),
            "missing `{e}` in {errs:#?}"
        );
    }
}

#[test]
fn tenant_errors_name_their_field() {
    let text = format!(
        r#"
[[tenants]]
name = "acme"
limits = {{ rpm = 0 }}
[[tenants]]
name = "acme"
limits = {{}}
[[consumers]]
name = "c"
keys = ["{KEY}"]
tenant = "acmee"
"#
    );
    let errs = errors(&text);
    let expect = [
        "tenants[0].limits.rpm must be > 0",
        "tenants[1].name `acme` is defined twice",
        "tenants[1].limits must set at least one of",
        "consumers[0].tenant `acmee` is not one of [[tenants]]",
    ];
    for e in expect {
        assert!(
            errs.iter().any(|x| x.starts_with(e)),
            "missing `{e}` in {errs:#?}"
        );
    }
    // Without [[tenants]], a tenant is only an analytics tag.
    let ok = format!("[[consumers]]\nname = \"c\"\nkeys = [\"{KEY}\"]\ntenant = \"anything\"\n");
    assert!(errors(&ok).is_empty());
}

#[test]
fn proxy_protocol_needs_trusted_proxies() {
    let errs = errors("[access]\nproxy_protocol = true\n");
    assert!(
        errs.iter()
            .any(|e| e.starts_with("access.proxy_protocol needs access.trusted_proxies")),
        "{errs:?}"
    );
    assert!(
        errors("[access]\nproxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/8\"]\n").is_empty()
    );
}

#[test]
fn guardrail_errors_name_their_field() {
    let text = r#"
[[providers]]
name = "mock"
kind = "mock"
[[guardrails]]
name = "p"
[[guardrails.rules]]
name = "bad-regex"
kind = "regex"
pattern = "(unclosed"
action = "mask"
[[guardrails.rules]]
name = "bad-detector"
kind = "pii"
detectors = ["email", "ssn"]
action = "block"
[[guardrails.rules]]
name = "no-pattern"
kind = "regex"
action = "log"
[[guardrails.rules]]
name = "no-words"
kind = "words"
words_file = "/nonexistent/words.txt"
action = "mask"
[guardrails.moderation]
kind = "openai_moderation"
provider = "nowhere"
on_error = "allow"
[[guardrails]]
name = "p"
"#;
    let errs = errors(text).join("\n");
    for want in [
        "guardrails[0].rules[0].pattern:",
        "guardrails[0].rules[1].detectors[1]: unknown detector `ssn`",
        "guardrails[0].rules[2].pattern is required",
        "guardrails[0].rules[3].words_file: cannot read /nonexistent/words.txt",
        "guardrails[0].moderation.provider `nowhere`",
        "guardrails[1].name `p` is defined twice",
        "guardrails[1] has no rules and no moderation",
    ] {
        assert!(errs.contains(want), "missing `{want}` in:\n{errs}");
    }
    let typo = "[[guardrails]]\nname = \"p\"\n[[guardrails.rules]]\nname = \"r\"\nkind = \"pii\"\naction = \"redact\"\n";
    assert!(
        errors(typo)
            .join("\n")
            .contains("guardrails[0].rules[0].action"),
        "{:?}",
        errors(typo)
    );
}

#[test]
fn guardrails_attach_to_consumers_keys_and_models() {
    let text = r#"
[[guardrails]]
name = "everyone"
[[guardrails.rules]]
name = "w"
kind = "words"
words = ["x"]
action = "mask"
[[guardrails]]
name = "team"
direction = "request"
consumers = ["team-a"]
keys = ["key-1"]
[[guardrails.rules]]
name = "w"
kind = "words"
words = ["y"]
action = "log"
"#;
    let c = parse_with_env(text, &env).unwrap();
    let g = &c.guardrails;
    let s = g.select("team-b", None, "chat").unwrap();
    assert_eq!((s.request.rules.len(), s.response.rules.len()), (1, 1));
    let s = g.select("team-a", None, "chat").unwrap();
    assert_eq!((s.request.rules.len(), s.response.rules.len()), (2, 1));
    let s = g.select("team-b", Some("key-1"), "chat").unwrap();
    assert_eq!(s.request.rules.len(), 2);
}

#[test]
fn route_errors_name_their_fields() {
    let text = format!(
        r#"
[[providers]]
name = "p"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
[[models]]
name = "m"
targets = [{{ provider = "p", model = "x" }}]
[[consumers]]
name = "c"
keys = ["{KEY}"]
routes = ["nowhere"]
[[routes]]
name = "a"
path_prefix = "/team-a"
models = {{ chat = "m", other = "missing" }}
consumers = ["ghost"]
[[routes]]
name = "a"
path_prefix = "/team-a/sub"
models = {{}}
[[routes]]
name = "v"
path_prefix = "/v1/x"
models = {{ chat = "m" }}
[[routes]]
name = "s"
path_prefix = "team-s/"
models = {{ chat = "m" }}
"#
    );
    let errs = errors(&text);
    let expect = [
        "routes[0].models.other names unknown model `missing`",
        "routes[0].consumers[0] names unknown consumer `ghost`",
        "routes[1].name `a` is defined twice",
        "routes[1].path_prefix `/team-a/sub` overlaps route `a` (`/team-a`)",
        "routes[1].models must map at least one model name",
        "routes[2].path_prefix `/v1/x` may not begin with `/v1` or `/mcp`",
        "routes[3].path_prefix `team-s/` must start with `/`",
        "consumers[0].routes names unknown route `nowhere`",
    ];
    for e in expect {
        assert!(
            errs.iter().any(|x| x.starts_with(e)),
            "missing {e:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
}

#[test]
fn responses_pass_through_is_only_for_openai_kinds() {
    let text = r#"
[[providers]]
name = "a"
kind = "anthropic"
base_url = "https://api.anthropic.com/v1"
responses = true
[[models]]
name = "m"
targets = [{ provider = "a", model = "x" }]
"#;
    let errs = errors(text);
    assert_eq!(
        errs,
        ["providers[0].responses applies only to kinds \"openai\" and \"mock\" (others are translated)"]
    );
}

#[test]
fn tracing_errors_name_their_fields() {
    let base = "[[providers]]\nname = \"m\"\nkind = \"mock\"\n[[models]]\nname = \"c\"\ntargets = [{ provider = \"m\", model = \"x\" }]\n";
    let errs = errors(&format!(
        "{base}[tracing]\notlp_endpoint = \"grpc://collector:4317\"\nsample_ratio = 1.5\nbatch_spans = 0\n"
    ));
    assert_eq!(
        errs,
        [
            "tracing.otlp_endpoint \"grpc://collector:4317\" must start with http:// or https://",
            "tracing.sample_ratio must be in [0, 1]",
            "tracing.batch_spans must be > 0",
        ]
    );
    let c = parse_with_env(
        &format!("{base}[tracing]\notlp_endpoint = \"http://otel:4318\"\n"),
        &env,
    )
    .unwrap();
    let t = c.tracing.unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.path.as_str()),
        ("otel", 4318, "/v1/traces")
    );
    assert_eq!(t.sample_ratio, 1.0);
}

/// Loading a config (what `tollgate -t` does) touches nothing process-wide: no health
/// entry, no metric series, until a runtime is built from it.
#[test]
fn parsing_a_config_registers_no_process_state() {
    let text = r#"
[[providers]]
name = "purity-provider"
kind = "mock"
[[models]]
name = "purity-model"
targets = [{ provider = "purity-provider", model = "purity-upstream" }]
[[guardrails]]
name = "purity-policy"
[[guardrails.rules]]
name = "purity-rule"
kind = "words"
words = ["x"]
action = "mask"
"#;
    let config = parse_with_env(text, &|_| None).unwrap();
    let metrics = String::from_utf8(crate::metrics::METRICS.render()).unwrap();
    for name in ["purity-provider", "purity-upstream", "purity-policy"] {
        assert!(!metrics.contains(name), "{name} registered at parse");
    }
    // A runtime's health table is where the config's health is bound.
    let table = crate::feedback::health::HealthTable::default();
    config.bind_health(&table);
    let metrics = String::from_utf8(crate::metrics::METRICS.render()).unwrap();
    assert!(
        metrics.contains("purity-upstream"),
        "bound deployments are published"
    );
}

#[test]
fn redis_topology_errors_name_their_fields() {
    let cases = [
        (
            "url = \"redis://a/\"\nsentinels = [\"s:26379\"]\nmaster_name = \"m\"",
            "redis.url and redis.sentinels/master_name exclude each other",
        ),
        (
            "sentinels = [\"s:26379\"]",
            "redis.sentinels needs redis.master_name",
        ),
        (
            "master_name = \"m\"",
            "redis.master_name needs redis.sentinels",
        ),
        (
            "sync_interval_ms = 100",
            "redis needs url, sentinels and master_name, or cluster",
        ),
        (
            "sentinels = [\"s:26379\", \"nope\"]\nmaster_name = \"m\"",
            "redis.sentinels[1] \"nope\" must be host:port",
        ),
        (
            "url = \"redis://a/\"\npassword_env = \"UNSET\"",
            "redis.password_env: environment variable UNSET is not set",
        ),
    ];
    for (section, want) in cases {
        let errs = errors(&format!("[redis]\n{section}\n"));
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "missing `{want}` in {errs:#?}"
        );
    }
    let c = parse_with_env(
        "[redis]\nsentinels = [\"10.0.0.5:26379\", \"[::1]:26380\"]\nmaster_name = \"m\"\npassword_env = \"SET_KEY\"\n",
        &env,
    )
    .unwrap();
    let r = c.redis.unwrap();
    assert_eq!(
        r.topology,
        RedisTopology::Sentinel {
            sentinels: vec![("10.0.0.5".into(), 26379), ("::1".into(), 26380)],
            master_name: "m".into()
        }
    );
    assert_eq!(r.password.unwrap().expose(), "sk-test");
}

#[test]
fn a_redis_cluster_is_its_seeds_and_excludes_the_other_topologies() {
    let c = parse_with_env(
        "[redis]\ncluster = [\"10.0.0.5:6379\", \"10.0.0.6:6380\"]\n",
        &env,
    )
    .unwrap();
    assert_eq!(
        c.redis.unwrap().topology,
        RedisTopology::Cluster {
            seeds: vec![("10.0.0.5".into(), 6379), ("10.0.0.6".into(), 6380)]
        }
    );
    for (section, want) in [
        (
            "cluster = [\"a:1\"]\nurl = \"redis://a/\"",
            "redis.cluster excludes redis.url",
        ),
        (
            "cluster = [\"a\"]",
            "redis.cluster[0] \"a\" must be host:port",
        ),
        (
            "url = \"redis://a/\"\nkey_prefix = \"t{x}\"",
            "redis.key_prefix must not contain { or }",
        ),
    ] {
        let errs = errors(&format!("[redis]\n{section}\n"));
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "missing `{want}` in {errs:#?}"
        );
    }
}
