use super::*;

const KEY: &str = "37cbfc183c342e976476530bb738059047143238dbbee2003f91b27a3d546483";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml", Path::new("/etc/switchyard"))
}

fn minimal(tenant_extra: &str) -> String {
    format!(
        r#"
[upstreams.sim]
simulated = true
models = ["deepseek-v4-flash", "deepseek-v4-pro"]

[policies.p]
path = "policies/p.wasm"

[tenants.acme]
api_keys_sha256 = ["{KEY}"]
policy = "p"
models = ["deepseek-v4-flash"]
{tenant_extra}
"#
    )
}

#[test]
fn the_embedded_default_is_valid() {
    let config = Config::embedded_default().expect("embedded default");
    assert_eq!(config.tenants["demo"].models.len(), 3);
    assert_eq!(
        config.policies["flash-first"],
        PolicySource::Builtin("flash-first")
    );
    assert!(matches!(
        config.upstreams["simulated"].endpoint,
        UpstreamEndpoint::Simulated { .. }
    ));
}

#[test]
fn a_minimal_config_gets_defaults() {
    let config = parse(&minimal("")).unwrap();
    let acme = &config.tenants["acme"];
    assert_eq!(acme.on_policy_failure, FailureOutcome::Reject);
    assert_eq!(acme.model_aliases, vec!["auto".to_string()]);
    assert_eq!(acme.policy_config, "{}");
    assert_eq!(
        config.policies["p"],
        PolicySource::File("/etc/switchyard/policies/p.wasm".into())
    );
    assert_eq!(
        config.models["deepseek-v4-flash"].cached_input_usd_per_mtok,
        0.0028
    );
    assert_eq!(config.server.listen.port(), 8080);
}

#[test]
fn policy_config_tables_become_json() {
    let config = parse(&minimal(
        "policy_config = { cache = \"read-write\", agent_depth_threshold = 4 }",
    ))
    .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&config.tenants["acme"].policy_config).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"cache": "read-write", "agent_depth_threshold": 4})
    );
}

#[test]
fn errors_name_the_setting_at_fault() {
    let cases = [
        (
            minimal("modles = []"),
            "test.toml",
            "unknown field `modles`",
        ),
        (
            minimal("").replace(
                "models = [\"deepseek-v4-flash\"]\n",
                "models = [\"gpt-4o\"]\n",
            ),
            "tenants.acme.models[0]",
            "unknown model",
        ),
        (
            minimal("").replace(KEY, "abc"),
            "tenants.acme.api_keys_sha256[0]",
            "64 hex digits",
        ),
        (
            minimal("").replace("policy = \"p\"", "policy = \"q\""),
            "tenants.acme.policy",
            "no policy named `q`",
        ),
        (
            minimal("on_policy_failure = \"ignore\""),
            "tenants.acme.on_policy_failure",
            "expected",
        ),
        (
            minimal("on_policy_failure = { route = [\"deepseek-v4-pro\"] }"),
            "tenants.acme.on_policy_failure.route[0]",
            "not in this tenant's models",
        ),
        (
            minimal("sandbox = { deadline_ms = 0 }"),
            "tenants.acme.sandbox.deadline_ms",
            "between",
        ),
        (
            minimal("").replace("simulated = true", "base_url = \"ftp://x\""),
            "upstreams.sim.base_url",
            "http",
        ),
        (
            minimal("").replace(
                "[\"deepseek-v4-flash\", \"deepseek-v4-pro\"]",
                "[\"mystery\"]",
            ),
            "upstreams.sim.models[0]",
            "unknown model",
        ),
        (
            minimal("").replace(
                "simulated = true",
                "simulated = true\napi_key_env = \"SWITCHYARD_TEST_SURELY_UNSET\"",
            ),
            "upstreams.sim.api_key_env",
            "not set",
        ),
    ];
    for (text, path, message) in cases {
        let err = parse(&text).expect_err(path);
        assert_eq!(err.path, path, "{err}");
        assert!(err.message.contains(message), "{err}");
    }
}

#[test]
fn a_key_shared_by_two_tenants_is_refused() {
    let text = minimal("")
        + &format!(
            "[tenants.other]\napi_keys_sha256 = [\"{KEY}\"]\npolicy = \"p\"\nmodels = [\"deepseek-v4-flash\"]\n"
        );
    let err = parse(&text).unwrap_err();
    assert!(
        err.path.starts_with("tenants.other.api_keys_sha256"),
        "{err}"
    );
}

#[test]
fn custom_models_need_prices_and_override_builtins() {
    let text = minimal("")
        + "[models.\"deepseek-v4-flash\"]\noutput_usd_per_mtok = 0.30\n[models.custom]\ninput_usd_per_mtok = 1.0\n";
    let err = parse(&text).unwrap_err();
    assert_eq!(err.path, "models.\"custom\".output_usd_per_mtok");
    let text = text.replace(
        "input_usd_per_mtok = 1.0",
        "input_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0",
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.models["deepseek-v4-flash"].output_usd_per_mtok, 0.30);
    assert_eq!(config.models["deepseek-v4-flash"].input_usd_per_mtok, 0.14);
    assert_eq!(config.models["custom"].cached_input_usd_per_mtok, 1.0);
}

#[test]
fn the_example_deepseek_config_needs_its_key_from_the_environment() {
    let text = include_str!("../../../../config/deepseek.toml");
    let err = Config::parse(
        &text.replace("DEEPSEEK_API_KEY", "SWITCHYARD_TEST_SURELY_UNSET_KEY"),
        "deepseek.toml",
        Path::new("."),
    )
    .unwrap_err();
    assert_eq!(err.path, "upstreams.deepseek.api_key_env");
    // With a variable that is set (PATH always is), it is valid.
    let config = Config::parse(
        &text.replace("DEEPSEEK_API_KEY", "PATH"),
        "deepseek.toml",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(
        config.upstreams["deepseek"].endpoint,
        UpstreamEndpoint::Url("https://api.deepseek.com/v1".into())
    );
    assert!(format!("{:?}", config.upstreams["deepseek"].api_key).contains("redacted"));
}

#[test]
fn price_windows_apply_by_time_of_day_and_wrap_midnight() {
    let text = minimal("")
        + "[[models.\"deepseek-v4-flash\".price_windows]]\nstart_utc = \"16:30\"\nend_utc = \"00:30\"\n\
           input_usd_per_mtok = 0.07\ncached_input_usd_per_mtok = 0.0014\noutput_usd_per_mtok = 0.14\n";
    let config = parse(&text).unwrap();
    let flash = &config.models["deepseek-v4-flash"];
    let at = |h: u64, m: u64| {
        std::time::UNIX_EPOCH + Duration::from_secs(20_000 * 86_400 + h * 3600 + m * 60)
    };
    assert_eq!(flash.prices_at(at(12, 0)).input_usd_per_mtok, 0.14, "peak");
    assert_eq!(
        flash.prices_at(at(16, 30)).input_usd_per_mtok,
        0.07,
        "start is inclusive"
    );
    assert_eq!(flash.prices_at(at(23, 59)).output_usd_per_mtok, 0.14);
    assert_eq!(
        flash.prices_at(at(0, 29)).cached_input_usd_per_mtok,
        0.0014,
        "wraps past midnight"
    );
    assert_eq!(
        flash.prices_at(at(0, 30)).input_usd_per_mtok,
        0.14,
        "end is exclusive"
    );
    let bad = text.replace("16:30", "25:00");
    assert_eq!(
        parse(&bad).unwrap_err().path,
        "models.\"deepseek-v4-flash\".price_windows[0].start_utc"
    );
}

#[test]
fn aliases_resolve_to_the_catalog_name() {
    let config = parse(&minimal("")).unwrap();
    assert_eq!(config.canonical("deepseek-flash"), "deepseek-v4-flash");
    assert_eq!(config.canonical("deepseek-v4-flash"), "deepseek-v4-flash");
    assert_eq!(config.canonical("mystery"), "mystery");
    // Config lists must use catalog names, and say so.
    let err = parse(&minimal("").replace(
        "models = [\"deepseek-v4-flash\"]\n",
        "models = [\"deepseek-flash\"]\n",
    ))
    .unwrap_err();
    assert!(
        err.message.contains("alias of `deepseek-v4-flash`"),
        "{err}"
    );
    let err =
        parse(&(minimal("") + "[models.\"deepseek-v4-pro\"]\naliases = [\"deepseek-flash\"]\n"))
            .unwrap_err();
    assert!(err.message.contains("already an alias"), "{err}");
}

#[test]
fn a_tenant_opts_into_a_warm_instance_and_others_keep_fresh_ones() {
    use switchyard_policy::InstanceReuse;
    let config = parse(&minimal("sandbox = { instance = \"warm\" }")).unwrap();
    let limits = &config.tenants["acme"].limits.sandbox;
    assert_eq!(limits.instance, InstanceReuse::Warm);
    let config = parse(&minimal("")).unwrap();
    assert_eq!(
        config.tenants["acme"].limits.sandbox.instance,
        InstanceReuse::Fresh
    );
    let err = parse(&minimal("sandbox = { instance = \"shared\" }")).unwrap_err();
    assert!(err.to_string().contains("instance"), "{err}");
}

#[test]
fn durations_are_written_as_durations_or_as_milliseconds_but_not_both() {
    let text = format!(
        "[server]\nrequest_deadline = \"15m\"\ndrain_timeout_ms = 2500\n{}",
        minimal("sandbox = { deadline = \"20ms\", quarantine_cool_down = \"1m 30s\" }")
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.server.request_deadline, Duration::from_secs(900));
    assert_eq!(config.server.drain_timeout, Duration::from_millis(2500));
    let limits = &config.tenants["acme"].limits;
    assert_eq!(limits.sandbox.deadline, Duration::from_millis(20));
    assert_eq!(limits.quarantine.cool_down, Duration::from_secs(90));

    let both = format!(
        "[server]\nrequest_deadline = \"15m\"\nrequest_deadline_ms = 1000\n{}",
        minimal("")
    );
    let err = parse(&both).unwrap_err();
    assert_eq!(err.path, "server.request_deadline");
    assert!(err.message.contains("not both"), "{err}");

    let zero = format!("[server]\ndrain_timeout = \"0s\"\n{}", minimal(""));
    assert_eq!(parse(&zero).unwrap_err().path, "server.drain_timeout");
    let bad = format!("[server]\ndrain_timeout = \"soon\"\n{}", minimal(""));
    let err = parse(&bad).unwrap_err();
    assert!(err.message.contains("at `server.drain_timeout`"), "{err}");
}

#[test]
fn enums_are_read_by_serde_and_their_errors_name_the_setting() {
    let text = format!(
        "[routing]\nupstream_choice = \"round-robin\"\n{}",
        minimal("")
    );
    assert_eq!(
        parse(&text).unwrap().upstream_choice,
        UpstreamChoice::RoundRobin
    );
    let text = format!("[routing]\nupstream_choice = \"random\"\n{}", minimal(""));
    let err = parse(&text).unwrap_err();
    assert!(
        err.message.contains("at `routing.upstream_choice`"),
        "{err}"
    );
    assert!(
        err.message.contains("round-robin"),
        "it lists the choices: {err}"
    );
}

#[test]
fn cache_hits_are_billed_at_the_cache_hit_price() {
    let flash = builtin_models()
        .into_iter()
        .find(|m| m.name == "deepseek-v4-flash")
        .unwrap();
    let usage = switchyard_upstream::Usage {
        prompt_tokens: 1_000_000,
        cached_prompt_tokens: 800_000,
        completion_tokens: 1_000_000,
    };
    // 200k misses at $0.14/M + 800k hits at $0.0028/M + 1M output at $0.28/M
    let expected = 0.2 * 0.14 + 0.8 * 0.0028 + 0.28;
    assert!((flash.cost(&usage) - expected).abs() < 1e-12);
    assert!(
        (flash.estimate(1_000_000, 0) - 0.14).abs() < 1e-12,
        "the estimate assumes misses"
    );
}

#[test]
fn failover_settings_are_read_and_checked() {
    let config = parse(&minimal("budget_mode = \"hard\"\nresume_streams = true")).unwrap();
    let acme = &config.tenants["acme"];
    assert!(acme.quota.hard_budget && acme.resume_streams);
    assert_eq!(
        config.server.max_inflight_body_bytes,
        16 * config.server.max_body_bytes
    );
    let sim = &config.upstreams["sim"];
    assert_eq!(
        (sim.retries, &sim.resume),
        (1, &None),
        "one retry by default"
    );

    let upstream = |extra: &str| {
        format!(
            "[upstreams.ds]\nbase_url = \"https://api.deepseek.com/v1\"\nmodels = [\"deepseek-v4-pro\"]\n{extra}\n{}",
            minimal("")
        )
    };
    let config = parse(&upstream(
        "retries = 2\nresume = \"chat-prefix\"\nresume_url = \"https://api.deepseek.com/beta/chat/completions\"",
    ))
    .unwrap();
    let ds = &config.upstreams["ds"];
    assert_eq!(ds.retries, 2);
    assert_eq!(
        ds.resume,
        Some(switchyard_upstream::ResumeVia::ChatPrefix {
            url: Some("https://api.deepseek.com/beta/chat/completions".into())
        })
    );
    for (extra, path) in [
        ("retries = 9", "upstreams.ds.retries"),
        ("resume = \"messages-prefill\"", "upstreams.ds.resume"),
        ("resume_url = \"https://x/beta\"", "upstreams.ds.resume_url"),
        (
            "resume = \"chat-prefix\"\nresume_url = \"ftp://x\"",
            "upstreams.ds.resume_url",
        ),
    ] {
        let err = parse(&upstream(extra)).unwrap_err();
        assert_eq!(err.path, path, "{extra}: {err}");
    }
    let err = parse(&format!(
        "[server]\nmax_inflight_body_bytes = 2048\n{}",
        minimal("")
    ))
    .unwrap_err();
    assert_eq!(err.path, "server.max_inflight_body_bytes");
}
