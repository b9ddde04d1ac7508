//! A minimal XML writer for S3 responses.
//!
//! S3 responses are small, flat documents built in one pass, so a string builder with
//! correct escaping is all that is needed; the only thing that can go wrong is escaping,
//! which is tested below. Object keys are user data and may contain any character.

pub const S3_NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

pub struct XmlWriter {
    out: String,
}

impl XmlWriter {
    /// Starts a document whose root element carries the S3 namespace (or none, for
    /// `<Error>`, as S3 itself does).
    pub fn new(root: &str, namespaced: bool) -> XmlWriter {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        if namespaced {
            out.push_str(&format!("<{root} xmlns=\"{S3_NAMESPACE}\">"));
        } else {
            out.push_str(&format!("<{root}>"));
        }
        XmlWriter { out }
    }

    pub fn open(&mut self, tag: &str) {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
    }

    pub fn close(&mut self, tag: &str) {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
    }

    /// Escaped character data inside the current element.
    pub fn text(&mut self, text: &str) {
        escape_into(&mut self.out, text);
    }

    /// `<tag>text</tag>` with `text` escaped.
    pub fn element(&mut self, tag: &str, text: &str) {
        self.open(tag);
        escape_into(&mut self.out, text);
        self.close(tag);
    }

    pub fn finish(mut self, root: &str) -> String {
        self.close(root);
        self.out
    }
}

/// Escapes text content and attribute values. Control characters other than tab and
/// newlines have no literal form in XML 1.0; they are written as numeric references, as
/// S3 does, so keys containing them at least survive the round trip byte for byte.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => {
                out.push_str(&format!("&#{};", c as u32));
            }
            c => out.push(c),
        }
    }
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// The text of the first `<tag>…</tag>` in a small request body, unescaped only for the
/// five predefined entities. Enough for `CreateBucketConfiguration/LocationConstraint`.
pub fn first_element_text(doc: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = doc.find(&open)? + open.len();
    let len = doc[start..].find(&close)?;
    let raw = &doc[start..start + len];
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("plain/key é"), "plain/key é");
    }

    #[test]
    fn escapes_control_characters_numerically() {
        assert_eq!(escape("a\u{1}b\rc\td\n"), "a&#1;b&#13;c\td\n");
    }

    #[test]
    fn writer_builds_nested_document() {
        let mut w = XmlWriter::new("Root", true);
        w.open("Item");
        w.element("Key", "x&y");
        w.close("Item");
        let doc = w.finish("Root");
        assert!(doc.starts_with("<?xml"));
        assert!(doc.ends_with(&format!(
            "<Root xmlns=\"{S3_NAMESPACE}\"><Item><Key>x&amp;y</Key></Item></Root>"
        )));
    }

    #[test]
    fn reads_location_constraint() {
        let body = "<CreateBucketConfiguration xmlns=\"x\"><LocationConstraint>eu-west-1\
                    </LocationConstraint></CreateBucketConfiguration>";
        assert_eq!(first_element_text(body, "LocationConstraint").unwrap(), "eu-west-1");
        assert_eq!(first_element_text(body, "Missing"), None);
    }
}
