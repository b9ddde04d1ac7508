//! Request documents as a small element tree, for configurations with nested elements
//! (website, lifecycle) whose parsers would otherwise each track depth by hand.
//!
//! Built from `xml::tokens` (which already refuses DTDs and unbalanced markup). Text next
//! to child elements must be whitespace; a document is one root element. Sizes are bounded
//! by the request body limit (`CONTROL_BODY_BYTES_MAX`), and depth by `DEPTH_MAX` so a
//! document of nested opens cannot recurse deeply.

use super::error::S3Error;
use super::xml::{Token, tokens};

/// Deeper nesting than any S3 configuration uses is refused (MalformedXML).
const DEPTH_MAX: usize = 16;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    /// The text of a leaf element (empty for an element with children).
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The children named `name`.
    pub fn all<'e, 'n>(&'e self, name: &'n str) -> impl Iterator<Item = &'e Element> + use<'e, 'n> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The one child named `name`, if any; two of them is MalformedXML.
    pub fn one(&self, name: &str) -> Result<Option<&Element>, S3Error> {
        let mut found = self.all(name);
        let first = found.next();
        if found.next().is_some() {
            return Err(S3Error::MalformedXML);
        }
        Ok(first)
    }

    /// The trimmed text of the one child named `name`, if any.
    pub fn text_of(&self, name: &str) -> Result<Option<&str>, S3Error> {
        Ok(self.one(name)?.map(|e| e.text.trim()))
    }

    /// The first child whose name is not in `known`, if any (for "unknown element" errors).
    pub fn unknown_child(&self, known: &[&str]) -> Option<&str> {
        self.children.iter().map(|c| c.name.as_str()).find(|n| !known.contains(n))
    }
}

/// Parses `doc` into its root element, which must be named `root`.
pub fn parse(doc: &[u8], root: &str) -> Result<Element, S3Error> {
    let doc = std::str::from_utf8(doc).map_err(|_| S3Error::MalformedXML)?;
    let mut stack: Vec<Element> = Vec::new();
    let mut done: Option<Element> = None;
    for token in tokens(doc)? {
        match token {
            Token::Open(name) => {
                if done.is_some() || stack.len() >= DEPTH_MAX {
                    return Err(S3Error::MalformedXML);
                }
                stack.push(Element { name, ..Element::default() });
            }
            Token::Text(text) => match stack.last_mut() {
                Some(open) => open.text.push_str(&text),
                None if text.trim().is_empty() => {}
                None => return Err(S3Error::MalformedXML),
            },
            Token::Close(name) => {
                let closed = stack.pop().filter(|e| e.name == name);
                let closed = closed.ok_or(S3Error::MalformedXML)?;
                if !closed.children.is_empty() && !closed.text.trim().is_empty() {
                    return Err(S3Error::MalformedXML);
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(closed),
                    None => done = Some(closed),
                }
            }
        }
    }
    let root_element = done.filter(|_| stack.is_empty()).ok_or(S3Error::MalformedXML)?;
    if root_element.name != root {
        return Err(S3Error::MalformedXML);
    }
    Ok(root_element)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_tree_and_refuses_bad_shapes() {
        let doc = b"<?xml version=\"1.0\"?><A xmlns=\"x\"><B>1</B><C><D> t </D></C></A>";
        let a = parse(doc, "A").unwrap();
        assert_eq!(a.text_of("B"), Ok(Some("1")));
        assert_eq!(a.one("C").unwrap().unwrap().text_of("D"), Ok(Some("t")));
        assert_eq!(a.unknown_child(&["B"]), Some("C"));
        for bad in
            [&b"<A><B>1</B>"[..], b"<A></B>", b"<A/><A/>", b"<A>text<B/></A>", b"junk<A/>", b"<X/>"]
        {
            assert_eq!(parse(bad, "A"), Err(S3Error::MalformedXML), "{bad:?}");
        }
        assert_eq!(parse(b"<A><B/><B/></A>", "A").unwrap().one("B"), Err(S3Error::MalformedXML));
        let deep = "<A>".repeat(DEPTH_MAX + 1) + &"</A>".repeat(DEPTH_MAX + 1);
        assert_eq!(parse(deep.as_bytes(), "A"), Err(S3Error::MalformedXML));
    }
}
