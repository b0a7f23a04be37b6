//! The model catalog: what each model costs (time-of-day windows included) and can do, and the
//! built-in entries every config starts from.

use std::collections::BTreeMap;

use switchyard_upstream::Usage;

use super::error::ConfigError;
use super::raw::{self, RawModel};

/// A catalog entry: what a model costs and can do.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    /// USD per 1M input tokens, provider cache miss.
    pub input_usd_per_mtok: f64,
    /// USD per 1M input tokens, provider cache hit.
    pub cached_input_usd_per_mtok: f64,
    /// USD per 1M output tokens.
    pub output_usd_per_mtok: f64,
    pub context_window: u64,
    pub max_output_tokens: u64,
    pub supports_images: bool,
    /// Other names clients may use for it.
    pub aliases: Vec<String>,
    /// Labels policies read (`tier = "strong"`), by key.
    pub labels: BTreeMap<String, String>,
    /// Time-of-day price windows (UTC), first match wins.
    pub price_windows: Vec<PriceWindow>,
}

/// Per-1M-token prices in force at some moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub input_usd_per_mtok: f64,
    pub cached_input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
}

/// Prices that apply between two times of day (UTC), e.g. an off-peak discount.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceWindow {
    /// What policies see it as, e.g. `off-peak`.
    pub name: std::sync::Arc<str>,
    /// Minutes after midnight UTC, inclusive.
    pub start_minute: u32,
    /// Minutes after midnight UTC, exclusive; may be before `start_minute` (wraps midnight).
    pub end_minute: u32,
    pub prices: Prices,
}

impl PriceWindow {
    fn contains(&self, minute: u32) -> bool {
        match self.start_minute.cmp(&self.end_minute) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => (self.start_minute..self.end_minute).contains(&minute),
            std::cmp::Ordering::Greater => minute >= self.start_minute || minute < self.end_minute,
        }
    }
}

impl ModelInfo {
    /// The prices in force at `t`.
    pub fn prices_at(&self, t: std::time::SystemTime) -> Prices {
        let secs = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let minute = ((secs % 86_400) / 60) as u32;
        let base = Prices {
            input_usd_per_mtok: self.input_usd_per_mtok,
            cached_input_usd_per_mtok: self.cached_input_usd_per_mtok,
            output_usd_per_mtok: self.output_usd_per_mtok,
        };
        self.price_windows
            .iter()
            .find(|w| w.contains(minute))
            .map_or(base, |w| w.prices)
    }

    /// The prices in force now.
    pub fn prices_now(&self) -> Prices {
        self.prices_at(std::time::SystemTime::now())
    }

    /// The price window in force at `t`, if one is.
    pub fn window_at(&self, t: std::time::SystemTime) -> Option<&PriceWindow> {
        let secs = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let minute = ((secs % 86_400) / 60) as u32;
        self.price_windows.iter().find(|w| w.contains(minute))
    }

    /// USD for `usage` at the prices in force now (time-of-day windows included): cache-hit input
    /// at the cache-hit price, the rest of the input at the miss price.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let price = self.prices_now();
        (usage.uncached_prompt_tokens() as f64 * price.input_usd_per_mtok
            + usage.cached_prompt_tokens as f64 * price.cached_input_usd_per_mtok
            + usage.completion_tokens as f64 * price.output_usd_per_mtok)
            / 1_000_000.0
    }

    /// The worst case for `input` and `output` tokens now: every input token a cache miss.
    pub fn estimate(&self, input: u64, output: u64) -> f64 {
        self.cost(&Usage {
            prompt_tokens: input,
            cached_prompt_tokens: 0,
            completion_tokens: output,
        })
    }
}

fn minute_of_day(hhmm: &str, path: &str) -> Result<u32, ConfigError> {
    let parsed = hhmm
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
        .filter(|(h, m)| *h < 24 && *m < 60);
    parsed
        .map(|(h, m)| h * 60 + m)
        .ok_or_else(|| ConfigError::new(path, format!("`{hhmm}` is not a time like 16:30")))
}

/// The catalog entries every config starts from; `[models.<name>]` overrides any field.
pub fn builtin_models() -> Vec<ModelInfo> {
    let m = |name: &str, input, cached, output, context, max_output, images| ModelInfo {
        name: name.into(),
        input_usd_per_mtok: input,
        cached_input_usd_per_mtok: cached,
        output_usd_per_mtok: output,
        context_window: context,
        max_output_tokens: max_output,
        supports_images: images,
        aliases: Vec::new(),
        labels: BTreeMap::new(),
        price_windows: Vec::new(),
    };
    vec![
        // DeepSeek renamed this model `deepseek-flash` and still accepts the old name.
        ModelInfo {
            aliases: vec!["deepseek-flash".into()],
            ..m(
                "deepseek-v4-flash",
                0.14,
                0.0028,
                0.28,
                1_000_000,
                384_000,
                false,
            )
        },
        m(
            "deepseek-v4-pro",
            0.435,
            0.003625,
            0.87,
            1_000_000,
            384_000,
            false,
        ),
        // A frontier multimodal fallback. Placeholder prices: set the real ones in [models].
        m("gpt-5.5", 5.0, 0.5, 30.0, 400_000, 128_000, true),
    ]
}

pub(super) fn catalog(
    raw: &BTreeMap<String, RawModel>,
) -> Result<BTreeMap<String, ModelInfo>, ConfigError> {
    let mut models: BTreeMap<String, ModelInfo> = builtin_models()
        .into_iter()
        .map(|m| (m.name.clone(), m))
        .collect();
    for (name, m) in raw {
        let path = format!("models.\"{name}\"");
        let base = models.get(name).cloned();
        let need =
            |v: Option<f64>, field: &str, fallback: Option<f64>| -> Result<f64, ConfigError> {
                let v = v.or(fallback).ok_or_else(|| {
                    ConfigError::new(
                        format!("{path}.{field}"),
                        "is required for a model that is not built in",
                    )
                })?;
                if !v.is_finite() || v < 0.0 {
                    return Err(ConfigError::new(
                        format!("{path}.{field}"),
                        "must be a non-negative number",
                    ));
                }
                Ok(v)
            };
        let info = ModelInfo {
            name: name.clone(),
            input_usd_per_mtok: need(
                m.input_usd_per_mtok,
                "input_usd_per_mtok",
                base.as_ref().map(|b| b.input_usd_per_mtok),
            )?,
            cached_input_usd_per_mtok: need(
                m.cached_input_usd_per_mtok,
                "cached_input_usd_per_mtok",
                base.as_ref()
                    .map(|b| b.cached_input_usd_per_mtok)
                    .or(m.input_usd_per_mtok),
            )?,
            output_usd_per_mtok: need(
                m.output_usd_per_mtok,
                "output_usd_per_mtok",
                base.as_ref().map(|b| b.output_usd_per_mtok),
            )?,
            context_window: m
                .context_window
                .or(base.as_ref().map(|b| b.context_window))
                .unwrap_or(128_000),
            max_output_tokens: m
                .max_output_tokens
                .or(base.as_ref().map(|b| b.max_output_tokens))
                .unwrap_or(16_384),
            supports_images: m
                .supports_images
                .or(base.as_ref().map(|b| b.supports_images))
                .unwrap_or(false),
            aliases: m
                .aliases
                .clone()
                .or(base.as_ref().map(|b| b.aliases.clone()))
                .unwrap_or_default(),
            labels: match &m.labels {
                Some(l) => l
                    .iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect(),
                None => base.as_ref().map(|b| b.labels.clone()).unwrap_or_default(),
            },
            price_windows: match &m.price_windows {
                None => base
                    .as_ref()
                    .map(|b| b.price_windows.clone())
                    .unwrap_or_default(),
                Some(windows) => windows
                    .iter()
                    .enumerate()
                    .map(|(i, w)| price_window(w, &format!("{path}.price_windows[{i}]")))
                    .collect::<Result<_, ConfigError>>()?,
            },
        };
        if info.context_window == 0 {
            return Err(ConfigError::new(
                format!("{path}.context_window"),
                "must be greater than zero",
            ));
        }
        models.insert(name.clone(), info);
    }
    Ok(models)
}

pub(super) fn unknown_model(models: &BTreeMap<String, ModelInfo>, name: &str) -> String {
    match models
        .values()
        .find(|m| m.aliases.iter().any(|a| a == name))
    {
        Some(m) => format!(
            "`{name}` is an alias of `{}`: use the catalog name here",
            m.name
        ),
        None => format!("unknown model `{name}`: add it to [models] with its prices"),
    }
}

/// Aliases must not name a model or another model's alias.
pub(super) fn check_aliases(models: &BTreeMap<String, ModelInfo>) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for m in models.values() {
        for (i, alias) in m.aliases.iter().enumerate() {
            let path = format!("models.\"{}\".aliases[{i}]", m.name);
            if models.contains_key(alias) {
                return Err(ConfigError::new(
                    path,
                    format!("`{alias}` is itself a model in the catalog"),
                ));
            }
            if let Some(other) = seen.insert(alias, &m.name) {
                return Err(ConfigError::new(
                    path,
                    format!("`{alias}` is already an alias of `{other}`"),
                ));
            }
        }
    }
    Ok(())
}

fn price_window(w: &raw::RawPriceWindow, path: &str) -> Result<PriceWindow, ConfigError> {
    let price = |v: f64, field: &str| {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(ConfigError::new(
                format!("{path}.{field}"),
                "must be a non-negative number",
            ))
        }
    };
    Ok(PriceWindow {
        name: w.name.as_deref().unwrap_or("off-peak").into(),
        start_minute: minute_of_day(&w.start_utc, &format!("{path}.start_utc"))?,
        end_minute: minute_of_day(&w.end_utc, &format!("{path}.end_utc"))?,
        prices: Prices {
            input_usd_per_mtok: price(w.input_usd_per_mtok, "input_usd_per_mtok")?,
            cached_input_usd_per_mtok: price(
                w.cached_input_usd_per_mtok,
                "cached_input_usd_per_mtok",
            )?,
            output_usd_per_mtok: price(w.output_usd_per_mtok, "output_usd_per_mtok")?,
        },
    })
}
