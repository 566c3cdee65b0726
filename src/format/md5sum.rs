//! `md5sum.xml`, the MD5 digests beside `images/` in Xiaomi's fastboot
//! packages that MiFlash checks before flashing:
//!
//! ```text
//! <root>
//!   <digests>
//!     <digest hash="md5" name="boot.img">0f343b0931126a20f133d67c2b018a3b</digest>
//!     …
//!   </digests>
//!   …
//! </root>
//! ```
//!
//! `name` is a file of `images/`. Reading finds the `<digest>` elements
//! wherever they are; rewriting changes their values, drops and adds
//! elements and leaves every other byte as it was.

use std::ops::Range;

/// What is wrong with an `md5sum.xml`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Md5sumError {
    /// The text has no `<digest>` element.
    #[error("no <digest> element: not the known md5sum.xml form")]
    NoDigests,
    /// A `<digest>` element is cut off or has no `name`.
    #[error("offset {offset}: {msg}")]
    Element {
        /// Byte offset of the element.
        offset: usize,
        /// What is wrong.
        msg: String,
    },
}

/// One `<digest>` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// The file of `images/` it is the digest of.
    pub name: String,
    /// The digest, as written (32 hex digits).
    pub hex: String,
    /// Where the element starts and ends (`<digest` … `</digest>`).
    pub element: Range<usize>,
    /// Where the digest's text is, inside the element.
    pub value: Range<usize>,
}

const OPEN: &str = "<digest";
const CLOSE: &str = "</digest>";

/// The `<digest>` elements of `text`, in order.
pub fn parse(text: &str) -> Result<Vec<Digest>, Md5sumError> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = text[at..].find(OPEN) {
        let start = at + i;
        let bad = |msg: String| Md5sumError::Element { offset: start, msg };
        // `<digests>` opens the list, not an element of it.
        if text[start + OPEN.len()..].starts_with('s') {
            at = start + OPEN.len();
            continue;
        }
        let tag_end = text[start..]
            .find('>')
            .map(|k| start + k)
            .ok_or_else(|| bad("the <digest> tag is not closed".into()))?;
        let close = text[tag_end..]
            .find(CLOSE)
            .map(|k| tag_end + k)
            .ok_or_else(|| bad("no </digest> after <digest>".into()))?;
        let tag = &text[start..tag_end];
        let name = attribute(tag, "name").ok_or_else(|| bad("<digest> has no name".into()))?;
        if let Some(h) = attribute(tag, "hash")
            && !h.eq_ignore_ascii_case("md5")
        {
            return Err(bad(format!("hash {h:?} is not md5")));
        }
        let inner = &text[tag_end + 1..close];
        let lead = inner.len() - inner.trim_start().len();
        let hex = inner.trim();
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!(
                "digest of {name:?} is {hex:?}, not 32 hex digits"
            )));
        }
        let v = tag_end + 1 + lead;
        out.push(Digest {
            name: name.to_string(),
            hex: hex.to_string(),
            element: start..close + CLOSE.len(),
            value: v..v + hex.len(),
        });
        at = close + CLOSE.len();
    }
    if out.is_empty() {
        return Err(Md5sumError::NoDigests);
    }
    Ok(out)
}

/// The value of `key="…"` in a tag.
fn attribute<'a>(tag: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = tag;
    while let Some(i) = rest.find(key) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + key.len()..].trim_start();
        rest = &rest[i + key.len()..];
        if !before.is_some_and(char::is_whitespace) {
            continue;
        }
        if let Some(v) = after.strip_prefix('=') {
            let v = v.trim_start();
            let q = v.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            return v[1..].find(q).map(|end| &v[1..1 + end]);
        }
    }
    None
}

/// `text` with each digest's value replaced by `new(name)`; an element for
/// which it gives `None` is removed (with its line when it is alone on
/// it). Elements for `added` (name, digest) go before `</digests>` (else
/// `</root>`), each on a line of its own indented like the first digest
/// when the text has one element a line.
pub fn rewrite(
    text: &str,
    digests: &[Digest],
    new: impl Fn(&str) -> Option<String>,
    added: &[(String, String)],
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for d in digests {
        match new(&d.name) {
            Some(hex) => {
                out.push_str(&text[at..d.value.start]);
                out.push_str(&hex);
                at = d.value.end;
            }
            None => {
                let (from, to) = own_line(text, &d.element);
                out.push_str(&text[at..from]);
                at = to;
            }
        }
    }
    out.push_str(&text[at..]);
    let Some(first) = digests.first() else {
        return out;
    };
    let Some(close) = out.find("</digests>").or_else(|| out.find("</root>")) else {
        return out;
    };
    let line_start = text[..first.element.start].rfind('\n').map_or(0, |i| i + 1);
    let indent = &text[line_start..first.element.start];
    let close_line = out[..close].rfind('\n').map_or(0, |i| i + 1);
    let pretty = indent.trim().is_empty() && out[close_line..close].trim().is_empty();
    let element = |(name, hex): &(String, String)| {
        format!("<digest hash=\"md5\" name=\"{name}\">{hex}</digest>")
    };
    if pretty && close_line > 0 {
        let block: String = added
            .iter()
            .map(|a| format!("{indent}{}\n", element(a)))
            .collect();
        out.insert_str(close_line, &block);
    } else {
        let block: String = added.iter().map(element).collect();
        out.insert_str(close, &block);
    }
    out
}

/// The span to cut for an element: its whole line when nothing else is on
/// it, else the element alone.
fn own_line(text: &str, e: &Range<usize>) -> (usize, usize) {
    let from = text[..e.start].rfind('\n').map_or(0, |i| i + 1);
    let to = text[e.end..]
        .find('\n')
        .map_or(text.len(), |i| e.end + i + 1);
    let line = &text[from..to];
    let rest = line.replacen(&text[e.clone()], "", 1);
    if rest.trim().is_empty() {
        (from, to)
    } else {
        (e.start, e.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<root>\n  <digests>\n    \
        <digest hash=\"md5\" name=\"boot.img\">0123456789abcdef0123456789abcdef</digest>\n    \
        <digest hash=\"md5\" name=\"cust.img\">fedcba9876543210fedcba9876543210</digest>\n    \
        <digest name='misc.img' hash='md5'> 00000000000000000000000000000000 </digest>\n  \
        </digests>\n  <security-patch-level>\n    <level>2024-01-01</level>\n  </security-patch-level>\n</root>\n";

    #[test]
    fn reads_and_rewrites_digests() {
        let d = parse(XML).unwrap();
        let names: Vec<&str> = d.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["boot.img", "cust.img", "misc.img"]);
        assert_eq!(&XML[d[2].value.clone()], "00000000000000000000000000000000");
        let new = |n: &str| (n != "cust.img").then(|| "a".repeat(32));
        let added = [("super.img.0".to_string(), "b".repeat(32))];
        let out = rewrite(XML, &d, new, &added);
        let want = XML
            .replace("0123456789abcdef0123456789abcdef", &"a".repeat(32))
            .replace(" 00000000000000000000000000000000 ", &format!(" {} ", "a".repeat(32)))
            .replace(
                "    <digest hash=\"md5\" name=\"cust.img\">fedcba9876543210fedcba9876543210</digest>\n",
                "",
            )
            .replace(
                "</digest>\n  </digests>",
                &format!(
                    "</digest>\n    <digest hash=\"md5\" name=\"super.img.0\">{}</digest>\n  </digests>",
                    "b".repeat(32)
                ),
            );
        assert_eq!(out, want);
        // On one line, as Python's ElementTree writes it.
        let one = XML.replace('\n', "");
        let d = parse(&one).unwrap();
        let out = rewrite(&one, &d, new, &[]);
        assert!(!out.contains("cust.img") && out.contains("<digests>"));
        assert_eq!(parse(&out).unwrap().len(), 2);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(parse("<root/>"), Err(Md5sumError::NoDigests));
        assert!(parse("<digests><digest name=\"a\">xyz</digest>").is_err());
        assert!(
            parse("<digest hash=\"sha1\" name=\"a\">0123456789abcdef0123456789abcdef</digest>")
                .is_err()
        );
        assert!(parse("<digest hash=\"md5\">0123456789abcdef0123456789abcdef</digest>").is_err());
        assert!(parse("<digest name=\"a\">0123456789abcdef0123456789abcdef").is_err());
    }
}
