//! The shipped prompt-injection pattern set: phrasings that try to override the system
//! prompt, take on an unrestricted role, or get the system prompt out, in English and Chinese.
//! A rule with `kind = "injection"` uses them unless `defaults = false`, plus its own
//! `patterns`. They are matched case-insensitively; whitespace may be any run of spaces.
//!
//! They catch the common, literal phrasings; a determined attacker paraphrases, so treat a
//! match as a signal (`log` first, then `block`), not as a proof of safety when nothing fires.

/// `(name, pattern)`: the name is for docs/guardrails.md and tests.
pub const DEFAULTS: &[(&str, &str)] = &[
    (
        "ignore_previous",
        r"(?:ignore|disregard|forget|override|skip)\s+(?:all\s+|any\s+|every\s+)?(?:of\s+)?(?:the\s+|your\s+|my\s+)?(?:previous|prior|above|earlier|preceding|original|initial)\s+(?:instructions?|prompts?|rules?|directions?|guidelines?|messages?)",
    ),
    (
        "new_instructions",
        r"(?:from\s+now\s+on|starting\s+now),?\s+you\s+(?:will|must|are\s+to)\s+(?:ignore|disregard|no\s+longer\s+follow)",
    ),
    (
        "role_override",
        r"you\s+are\s+(?:now\s+)?(?:in\s+)?(?:DAN|developer\s+mode|jailbreak(?:ed)?\s+mode|an?\s+(?:unrestricted|unfiltered|uncensored|jailbroken)\s+(?:ai|assistant|model))",
    ),
    (
        "act_unrestricted",
        r"(?:act|behave|respond)\s+as\s+(?:if\s+you\s+(?:are|were)\s+)?(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|jailbroken)",
    ),
    (
        "reveal_system_prompt",
        r"(?:reveal|print|show|repeat|output|display|leak|tell\s+me)\s+(?:me\s+)?(?:your|the)\s+(?:full\s+|entire\s+|hidden\s+|original\s+)?(?:system\s+prompt|system\s+message|initial\s+(?:instructions|prompt)|hidden\s+instructions)",
    ),
    (
        "zh_ignore_previous",
        r"(?:忽略|无视|忘记|忘掉|不要理会)(?:掉)?(?:你)?(?:之前|以上|上面|前面|先前|此前|原来)(?:的)?(?:所有|全部|一切)?(?:的)?(?:指令|指示|提示|说明|规则|设定|要求)",
    ),
    (
        "zh_role_override",
        r"(?:你现在是|从现在开始你是|扮演)(?:一个)?(?:不受(?:任何)?限制|没有(?:任何)?限制|无限制|越狱)(?:的)?",
    ),
    (
        "zh_reveal_system_prompt",
        r"(?:输出|显示|告诉我|泄露|重复|打印)(?:一下)?(?:你的)?(?:系统提示词?|系统指令|初始指令|隐藏指令)",
    ),
];

/// The defaults (when wanted) and the rule's own patterns, as one alternation.
pub fn combined(defaults: bool, extra: &[String]) -> Option<String> {
    let parts: Vec<String> = DEFAULTS
        .iter()
        .filter(|_| defaults)
        .map(|(_, p)| format!("(?:{p})"))
        .chain(extra.iter().map(|p| format!("(?:{p})")))
        .collect();
    (!parts.is_empty()).then(|| parts.join("|"))
}

/// The longest phrase the defaults match, generously (the hold-back bound on streams).
pub const LONGEST: usize = 160;
