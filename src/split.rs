//! Byte-accurate splitting of long messages into numbered parts.
//!
//! Providers limit content by UTF-8 bytes, not characters: 2,048 bytes for
//! WeCom app text and markdown (longer content is silently truncated by
//! WeCom), 2,048 for robot text and 4,096 for robot markdown (longer content
//! is rejected). A part is never cut inside a character, and a cut at a line
//! end is preferred when one is near.

/// Bytes kept free in every part for its header line, e.g. `(12/99)\n`.
const HEADER_RESERVE: usize = 24;

/// Renders `title` and `text` into one or more parts of at most `max_bytes`
/// UTF-8 bytes each, in order.
///
/// One part that fits is returned as is: the title (bold in markdown) on the
/// first line, then the text. Longer content is split and every part starts
/// with the title and its number, such as `**Stop hit** (2/3)`.
pub fn render_parts(
    title: Option<&str>,
    text: &str,
    markdown: bool,
    max_bytes: usize,
) -> Vec<String> {
    let title = title.map(str::trim).filter(|t| !t.is_empty());
    let whole = match title {
        Some(title) => format!("{}\n{text}", heading(title, markdown)),
        None => text.to_owned(),
    };
    if whole.len() <= max_bytes {
        return vec![whole];
    }

    // The title may itself be long; cap it so every part keeps room for text.
    let title = title.map(|t| truncate_at_char(t, max_bytes / 4));
    let header_budget = title.map_or(0, |t| heading(t, markdown).len() + 1) + HEADER_RESERVE;
    let budget = max_bytes.saturating_sub(header_budget).max(4);
    let chunks = split_text(text, budget);
    let count = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(index, chunk)| {
            let number = format!("({}/{count})", index + 1);
            let header = match title {
                Some(title) => format!("{} {number}", heading(title, markdown)),
                None => number,
            };
            format!("{header}\n{chunk}")
        })
        .collect()
}

fn heading(title: &str, markdown: bool) -> String {
    if markdown {
        format!("**{title}**")
    } else {
        title.to_owned()
    }
}

/// Splits `text` into chunks of at most `max_bytes` bytes (at least 4, the
/// size of the widest UTF-8 character), never inside a character, at the
/// last line end of a chunk when it lies in the chunk's second half.
pub fn split_text(text: &str, max_bytes: usize) -> Vec<&str> {
    let max_bytes = max_bytes.max(4);
    let mut chunks = Vec::new();
    let mut rest = text;
    while rest.len() > max_bytes {
        let mut cut = floor_char_boundary(rest, max_bytes);
        if let Some(newline) = rest[..cut].rfind('\n') {
            if newline + 1 > cut / 2 {
                cut = newline + 1;
            }
        }
        let (chunk, tail) = rest.split_at(cut);
        chunks.push(chunk.strip_suffix('\n').unwrap_or(chunk));
        rest = tail;
    }
    if !rest.is_empty() || chunks.is_empty() {
        chunks.push(rest);
    }
    chunks
}

/// Returns the longest prefix of `text` of at most `max_bytes` bytes that
/// ends on a character boundary.
pub fn truncate_at_char(text: &str, max_bytes: usize) -> &str {
    &text[..floor_char_boundary(text, max_bytes)]
}

fn floor_char_boundary(text: &str, index: usize) -> usize {
    if index >= text.len() {
        return text.len();
    }
    let mut index = index;
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_part() {
        let parts = render_parts(Some("Filled"), "600519 x100", false, 2048);
        assert_eq!(parts, vec!["Filled\n600519 x100".to_owned()]);
    }

    #[test]
    fn markdown_title_is_bold() {
        let parts = render_parts(Some("Filled"), "ok", true, 4096);
        assert_eq!(parts, vec!["**Filled**\nok".to_owned()]);
    }

    #[test]
    fn chinese_text_with_emoji_at_limit() {
        // About 700 Chinese characters, a 4-byte emoji straddling byte
        // 2,047, and a final line that must arrive.
        let mut text = "行情".repeat(341); // 2,046 bytes
        text.push('🚀'); // bytes 2,046..2,050
        text.push_str(&"持仓更新\n".repeat(5));
        text.push_str("结论：触发止损，已平仓");
        assert!(text.len() > 2048);

        let parts = render_parts(None, &text, false, 2048);
        assert!(parts.len() >= 2, "{} parts", parts.len());
        for (index, part) in parts.iter().enumerate() {
            assert!(part.len() <= 2048, "part {index} has {} bytes", part.len());
            assert!(part.starts_with(&format!("({}/{})\n", index + 1, parts.len())));
        }
        assert!(parts.last().unwrap().ends_with("结论：触发止损，已平仓"));

        let rejoined: String = parts
            .iter()
            .map(|p| p.split_once('\n').unwrap().1)
            .collect::<Vec<_>>()
            .join("");
        assert_eq!(rejoined.replace('\n', ""), text.replace('\n', ""));
        assert!(rejoined.contains('🚀'));
    }

    #[test]
    fn split_prefers_line_ends() {
        let text = format!("{}\n{}", "a".repeat(60), "b".repeat(60));
        let chunks = split_text(&text, 100);
        assert_eq!(
            chunks,
            vec!["a".repeat(60).as_str(), "b".repeat(60).as_str()]
        );
    }

    #[test]
    fn split_ignores_early_line_end() {
        let text = format!("ab\n{}", "c".repeat(200));
        let chunks = split_text(&text, 100);
        assert_eq!(chunks[0].len(), 100);
        assert!(chunks.iter().all(|c| c.len() <= 100));
    }

    #[test]
    fn split_never_cuts_a_character() {
        for max in 4..40 {
            let text = "a🚀b中文é".repeat(9);
            for chunk in split_text(&text, max) {
                assert!(chunk.len() <= max, "max {max}: {chunk:?}");
            }
            assert_eq!(split_text(&text, max).concat(), text);
        }
    }

    #[test]
    fn parts_carry_title_and_number() {
        let text = "x".repeat(5000);
        let parts = render_parts(Some("Report"), &text, true, 4096);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].starts_with("**Report** (1/2)\n"));
        assert!(parts[1].starts_with("**Report** (2/2)\n"));
        assert!(parts.iter().all(|p| p.len() <= 4096));
    }

    #[test]
    fn truncate_backs_off_to_boundary() {
        assert_eq!(truncate_at_char("中文", 4), "中");
        assert_eq!(truncate_at_char("中文", 6), "中文");
        assert_eq!(truncate_at_char("ab", 10), "ab");
    }
}
