//! A minimal XML writer for S3 responses.
//!
//! S3 responses are small, flat documents built in one pass, so a string builder with
//! correct escaping is all that is needed; the only thing that can go wrong is escaping,
//! which is tested below. Object keys are user data and may contain any character.
//!
//! Request documents (CompleteMultipartUpload, VersioningConfiguration) are client input,
//! read by the small tokenizer `tokens`: elements, attributes (skipped), comments, CDATA and
//! the predefined and numeric entities; a DTD is refused, so there is no entity expansion.
//! Anything it cannot read is MalformedXML.

use super::error::S3Error;

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

// ---- reading request documents ----

#[derive(Debug, PartialEq, Eq)]
pub enum Token {
    Open(String),
    Close(String),
    Text(String),
}

/// Splits a document into element opens and closes (names without namespace prefix) and
/// unescaped text. Declarations and comments are skipped; a DTD is refused.
pub fn tokens(doc: &str) -> Result<Vec<Token>, S3Error> {
    let malformed = || S3Error::MalformedXML;
    let mut out = Vec::new();
    let mut rest = doc;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            out.push(Token::Text(unescape(rest)?));
            break;
        };
        if lt > 0 {
            out.push(Token::Text(unescape(&rest[..lt])?));
        }
        rest = &rest[lt..];
        let skip_past = |rest: &str, end: &str| rest.find(end).map(|i| i + end.len());
        if rest.starts_with("<?") {
            rest = &rest[skip_past(rest, "?>").ok_or_else(malformed)?..];
        } else if rest.starts_with("<!--") {
            rest = &rest[skip_past(rest, "-->").ok_or_else(malformed)?..];
        } else if let Some(cdata) = rest.strip_prefix("<![CDATA[") {
            let end = cdata.find("]]>").ok_or_else(malformed)?;
            out.push(Token::Text(cdata[..end].to_string()));
            rest = &cdata[end + 3..];
        } else if rest.starts_with("<!") {
            return Err(malformed());
        } else {
            let end = tag_end(rest).ok_or_else(malformed)?;
            let inner = &rest[1..end];
            rest = &rest[end + 1..];
            if let Some(name) = inner.strip_prefix('/') {
                out.push(Token::Close(local_name(name.trim())?));
                continue;
            }
            let self_closing = inner.ends_with('/');
            let inner = inner.strip_suffix('/').unwrap_or(inner);
            let name_end = inner.find(|c: char| c.is_ascii_whitespace()).unwrap_or(inner.len());
            let name = local_name(&inner[..name_end])?;
            out.push(Token::Open(name.clone()));
            if self_closing {
                out.push(Token::Close(name));
            }
        }
    }
    Ok(out)
}

/// The index of the `>` closing the tag that starts `rest`, skipping quoted attribute
/// values (which may contain `>`).
fn tag_end(rest: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in rest.char_indices().skip(1) {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            (None, '<') => return None,
            _ => {}
        }
    }
    None
}

fn local_name(name: &str) -> Result<String, S3Error> {
    let local = name.rsplit(':').next().unwrap_or(name);
    let valid = !local.is_empty()
        && local.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        return Err(S3Error::MalformedXML);
    }
    Ok(local.to_string())
}

/// Replaces the five predefined entities and character references; any other `&` is
/// malformed.
fn unescape(text: &str) -> Result<String, S3Error> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after.find(';').ok_or(S3Error::MalformedXML)?;
        let entity = &after[..semi];
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32).ok_or(S3Error::MalformedXML)?
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
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
