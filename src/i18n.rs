//! Language of user-facing text: English by default, Chinese when the
//! locale says so.

use serde::{Deserialize, Serialize};

/// A language Herald writes its messages and hints in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// Detects the user's language from `LC_ALL`, `LC_MESSAGES` and `LANG`
    /// (in POSIX order of precedence), then from the operating system.
    pub fn detect() -> Lang {
        for var in ["LC_ALL", "LC_MESSAGES", "LANG"] {
            if let Ok(value) = std::env::var(var) {
                if !value.is_empty() {
                    return Lang::from_tag(&value);
                }
            }
        }
        sys_locale::get_locale()
            .map(|tag| Lang::from_tag(&tag))
            .unwrap_or(Lang::En)
    }

    /// Maps a locale tag such as `zh_CN.UTF-8` or `zh-Hans` to a language.
    pub fn from_tag(tag: &str) -> Lang {
        if tag.to_ascii_lowercase().starts_with("zh") {
            Lang::Zh
        } else {
            Lang::En
        }
    }
}

/// A sentence in both languages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    pub en: String,
    pub zh: String,
}

impl Text {
    pub fn new(en: impl Into<String>, zh: impl Into<String>) -> Text {
        Text {
            en: en.into(),
            zh: zh.into(),
        }
    }

    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Zh => &self.zh,
        }
    }

    /// Appends a sentence in both languages, separated by a space (English)
    /// or nothing (Chinese).
    pub fn push(&mut self, more: &Text) {
        if more.en.is_empty() {
            return;
        }
        if !self.en.is_empty() {
            self.en.push(' ');
        }
        self.en.push_str(&more.en);
        self.zh.push_str(&more.zh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_tags_map_to_languages() {
        assert_eq!(Lang::from_tag("zh_CN.UTF-8"), Lang::Zh);
        assert_eq!(Lang::from_tag("zh-Hans-CN"), Lang::Zh);
        assert_eq!(Lang::from_tag("en_US.UTF-8"), Lang::En);
        assert_eq!(Lang::from_tag("C"), Lang::En);
    }
}
