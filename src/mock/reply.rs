//! A scripted answer: the `x-mock-reply` header names exactly what the mock says and how it
//! splits it into stream deltas, so tests can put a finding across events at any position.
//!
//! The header is JSON: `{"reasoning": [..], "content": [..], "refusal": [..], "tool":
//! {"name": "..", "arguments": [..]}}` (`refusal`: OpenAI only); each list is the deltas in
//! order (a JSON answer joins them). OpenAI streams carry reasoning as `reasoning_content`;
//! Anthropic streams as a `thinking` block, then a `text` block, then a `tool_use` block.

use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    #[serde(default)]
    pub reasoning: Vec<String>,
    #[serde(default)]
    pub content: Vec<String>,
    /// OpenAI's `refusal` (message field; `delta.refusal` in streams).
    #[serde(default)]
    pub refusal: Vec<String>,
    #[serde(default)]
    pub tool: Option<ReplyTool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyTool {
    pub name: String,
    #[serde(default)]
    pub arguments: Vec<String>,
}

impl Reply {
    pub fn parse(header: &str) -> Result<Reply, String> {
        serde_json::from_str(header).map_err(|e| format!("x-mock-reply: {e}"))
    }

    /// Output tokens: one per delta.
    pub fn tokens(&self) -> u64 {
        let tool = self.tool.as_ref().map_or(0, |t| t.arguments.len());
        (self.reasoning.len() + self.content.len() + self.refusal.len() + tool).max(1) as u64
    }

    fn finish(&self) -> &'static str {
        if self.tool.is_some() {
            "tool_calls"
        } else {
            "stop"
        }
    }

    /// The `logprobs` of content deltas, as OpenAI writes them when a request sets
    /// `"logprobs": true`: one entry per token (here, per delta) with its text and bytes.
    fn logprobs<'a>(parts: impl IntoIterator<Item = &'a String>) -> Value {
        let content: Vec<Value> = parts
            .into_iter()
            .map(|p| {
                json!({"token": p, "logprob": -0.01, "bytes": p.as_bytes(),
                "top_logprobs": [{"token": p, "logprob": -0.01, "bytes": p.as_bytes()}]})
            })
            .collect();
        json!({"content": content, "refusal": null})
    }

    pub fn openai_message(
        &self,
        id: &str,
        model: &str,
        usage: Option<Value>,
        logprobs: bool,
    ) -> Value {
        let mut message = json!({"role": "assistant", "content": self.content.concat()});
        if !self.reasoning.is_empty() {
            message["reasoning_content"] = json!(self.reasoning.concat());
        }
        if !self.refusal.is_empty() {
            message["refusal"] = json!(self.refusal.concat());
        }
        if let Some(t) = &self.tool {
            message["tool_calls"] = json!([{"id": "call_mock_1", "type": "function",
                "function": {"name": t.name, "arguments": t.arguments.concat()}}]);
        }
        let logprobs = if logprobs {
            Self::logprobs(&self.content)
        } else {
            Value::Null
        };
        let mut v = json!({"id": id, "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": self.finish()}]});
        if let Some(u) = usage {
            v["usage"] = u;
        }
        v
    }

    pub fn openai_chunks(
        &self,
        id: &str,
        model: &str,
        usage: Option<Value>,
        logprobs: bool,
    ) -> Vec<Value> {
        let chunk_with = |delta: Value, finish: Option<&str>, logprobs: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]})
        };
        let chunk = |delta: Value, finish: Option<&str>| chunk_with(delta, finish, Value::Null);
        let mut out = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
        out.extend(
            self.reasoning
                .iter()
                .map(|p| chunk(json!({"reasoning_content": p}), None)),
        );
        out.extend(self.content.iter().map(|p| {
            let lp = if logprobs {
                Self::logprobs([p])
            } else {
                Value::Null
            };
            chunk_with(json!({"content": p}), None, lp)
        }));
        out.extend(
            self.refusal
                .iter()
                .map(|p| chunk(json!({"refusal": p}), None)),
        );
        if let Some(t) = &self.tool {
            out.push(chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_mock_1", "type": "function",
                    "function": {"name": t.name, "arguments": ""}}]}),
                None,
            ));
            out.extend(t.arguments.iter().map(|p| {
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
                    None,
                )
            }));
        }
        out.push(chunk(json!({}), Some(self.finish())));
        if let Some(u) = usage {
            out.push(
                json!({"id": id, "object": "chat.completion.chunk", "created": 0,
                "model": model, "choices": [], "usage": u}),
            );
        }
        out
    }

    pub fn anthropic_message(&self, id: &str, model: &str, usage: Value) -> Value {
        let mut content = Vec::new();
        if !self.reasoning.is_empty() {
            content.push(json!({"type": "thinking", "thinking": self.reasoning.concat(), "signature": "mock"}));
        }
        if !self.content.is_empty() {
            content.push(json!({"type": "text", "text": self.content.concat()}));
        }
        if let Some(t) = &self.tool {
            let input: Value = serde_json::from_str(&t.arguments.concat()).unwrap_or(json!({}));
            content.push(
                json!({"type": "tool_use", "id": "toolu_mock_1", "name": t.name, "input": input}),
            );
        }
        let stop = if self.tool.is_some() {
            "tool_use"
        } else {
            "end_turn"
        };
        json!({"id": id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop, "stop_sequence": null, "usage": usage})
    }

    pub fn anthropic_events(
        &self,
        id: &str,
        model: &str,
        usage: Value,
    ) -> Vec<(Option<&'static str>, Value)> {
        let mut out = vec![(
            Some("message_start"),
            json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant",
                "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage}}),
        )];
        let mut index = 0;
        let mut block = |out: &mut Vec<_>, start: Value, deltas: Vec<Value>| {
            out.push((
                Some("content_block_start"),
                json!({"type": "content_block_start", "index": index, "content_block": start}),
            ));
            for d in deltas {
                out.push((
                    Some("content_block_delta"),
                    json!({"type": "content_block_delta", "index": index, "delta": d}),
                ));
            }
            out.push((
                Some("content_block_stop"),
                json!({"type": "content_block_stop", "index": index}),
            ));
            index += 1;
        };
        if !self.reasoning.is_empty() {
            let deltas = self
                .reasoning
                .iter()
                .map(|p| json!({"type": "thinking_delta", "thinking": p}))
                .collect();
            block(
                &mut out,
                json!({"type": "thinking", "thinking": ""}),
                deltas,
            );
        }
        if !self.content.is_empty() {
            let deltas = self
                .content
                .iter()
                .map(|p| json!({"type": "text_delta", "text": p}))
                .collect();
            block(&mut out, json!({"type": "text", "text": ""}), deltas);
        }
        if let Some(t) = &self.tool {
            let deltas = t
                .arguments
                .iter()
                .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                .collect();
            block(
                &mut out,
                json!({"type": "tool_use", "id": "toolu_mock_1", "name": t.name, "input": {}}),
                deltas,
            );
        }
        let stop = if self.tool.is_some() {
            "tool_use"
        } else {
            "end_turn"
        };
        out.push((Some("message_delta"), json!({"type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": self.tokens()}})));
        out.push((Some("message_stop"), json!({"type": "message_stop"})));
        out
    }
}

/// `POST /v1/moderations`: flagged when the input contains `FLAG_ME`.
pub fn moderation(body: &Value) -> Value {
    let input = match &body["input"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let flagged = input.contains("FLAG_ME");
    json!({"id": "modr-mock", "model": body["model"].as_str().unwrap_or("omni-moderation-latest"),
        "results": [{"flagged": flagged, "categories": {"harassment": flagged},
            "category_scores": {"harassment": if flagged { 0.98 } else { 0.01 }}}]})
}

impl Reply {
    /// Gemini's parts, one list per stream response: a thought part per reasoning delta, a
    /// text part per content delta, then the function call (arguments joined).
    fn gemini_parts(&self) -> Vec<Value> {
        let mut parts: Vec<Value> = self
            .reasoning
            .iter()
            .map(|r| json!({"text": r, "thought": true}))
            .chain(self.content.iter().map(|c| json!({"text": c})))
            .collect();
        if let Some(tool) = &self.tool {
            let args: Value = serde_json::from_str(&tool.arguments.concat()).unwrap_or(json!({}));
            parts.push(json!({"functionCall": {"name": tool.name, "args": args}}));
        }
        parts
    }

    /// Gemini `GenerateContentResponse`s: one per part streamed, or one with every part.
    pub fn gemini_responses(&self, id: &str, model: &str, prompt: u64, stream: bool) -> Vec<Value> {
        let parts = self.gemini_parts();
        let output = self.tokens();
        let usage = |n: u64| {
            json!({"promptTokenCount": prompt, "candidatesTokenCount": n,
            "totalTokenCount": prompt + n})
        };
        let response = |parts: Value, last: bool, n: u64| {
            let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
            if last {
                candidate["finishReason"] = "STOP".into();
            }
            json!({"candidates": [candidate], "usageMetadata": usage(n), "modelVersion": model,
                   "responseId": id})
        };
        if !stream {
            return vec![response(Value::Array(parts), true, output)];
        }
        let count = parts.len();
        parts
            .into_iter()
            .enumerate()
            .map(|(k, p)| response(json!([p]), k + 1 == count, (k as u64 + 1).min(output)))
            .collect()
    }
}
