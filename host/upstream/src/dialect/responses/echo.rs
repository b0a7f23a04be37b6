//! What a Response object repeats of its request, and the tool list as chat sees it.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::dialect::{str_at, type_of};

/// What a Response object echoes of its request (model, instructions, tools, tool_choice,
/// parallel_tool_calls, reasoning, max_output_tokens, temperature, top_p, text, metadata,
/// store: false, user, truncation), with OpenAI's defaults for what the request left out.
#[derive(Debug, Clone)]
pub struct Echo {
    model: Value,
    instructions: Value,
    tools: Value,
    tool_choice: Value,
    parallel_tool_calls: Value,
    reasoning: Value,
    max_output_tokens: Value,
    temperature: Value,
    top_p: Value,
    text: Value,
    metadata: Value,
    user: Value,
    truncation: Value,
    /// Chat tool name → (namespace, name inside it), for tools flattened out of a namespace.
    namespaced: BTreeMap<String, (String, String)>,
}

impl Default for Echo {
    fn default() -> Self {
        Echo::from_request(&Value::Null)
    }
}

impl Echo {
    pub fn from_request(body: &Value) -> Echo {
        let get = |k: &str| body.get(k).filter(|v| !v.is_null());
        let pick = |k: &str, ok: fn(&Value) -> bool, default: Value| {
            get(k).filter(|v| ok(v)).cloned().unwrap_or(default)
        };
        let reasoning = body.get("reasoning").unwrap_or(&Value::Null);
        let text = match get("text") {
            Some(Value::Object(t)) => {
                let mut t = t.clone();
                t.entry("format").or_insert_with(|| json!({"type": "text"}));
                Value::Object(t)
            }
            _ => json!({"format": {"type": "text"}}),
        };
        let tools = body.get("tools").and_then(Value::as_array);
        Echo {
            model: pick("model", Value::is_string, json!("")),
            instructions: pick(
                "instructions",
                |v| v.is_string() || v.is_array(),
                Value::Null,
            ),
            tools: pick("tools", Value::is_array, json!([])),
            tool_choice: pick(
                "tool_choice",
                |v| v.is_string() || v.is_object(),
                json!("auto"),
            ),
            parallel_tool_calls: pick("parallel_tool_calls", Value::is_boolean, json!(true)),
            reasoning: json!({
                "effort": reasoning.get("effort").cloned().unwrap_or(Value::Null),
                "summary": reasoning.get("summary").cloned().unwrap_or(Value::Null),
            }),
            max_output_tokens: pick("max_output_tokens", Value::is_u64, Value::Null),
            temperature: pick("temperature", Value::is_number, json!(1.0)),
            top_p: pick("top_p", Value::is_number, json!(1.0)),
            text,
            metadata: pick("metadata", Value::is_object, json!({})),
            user: pick("user", Value::is_string, Value::Null),
            truncation: pick("truncation", Value::is_string, json!("disabled")),
            namespaced: chat_tools(tools.map_or(&[], Vec::as_slice)).1,
        }
    }

    /// The same echo, naming `model` (the model that answered, if the caller prefers it).
    pub fn with_model(mut self, model: &str) -> Echo {
        self.model = json!(model);
        self
    }

    /// The Response object fields that come from the request.
    pub(crate) fn fill(&self, r: &mut Map<String, Value>) {
        for (k, v) in [
            ("model", &self.model),
            ("instructions", &self.instructions),
            ("tools", &self.tools),
            ("tool_choice", &self.tool_choice),
            ("parallel_tool_calls", &self.parallel_tool_calls),
            ("reasoning", &self.reasoning),
            ("max_output_tokens", &self.max_output_tokens),
            ("temperature", &self.temperature),
            ("top_p", &self.top_p),
            ("text", &self.text),
            ("metadata", &self.metadata),
            ("user", &self.user),
            ("truncation", &self.truncation),
        ] {
            r.insert(k.into(), v.clone());
        }
        r.insert("store".into(), json!(false));
    }

    /// A chat tool call's name as the client knows it: `(namespace, name)`.
    pub(crate) fn call_name<'a>(&'a self, chat_name: &'a str) -> (Option<&'a str>, &'a str) {
        match self.namespaced.get(chat_name) {
            Some((ns, name)) => (Some(ns), name),
            None => (None, chat_name),
        }
    }
}

/// Responses tools as chat function tools, and the names given to namespaced ones.
///
/// Function tools carry over. A `namespace`'s function tools are flattened out of it, keeping
/// their own name unless another tool has it too (then `<namespace>__<name>`). `custom` tools
/// (free-form or grammar-constrained input) are dropped: a chat upstream cannot enforce the
/// grammar. Hosted tools (`web_search`, `file_search`, `tool_search`, `mcp`, …) run on OpenAI's
/// side and are dropped too.
pub(crate) fn chat_tools(tools: &[Value]) -> (Vec<Value>, BTreeMap<String, (String, String)>) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for t in tools {
        match type_of(t) {
            "function" => {
                if let Some(n) = str_at(t, "name") {
                    *seen.entry(n).or_default() += 1;
                }
            }
            "namespace" => {
                for inner in inner_functions(t) {
                    if let Some(n) = str_at(inner, "name") {
                        *seen.entry(n).or_default() += 1;
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut namespaced = BTreeMap::new();
    for t in tools {
        match type_of(t) {
            "function" => out.extend(function_tool(t, None)),
            "namespace" => {
                let ns = str_at(t, "name").unwrap_or_default();
                for inner in inner_functions(t) {
                    let Some(name) = str_at(inner, "name") else {
                        continue;
                    };
                    let chat_name = if seen.get(name).copied().unwrap_or(0) > 1 {
                        format!("{ns}__{name}")
                    } else {
                        name.to_owned()
                    };
                    out.extend(function_tool(inner, Some(&chat_name)));
                    namespaced.insert(chat_name, (ns.to_owned(), name.to_owned()));
                }
            }
            _ => {}
        }
    }
    (out, namespaced)
}

fn inner_functions(ns: &Value) -> impl Iterator<Item = &Value> {
    ns.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| type_of(t) == "function")
}

fn function_tool(t: &Value, name: Option<&str>) -> Option<Value> {
    let name = name.or_else(|| str_at(t, "name"))?;
    let mut f = Map::new();
    f.insert("name".into(), json!(name));
    if let Some(d) = str_at(t, "description") {
        f.insert("description".into(), json!(d));
    }
    let parameters = t
        .get("parameters")
        .filter(|p| p.is_object())
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    f.insert("parameters".into(), parameters);
    if let Some(s) = t.get("strict").filter(|s| s.is_boolean()) {
        f.insert("strict".into(), s.clone());
    }
    Some(json!({"type": "function", "function": f}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_tools_keep_their_name_unless_it_clashes() {
        let tools = json!([
            {"type": "function", "name": "spawn", "parameters": {"type": "object"}},
            {"type": "namespace", "name": "multi_agent_v1", "tools": [
                {"type": "function", "name": "spawn"}, {"type": "function", "name": "wait"}]},
            {"type": "custom", "name": "apply_patch"},
            {"type": "web_search"},
        ]);
        let (chat, names) = chat_tools(tools.as_array().unwrap());
        let chat_names: Vec<&str> = chat
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(chat_names, ["spawn", "multi_agent_v1__spawn", "wait"]);
        let echo = Echo::from_request(&json!({"tools": tools}));
        assert_eq!(echo.call_name("wait"), (Some("multi_agent_v1"), "wait"));
        assert_eq!(
            echo.call_name("multi_agent_v1__spawn"),
            (Some("multi_agent_v1"), "spawn")
        );
        assert_eq!(echo.call_name("spawn"), (None, "spawn"));
        assert_eq!(names.len(), 2);
    }
}
