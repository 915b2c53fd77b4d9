//! Workspace-level tests live in `tests/`; this library holds the little they share.

/// Markdown links and images `[text](target)` / `![alt](target)` outside code fences:
/// (is_image, target), the target without a title.
pub fn markdown_links(text: &str) -> Vec<(bool, String)> {
    let mut found = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let is_image = rest[..at]
                .rfind('[')
                .is_some_and(|open| open > 0 && rest.as_bytes()[open - 1] == b'!');
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or("");
            found.push((is_image, target.to_string()));
            rest = &after[end + 1..];
        }
    }
    found
}
